"""NodeConfig.verify_threads defaults to the cores the process may use (1 to 4)."""

from __future__ import annotations

import os

import pytest

from orbitstore import NodeConfig
from orbitstore.errors import InvalidValueError
from orbitstore.node import config as config_module
from orbitstore.node.config import MAX_AUTO_VERIFY_THREADS, default_verify_threads


@pytest.mark.parametrize(
    ("cores", "threads"), [(1, 1), (2, 2), (3, 3), (4, 4), (64, MAX_AUTO_VERIFY_THREADS)]
)
def test_default_follows_the_cores(cores: int, threads: int) -> None:
    assert default_verify_threads(cores) == threads


def test_a_single_core_keeps_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "usable_cores", lambda: 1)
    assert NodeConfig().verify_threads == 1


def test_process_cpu_count_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.13+: the affinity, or PYTHON_CPU_COUNT when it is set.
    monkeypatch.setattr(os, "process_cpu_count", lambda: 2, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert config_module.usable_cores() == 2
    monkeypatch.setattr(os, "process_cpu_count", lambda: None, raising=False)
    assert config_module.usable_cores() == 1


def test_the_default_reads_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert config_module.usable_cores() == 3
    assert NodeConfig().verify_threads == 3


def test_without_affinity_the_cpu_count_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert config_module.usable_cores() == 1


def test_an_explicit_value_wins() -> None:
    assert NodeConfig(verify_threads=1).verify_threads == 1


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_bad_values_are_refused(bad: object) -> None:
    with pytest.raises(InvalidValueError):
        NodeConfig(verify_threads=bad)  # type: ignore[arg-type]

"""Imports on first use, for packages whose ``__init__`` re-exports names: importing the
package stays cheap, and a name's module is imported the first time it is looked up."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_getattr(
    package: str, exports: dict[str, str], space: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a name to its module;
    the value is cached in ``space`` (the package's globals) once imported."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        space[name] = value
        return value

    return __getattr__

"""Frozen v1 entries: the encoding of an entry must never change.

Each vector is rebuilt from fixed seeds, payloads, clocks, timestamps and parents, and
must give the same bytes and CID as recorded in ``fixtures/golden_v1.json``. If this test
fails, the wire format changed: that is a new entry version, not a fix to this file.

The fixture was written once by ``python tests/test_golden.py --regen``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dag_cbor
import pytest

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import RAW, Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest

FIXTURE = Path(__file__).parent / "fixtures" / "golden_v1.json"

ALICE = Identity(bytes(range(32)))
BOB = Identity(bytes(range(32, 64)))
TS = 1_700_000_000_000


def build() -> tuple[tuple[Cid, bytes], dict[str, Entry]]:
    """The manifest and the entries, built from fixed inputs only."""
    manifest = Manifest(
        name="golden",
        type="log",
        access=StaticAccess.of([ALICE.id, BOB.id]),
        meta={"purpose": "golden vectors"},
    )
    db, block = manifest.to_block()
    e: dict[str, Entry] = {}
    e["root"] = Entry.create(ALICE, db=db, clock=1, next=[], payload={"op": "init"}, ts=TS)
    e["bob_root"] = Entry.create(BOB, db=db, clock=1, next=[], payload="hello", ts=TS + 1)
    e["alice_2"] = Entry.create(
        ALICE,
        db=db,
        clock=2,
        next=[e["root"].cid],
        payload={
            "int": -(2**64),
            "big": 2**64 - 1,
            "float": 0.1,
            "bytes": b"\x00\xff",
            "text": "\u00e9\u6f22\U0001f600",
            "list": [None, True, False, []],
            "link": Cid.for_block(b"raw", RAW),
        },
    )
    e["merge"] = Entry.create(
        BOB,
        db=db,
        clock=3,
        next=[e["alice_2"].cid, e["bob_root"].cid],
        payload={"op": "merge"},
        ts=TS + 2,
    )
    e["with_refs"] = Entry.create(
        ALICE,
        db=db,
        clock=4,
        next=[e["merge"].cid],
        refs=[e["root"].cid, e["bob_root"].cid],
        payload=None,
        ts=TS + 3,
    )
    # The optional nonce "n" (added after the first vectors, which have none): two entries
    # that differ only in their nonce, as two devices with one key would make them.
    for name, nonce in (("nonce", bytes(range(16))), ("nonce_twin", bytes(range(16, 32)))):
        e[name] = Entry.create(
            ALICE,
            db=db,
            clock=5,
            next=[e["with_refs"].cid],
            payload={"op": "increment", "by": 1},
            ts=TS + 4,
            nonce=nonce,
        )
    return (db, block), e


def _record() -> dict[str, Any]:
    (db, block), entries = build()
    return {
        "format": "orbitstore entry v1",
        "manifest": {"cid": str(db), "hex": block.hex()},
        "entries": {
            name: {
                "cid": str(entry.cid),
                "hex": entry.block.hex(),
                "writer": entry.writer,
                "clock": entry.clock,
                "next": [str(c) for c in entry.next],
                "refs": [str(c) for c in entry.refs],
            }
            for name, entry in entries.items()
        },
    }


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text("utf-8"))
    return data


def test_manifest_is_frozen(golden: dict[str, Any]) -> None:
    (db, block), _ = build()
    assert block.hex() == golden["manifest"]["hex"]
    assert str(db) == golden["manifest"]["cid"]
    stored = bytes.fromhex(golden["manifest"]["hex"])
    assert Manifest.from_block(Cid.parse(golden["manifest"]["cid"]), stored).name == "golden"


def test_entries_are_frozen(golden: dict[str, Any]) -> None:
    _, entries = build()
    assert list(golden["entries"]) == list(entries)  # the same vectors, in the same order
    for name, entry in entries.items():
        want = golden["entries"][name]
        assert entry.block.hex() == want["hex"], name
        assert str(entry.cid) == want["cid"], name
        assert entry.writer == want["writer"], name
        assert [str(c) for c in entry.next] == want["next"], name
        assert [str(c) for c in entry.refs] == want["refs"], name


def test_stored_bytes_verify(golden: dict[str, Any]) -> None:
    _, entries = build()
    for name, want in golden["entries"].items():
        cid = Cid.parse(want["cid"])
        block = bytes.fromhex(want["hex"])
        assert Cid.for_block(block) == cid, name
        assert dag_cbor.encode(dag_cbor.decode(block)) == block, name  # canonical
        entry = Entry.from_block(cid, block)
        assert entry.clock == want["clock"]
        assert entry.writer == want["writer"]
        assert entry.payload == entries[name].payload
        assert entry.ts == entries[name].ts
        assert entry.nonce == entries[name].nonce


def test_vectors_cover_the_format(golden: dict[str, Any]) -> None:
    vectors = golden["entries"]
    assert any(len(v["next"]) == 2 for v in vectors.values())  # a merge
    assert any(v["refs"] for v in vectors.values())  # skip-ahead refs
    assert len({v["writer"] for v in vectors.values()}) == 2
    with_nonce = [
        Entry.from_block(Cid.parse(v["cid"]), bytes.fromhex(v["hex"])) for v in vectors.values()
    ]
    assert any(e.nonce is None for e in with_nonce) and any(e.nonce for e in with_nonce)


if __name__ == "__main__":  # pragma: no cover - run by hand, once per format version
    if sys.argv[1:] != ["--regen"]:
        sys.exit("usage: python tests/test_golden.py --regen  (rewrites the frozen vectors)")
    FIXTURE.write_text(json.dumps(_record(), indent=2) + "\n", "utf-8")
    print(f"wrote {FIXTURE}")

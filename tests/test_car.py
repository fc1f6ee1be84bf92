"""CAR export/import: the format (round trip, any chunking, hostile bytes) and the node path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore import open_node
from orbitstore.cli import main
from orbitstore.core import codec
from orbitstore.core.car import CarReader, encode_header, encode_section
from orbitstore.core.cid import Cid
from orbitstore.errors import DecodeError, HashMismatchError, InvalidDataError, OrbitstoreError
from orbitstore.node.car import export_car, import_car

BLOCKS = [codec.encode({"n": i, "pad": "x" * (i * 37 % 300)}) for i in range(20)]
PAIRS = [(Cid.for_block(b), b) for b in BLOCKS]
CAR = encode_header([PAIRS[0][0]]) + b"".join(encode_section(c, b) for c, b in PAIRS)


def read_all(data: bytes, cuts: list[int]) -> tuple[list[tuple[Cid, bytes]], CarReader]:
    reader = CarReader()
    out: list[tuple[Cid, bytes]] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        out.extend(reader.feed(data[start:cut]))
        start = max(start, cut)
    reader.finish()
    return out, reader


@given(st.lists(st.integers(0, len(CAR)), max_size=30))
def test_any_chunking_reads_the_same_blocks(cuts: list[int]) -> None:
    blocks, reader = read_all(CAR, cuts)
    assert blocks == PAIRS
    assert reader.roots == (PAIRS[0][0],)


@settings(max_examples=300)
@given(st.data())
def test_mutated_car_gives_a_typed_error_or_valid_blocks(data: st.DataObject) -> None:
    raw = bytearray(CAR)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[at : at + data.draw(st.integers(1, 50))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=20))
    try:
        blocks, _ = read_all(bytes(raw), [])
    except OrbitstoreError as exc:
        assert isinstance(exc, InvalidDataError)
        return
    for cid, block in blocks:  # whatever was returned hashes to its CID
        assert Cid.for_block(block) == cid


def test_tampered_block_is_refused() -> None:
    cid, block = PAIRS[3]
    bad = encode_header([cid]) + encode_section(cid, block[:-1] + b"y")
    with pytest.raises(HashMismatchError):
        read_all(bad, [])


def test_truncated_and_oversized_input() -> None:
    with pytest.raises(DecodeError, match="ends inside a section"):
        read_all(CAR[:-3], [])
    with pytest.raises(DecodeError, match="no header"):
        read_all(b"", [])
    with pytest.raises(DecodeError, match="over the"):
        read_all(b"\xff\xff\xff\x7f", [])


async def test_export_import_round_trip(tmp_path: Path) -> None:
    out = bytearray()
    async with open_node(tmp_path / "a") as node:
        feed = await node.open("chat", type="feed")
        for i in range(1500):  # more than one import batch
            await feed.add({"text": f"message {i}"})
        kv = await node.open("settings", type="keyvalue")
        await kv.put("theme", "dark")
        assert export_car(feed, out.extend) == 1500
        heads, items = feed.heads, [i.value for i in feed.items()]
    async with open_node(tmp_path / "b") as node:
        chunks = [bytes(out[i : i + 4096]) for i in range(0, len(out), 4096)]
        report = await import_car(node, chunks, name="chat")
        assert (report.type, report.received, report.added) == ("feed", 1500, 1500)
        copy = await node.open("chat", type="feed")
        assert copy.heads == heads
        assert [i.value for i in copy.items()] == items
        again = await import_car(node, [bytes(out)])
        assert again.added == 0  # importing twice changes nothing


async def test_import_refuses_an_incomplete_export(tmp_path: Path) -> None:
    out = bytearray()
    async with open_node(tmp_path / "a") as node:
        log = await node.open("l")
        for i in range(5):
            await log.append(i)
        export_car(log, out.extend)
    reader = CarReader()
    sections = list(reader.feed(bytes(out)))
    assert reader.roots is not None
    # drop the first entry: every later one misses an ancestor
    holey = encode_header(reader.roots) + b"".join(
        encode_section(c, b) for c, b in [sections[0], *sections[2:]]
    )
    async with open_node(tmp_path / "b") as node:
        with pytest.raises(InvalidDataError, match="incomplete"):
            await import_car(node, [holey])


def test_cli_export_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, car = tmp_path / "a", tmp_path / "b", tmp_path / "chat.car"
    assert main(["--home", str(a), "feed", "add", "chat", '{"t": "hi"}']) == 0
    assert main(["--home", str(a), "export", "chat", str(car)]) == 0
    assert main(["--home", str(b), "import", str(car), "--name", "chat"]) == 0
    capsys.readouterr()
    assert main(["--home", str(b), "feed", "ls", "chat"]) == 0
    assert '{"t":"hi"}' in capsys.readouterr().out
    (tmp_path / "junk.car").write_bytes(b"not a car")
    assert main(["--home", str(b), "import", str(tmp_path / "junk.car")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")

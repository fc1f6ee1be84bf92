"""The dag-pb/UnixFS decoders and the file reader survive any block a peer can send:
either the file reads (exactly ``filesize`` bytes) or a typed InvalidDataError is raised,
never another exception (in the spirit of h11's fuzz invariant)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from orbitstore.core.cid import Cid
from orbitstore.core.dagpb import decode_node, decode_unixfs
from orbitstore.core.unixfs import AttachmentLimits, FileReader, read_all
from orbitstore.errors import InvalidDataError
from orbitstore.testing.fuzz import mutated_bytes, mutated_unixfs_files, unixfs_files

LIMITS = AttachmentLimits(max_size=10_000, max_links=40, max_depth=6)


@settings(max_examples=300, deadline=None)
@given(mutated_unixfs_files())
def test_a_broken_file_reads_or_raises_a_typed_error(file: tuple[Cid, dict[Cid, bytes]]) -> None:
    root, blocks = file
    try:
        data = read_all(root, blocks, LIMITS)
    except InvalidDataError:
        return
    assert len(data) <= LIMITS.max_size


@settings(max_examples=100, deadline=None)
@given(unixfs_files())
def test_valid_files_read_under_the_limits_that_fit_them(
    file: tuple[Cid, dict[Cid, bytes]],
) -> None:
    root, blocks = file
    reader = FileReader(root)
    while not reader.done:
        for cid in reader.wants(3):
            reader.receive(cid, blocks[cid])
        reader.read()
    assert reader.progress().bytes_read == reader.total_bytes


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_decoders_take_any_bytes(data: st.DataObject) -> None:
    raw = data.draw(
        st.one_of(
            st.binary(max_size=200),
            mutated_bytes(
                b"\x12\x2a\x0a\x24\x01\x55\x12\x20" + bytes(32) + b"\x12\x00\x18\x01"
                b"\x0a\x06\x08\x02\x18\x01\x20\x01"
            ),
        )
    )
    for decode in (decode_node, decode_unixfs):
        with contextlib.suppress(InvalidDataError):
            decode(raw)

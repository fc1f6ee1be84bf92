"""The manifest fetch state machine (sans-IO), wired back to back through the frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import ProtocolError, UsageError
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import (
    Done,
    Error,
    FrameDecoder,
    GetManifest,
    Hello,
    ManifestBlock,
    Message,
    NotFound,
    encode_frame,
)
from orbitstore.sync.manifest_fetch import (
    ManifestFetched,
    ManifestMissing,
    ManifestRequest,
    answer_manifest_request,
)
from orbitstore.sync.session import SyncSession

MANIFEST = Manifest(name="m", type="feed", access=StaticAccess.of(["*"]), meta={"k": 1})
DB, BLOCK = MANIFEST.to_block()
OTHER, OTHER_BLOCK = Manifest(name="o", type="log", access=StaticAccess.of(["*"])).to_block()


def wire(message: Message) -> Message:
    """Through encode and decode, as on a stream."""
    (out,) = FrameDecoder().feed(encode_frame(message))
    return out


def ask() -> ManifestRequest:
    request = ManifestRequest(db=DB)
    request.start()
    return request


def test_found_round_trip() -> None:
    request = ManifestRequest(db=DB)
    get = wire(request.start())
    assert get == GetManifest(v=1, db=DB)
    assert isinstance(get, GetManifest)
    answer = wire(answer_manifest_request(get, BLOCK))
    result = request.receive(answer)
    assert result == ManifestFetched(DB, MANIFEST, BLOCK)
    assert request.result == result


def test_not_found_round_trip() -> None:
    request = ManifestRequest(db=DB)
    get = wire(request.start())
    assert isinstance(get, GetManifest)
    answer = wire(answer_manifest_request(get, None))
    assert answer == NotFound(db=DB)
    assert request.receive(answer) == ManifestMissing(DB)


def test_responder_refuses_other_versions_and_wrong_blocks() -> None:
    answer = answer_manifest_request(GetManifest(v=2, db=DB), BLOCK)
    assert isinstance(answer, Error) and answer.code == "protocol"
    assert "v2" in answer.message
    with pytest.raises(UsageError):
        answer_manifest_request(GetManifest(db=DB), OTHER_BLOCK)


def _entry_block() -> tuple[Cid, bytes]:
    log = OpLog(
        db=DB,
        access=MANIFEST.access,
        store=MemoryStore().log_store(DB),
        identity=Identity(b"\x01" * 32),
    )
    entry = log.append("x")
    return entry.cid, entry.block


@pytest.mark.parametrize(
    "answer",
    [
        ManifestBlock(db=DB, block=OTHER_BLOCK),  # bytes of another manifest
        ManifestBlock(db=DB, block=BLOCK[:-1] + b"\x00"),  # corrupted
        ManifestBlock(db=OTHER, block=OTHER_BLOCK),  # a valid answer to another question
        NotFound(db=OTHER),
        Hello(db=DB),
        Done(),
        GetManifest(db=DB),
    ],
    ids=["other-bytes", "corrupted", "other-db", "notfound-other", "hello", "done", "get"],
)
def test_wrong_answers_are_protocol_errors(answer: Message) -> None:
    request = ask()
    with pytest.raises(ProtocolError) as info:
        request.receive(wire(answer))
    assert "peer_code" not in info.value.details  # hostile, not a refusal
    assert request.result is None
    with pytest.raises(ProtocolError, match="already failed"):
        request.receive(NotFound(db=DB))


def test_a_block_that_hashes_right_but_is_no_manifest_is_refused() -> None:
    cid, block = _entry_block()
    request = ManifestRequest(db=cid)
    request.start()
    with pytest.raises(ProtocolError, match="invalid manifest"):
        request.receive(ManifestBlock(db=cid, block=block))


def test_error_from_the_peer_carries_its_code() -> None:
    request = ask()
    with pytest.raises(ProtocolError) as info:
        request.receive(wire(Error(code="protocol", message="v9")))
    assert info.value.details["peer_code"] == "protocol"


def test_anything_after_the_answer_is_refused() -> None:
    request = ManifestRequest(db=DB)
    request.start()
    request.receive(ManifestBlock(db=DB, block=BLOCK))
    with pytest.raises(ProtocolError, match="after its answer"):
        request.receive(NotFound(db=DB))


def test_usage_errors() -> None:
    request = ManifestRequest(db=DB)
    with pytest.raises(UsageError):
        request.receive(NotFound(db=DB))
    request.start()
    with pytest.raises(UsageError):
        request.start()
    with pytest.raises(UsageError):
        ManifestRequest(db="x")  # type: ignore[arg-type]


def test_sync_session_refuses_fetch_messages() -> None:
    log = OpLog(db=DB, access=MANIFEST.access, store=MemoryStore().log_store(DB))
    for first in (GetManifest(db=DB), ManifestBlock(db=DB, block=BLOCK), NotFound(db=DB)):
        session = SyncSession(reader=log, db=DB)
        session.start()
        with pytest.raises(ProtocolError, match="expected hello"):
            session.receive(first)
    session = SyncSession(reader=log, db=DB)
    session.start()
    session.receive(Hello(db=DB))
    with pytest.raises(ProtocolError, match="GetManifest"):
        session.receive(GetManifest(db=DB))


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=400))
def test_any_answer_verifies_exactly_or_is_refused(junk: bytes, pos: int) -> None:
    """Fuzz invariant: whatever bytes come back, the request yields the true manifest,
    or 'missing', or raises ProtocolError — never anything else, never a wrong manifest."""
    block = bytearray(BLOCK)
    pos %= len(block) + 1
    block[pos : pos + len(junk)] = junk
    request = ManifestRequest(db=DB)
    request.start()
    try:
        (message,) = FrameDecoder().feed(encode_frame(ManifestBlock(db=DB, block=bytes(block))))
        result = request.receive(message)
    except ProtocolError:
        return
    assert result == ManifestFetched(DB, MANIFEST, BLOCK)


manifest_like = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "chat", "", "x/y", 5]),
        "type": st.sampled_from(["log", "feed", "nope", ""]),
        "access": st.one_of(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["static", "x"]),
                    "write": st.lists(st.sampled_from(["*", "x"]), max_size=2),
                }
            ),
            st.integers(0, 10),
        ),
        "meta": st.one_of(st.dictionaries(st.text(max_size=3), st.integers(0, 10)), st.none()),
    }
)


@given(st.one_of(st.binary(max_size=100), manifest_like.map(codec.encode)))
def test_self_hashed_blocks_decode_or_are_refused(block: bytes) -> None:
    """The block hashes to the CID asked for, so the manifest decoder itself is fuzzed:
    a manifest comes out or a ProtocolError, nothing else."""
    cid = Cid.for_block(block)
    request = ManifestRequest(db=cid)
    request.start()
    try:
        result = request.receive(ManifestBlock(db=cid, block=block))
    except ProtocolError:
        return
    assert isinstance(result, ManifestFetched)
    assert result.manifest.to_block() == (cid, block)


@pytest.mark.parametrize(
    "access",
    [
        {"type": "static", "write": ["*", "*"]},  # duplicate writers
        {"type": "static", "write": sorted([Identity(b"\x01" * 32).id, "*"], reverse=True)},
        {"type": "static", "write": ["*"], "extra": 1},
    ],
    ids=["duplicates", "unsorted", "extra-key"],
)
def test_non_canonical_manifests_are_refused(access: dict[str, object]) -> None:
    """Such a block hashes to its CID, but re-encodes to another one: two addresses
    would name one database. Refused when fetched, like any invalid manifest."""
    block = codec.encode({"name": "a", "type": "log", "access": access, "meta": {}})
    cid = Cid.for_block(block)
    request = ManifestRequest(db=cid)
    request.start()
    with pytest.raises(ProtocolError, match="canonical"):
        request.receive(ManifestBlock(db=cid, block=block))

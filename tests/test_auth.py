"""The reader proof of private databases (sync/auth.py): honest peers authenticate each
other; any change to what a proof signs, a replayed or relayed proof, a reflected one, a
non-reader, and any mutated frame are refused — with our typed errors only."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.devices import Delegation
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.privacy import ReadSpec, Role, reader_role
from orbitstore.errors import (
    AccessDeniedError,
    InvalidValueError,
    OrbitstoreError,
    ProtocolError,
)
from orbitstore.sync.auth import PeerAuth, check_proof, prove, transcript
from orbitstore.sync.frames import (
    Challenge,
    Error,
    FrameDecoder,
    GetManifest,
    ManifestBlock,
    Message,
    Proof,
    decode_body,
    encode_frame,
)
from orbitstore.sync.manifest_fetch import (
    ManifestChallenged,
    ManifestFetched,
    ManifestRequest,
    answer_manifest_proof,
)
from orbitstore.testing import fuzz

ALICE, BOB, MALLORY = (Identity(bytes([i]) * 32) for i in (41, 42, 43))
SPEC = ReadSpec.of()
MANIFEST = Manifest(
    name="p",
    type="feed",
    access=StaticAccess.of([ALICE.id, BOB.id]),
    meta={"read": SPEC.to_meta()},
)
DB, MANIFEST_BLOCK = MANIFEST.to_block()
OTHER_DB = Manifest(name="q", type="feed", access=StaticAccess.of([ALICE.id])).cid
PA, PB, PM = "12D3KooWAlice", "12D3KooWBob", "12D3KooWMallory"


def members(did: str, delegation: Delegation | None = None) -> Role | None:
    return reader_role(SPEC, did, writers={ALICE.id, BOB.id})


def pair(
    a: Identity = ALICE, b: Identity = BOB, decide: Any = members
) -> tuple[PeerAuth, PeerAuth]:
    side = partial(PeerAuth, db=DB, decide=decide)
    i = side(signer=a, local_peer=PA, remote_peer=PB, nonce=b"\x0a" * 32, initiator=True)
    r = side(signer=b, local_peer=PB, remote_peer=PA, nonce=b"\x0b" * 32, initiator=False)
    return i, r


def roundtrip(message: Message) -> Message:
    (decoded,) = FrameDecoder().feed(encode_frame(message))
    assert decoded == message
    return decoded


def run(i: PeerAuth, r: PeerAuth) -> list[Message]:
    """Deliver messages both ways until nothing moves; every message, through the
    codec (so the frames are exercised too)."""
    wire: list[Message] = []
    to_r = i.start()
    assert r.start() == []
    to_i: list[Message] = []
    while to_r or to_i:
        next_r: list[Message] = []
        for m in to_r:
            wire.append(m)
            next_r += r.receive(roundtrip(m))
        next_i: list[Message] = []
        for m in to_i:
            wire.append(m)
            next_i += i.receive(roundtrip(m))
        to_i, to_r = next_r, next_i
    return wire


def test_honest_peers_authenticate_each_other() -> None:
    i, r = pair()
    wire = run(i, r)
    assert [type(m).__name__ for m in wire] == ["Challenge", "Challenge", "Proof", "Proof"]
    assert i.result is not None and i.result.identity == BOB.id and i.result.role == "member"
    assert r.result is not None and r.result.identity == ALICE.id


def test_a_replica_is_a_reader_and_nobody_else_is() -> None:
    spec = ReadSpec.of([MALLORY.id])
    assert reader_role(spec, MALLORY.id, writers={ALICE.id}) == "replica"
    assert reader_role(spec, BOB.id, writers={ALICE.id}, replicas={BOB.id}) == "replica"
    assert reader_role(spec, ALICE.id, writers={ALICE.id}) == "member"
    assert reader_role(spec, BOB.id, writers={ALICE.id}, epoch_readers={BOB.id}) == "member"
    assert reader_role(spec, BOB.id, writers={ALICE.id}) is None


def test_a_non_member_is_refused_and_learns_no_identity() -> None:
    i, r = pair(a=MALLORY)
    (challenge,) = i.start()
    assert r.start() == []
    (back,) = r.receive(challenge)
    assert isinstance(back, Challenge)  # the responder challenges back; no proof of its own
    (proof,) = i.receive(back)
    with pytest.raises(AccessDeniedError, match="not a member"):
        r.receive(proof)
    assert r.result is None
    with pytest.raises(ProtocolError):  # refuses anything after failing
        r.receive(proof)


def test_the_initiator_refuses_a_responder_that_is_no_reader() -> None:
    i, r = pair(b=MALLORY)
    with pytest.raises(AccessDeniedError):
        run(i, r)
    assert i.result is None


def test_a_peer_refusal_is_access_denied_on_our_side() -> None:
    i, _ = pair()
    i.start()
    with pytest.raises(AccessDeniedError) as info:
        i.receive(Error(code="access_denied", message="no"))
    assert info.value.details["peer_code"] == "access_denied"


def test_a_relayed_proof_does_not_verify() -> None:
    """Mallory relays Alice's challenge to Bob and Bob's proof back: the proof names the
    stream Bob ↔ Mallory, not Mallory ↔ Alice."""
    alice_nonce = b"\x0c" * 32
    bob_proof = prove(
        BOB, db=DB, prover_peer=PB, verifier_peer=PM, challenge=alice_nonce, nonce=b"\x0d" * 32
    )
    with pytest.raises(AccessDeniedError, match="does not verify"):
        check_proof(bob_proof, db=DB, prover_peer=PM, verifier_peer=PA, challenge=alice_nonce)


def test_a_reflected_proof_is_refused() -> None:
    nonce = b"\x0e" * 32
    mine = prove(
        ALICE, db=DB, prover_peer=PA, verifier_peer=PB, challenge=b"\x01" * 32, nonce=nonce
    )
    with pytest.raises(AccessDeniedError):
        check_proof(mine, db=DB, prover_peer=PB, verifier_peer=PA, challenge=nonce)


FIELDS = ("db", "prover_peer", "verifier_peer", "challenge", "nonce", "id", "sig")


@given(
    field=st.sampled_from(FIELDS),
    challenge=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=32, max_size=32),
    replacement=st.binary(min_size=1, max_size=64),
    data=st.data(),
)
def test_any_change_to_a_proof_or_its_session_is_refused(
    field: str, challenge: bytes, nonce: bytes, replacement: bytes, data: st.DataObject
) -> None:
    """Hypothesis: a proof verifies only for the exact session it was made for."""
    if challenge == nonce:
        nonce = bytes(b ^ 1 for b in nonce)
    proof = prove(ALICE, db=DB, prover_peer=PA, verifier_peer=PB, challenge=challenge, nonce=nonce)
    session: dict[str, Any] = {
        "db": DB,
        "prover_peer": PA,
        "verifier_peer": PB,
        "challenge": challenge,
    }
    assert check_proof(proof, **session) == ALICE.id
    fields: dict[str, Any] = {"db": DB, "id": proof.id, "nonce": nonce, "sig": proof.sig}
    if field in ("prover_peer", "verifier_peer"):
        session[field] = data.draw(
            st.sampled_from([PA, PB, PM, "", "x"]).filter(lambda p: p != session[field])
        )
    elif field == "challenge":
        session["challenge"] = data.draw(
            st.binary(min_size=32, max_size=32).filter(lambda c: c != challenge)
        )
    elif field == "db":
        session["db"] = OTHER_DB
    elif field == "nonce":
        fields["nonce"] = data.draw(
            st.binary(min_size=32, max_size=32).filter(lambda c: c != nonce)
        )
    elif field == "id":
        fields["id"] = data.draw(st.sampled_from([BOB.id, MALLORY.id, "did:key:zX", "x"]))
    else:
        position = data.draw(st.integers(0, 63))
        flip = data.draw(st.integers(1, 255))
        sig = bytearray(proof.sig)
        sig[position] ^= flip
        fields["sig"] = bytes(sig)
    try:
        changed = Proof(**fields)
    except InvalidValueError:
        return  # cannot even be built (nor decoded): refused earlier
    with pytest.raises(AccessDeniedError):
        check_proof(changed, **session)


def test_transcript_is_canonical_and_names_the_session() -> None:
    signed = partial(transcript, db=DB, prover=ALICE.id, challenge=b"1" * 32, nonce=b"2" * 32)
    a = signed(prover_peer=PA, verifier_peer=PB)
    b = signed(prover_peer=PB, verifier_peer=PA)
    assert a != b and a.startswith(b"\x87")  # a DAG-CBOR array of 7 items
    assert a[1:20] == b"\x72orbitstore/auth/v1"  # the tag, as docs/wire-format.md says
    assert a[20:61] == b"\xd8\x2a\x58\x25\x00" + bytes(DB)


AUTH_BODIES = [
    body
    for body in fuzz.frame_bodies(DB, fuzz.signed_chain(ALICE, DB, 2), MANIFEST_BLOCK)
    if body["t"] in ("challenge", "proof", "error", "hello")
]


@given(st.lists(fuzz.mutated_frames(AUTH_BODIES), min_size=1, max_size=4), st.booleans())
def test_mutated_frames_never_authenticate(frames: list[bytes], initiator: bool) -> None:
    """Fuzz: whatever arrives, the machine raises our typed errors or answers, and never
    authenticates a peer that did not sign this session's transcript."""
    i, r = pair()
    machine = i if initiator else r
    machine.start()
    decoder = FrameDecoder()
    try:
        for data in frames:
            for message in decoder.feed(data):
                machine.receive(message)
    except OrbitstoreError:
        pass
    assert machine.result is None


@given(st.sampled_from(AUTH_BODIES).flatmap(fuzz.mutated_encodings))
def test_the_manifest_gate_refuses_mutated_proofs(body: bytes) -> None:
    request = GetManifest(db=DB)
    try:
        proof = decode_body(body)
    except ProtocolError:
        return
    try:
        answer = answer_manifest_proof(
            request,
            b"\x05" * 32,
            proof,
            MANIFEST_BLOCK,
            prover_peer=PA,
            verifier_peer=PB,
            decide=members,
        )
    except OrbitstoreError:
        return
    assert isinstance(answer, Error) and answer.code == "access_denied"


def test_manifest_fetch_of_a_private_database() -> None:
    nonce = b"\x06" * 32

    def prover(challenge: bytes) -> Proof:
        return prove(
            BOB, db=DB, prover_peer=PB, verifier_peer=PA, challenge=challenge, nonce=b"\x07" * 32
        )

    request = ManifestRequest(db=DB, prover=prover)
    get = request.start()
    challenged = request.receive(Challenge(db=DB, nonce=nonce))
    assert isinstance(challenged, ManifestChallenged)
    answer = answer_manifest_proof(
        get,
        nonce,
        challenged.proof,
        MANIFEST_BLOCK,
        prover_peer=PB,
        verifier_peer=PA,
        decide=members,
    )
    assert isinstance(answer, ManifestBlock)
    assert isinstance(request.receive(answer), ManifestFetched)
    # Without an identity to prove, or refused: AccessDeniedError.
    anonymous = ManifestRequest(db=DB)
    anonymous.start()
    with pytest.raises(AccessDeniedError):
        anonymous.receive(Challenge(db=DB, nonce=nonce))
    refused = ManifestRequest(db=DB, prover=prover)
    refused.start()
    with pytest.raises(AccessDeniedError):
        refused.receive(Error(code="access_denied", message="not a reader"))
    mallory = prove(
        MALLORY, db=DB, prover_peer=PM, verifier_peer=PA, challenge=nonce, nonce=b"\x08" * 32
    )
    denied = answer_manifest_proof(
        get, nonce, mallory, MANIFEST_BLOCK, prover_peer=PM, verifier_peer=PA, decide=members
    )
    assert isinstance(denied, Error) and denied.code == "access_denied"


def test_read_spec_meta_is_checked() -> None:
    assert ReadSpec.from_meta({}) is None
    assert ReadSpec.from_meta({"read": SPEC.to_meta()}) == SPEC
    unsorted = sorted([ALICE.id, BOB.id], reverse=True)
    for bad in (
        {"read": "members"},
        {"read": {"mode": "all", "replicas": [], "v": 1}},
        {"read": {"mode": "members", "replicas": unsorted, "v": 1}},
        {"read": {"mode": "members", "replicas": [ALICE.id, ALICE.id], "v": 1}},
        {"read": {"mode": "members", "replicas": ["x"], "v": 1}},
        {"read": {"mode": "members", "replicas": [], "v": 2}},
        {"read": {"mode": "members", "replicas": []}},
    ):
        with pytest.raises(InvalidValueError):
            ReadSpec.from_meta(bad)


def test_challenge_and_proof_bytes_are_as_documented() -> None:
    """docs/sync-protocol.md gives these frames byte by byte."""
    link = b"\xd8\x2a\x58\x25\x00" + bytes(DB)
    challenge = encode_frame(Challenge(db=DB, nonce=bytes(32)))
    assert challenge == (
        b"\x64\xa4\x61t\x69challenge\x61v\x01\x62db" + link + b"\x65nonce\x58\x20" + bytes(32)
    )
    assert len(challenge) == 101
    proof = encode_frame(Proof(db=DB, id=ALICE.id, nonce=bytes(32), sig=bytes(64)))
    assert len(ALICE.id) == 56
    assert proof == (
        b"\xe0\x01\xa5\x61t\x65proof\x62db"
        + link
        + b"\x62id\x78\x38"
        + ALICE.id.encode()
        + b"\x63sig\x58\x40"
        + bytes(64)
        + b"\x65nonce\x58\x20"
        + bytes(32)
    )
    assert len(proof) == 226


# -- a linked device presents its delegation ---------------------------------------------

ROOT, DEVICE = Identity(b"\x41" * 32), Identity(b"\x42" * 32)


def test_a_device_proof_carries_its_delegation_to_the_decision() -> None:
    delegation = Delegation.create(ROOT, DEVICE.id, issued=1_000)
    seen: list[tuple[str, Delegation | None]] = []

    def decide(did: str, presented: Delegation | None = None) -> Role | None:
        seen.append((did, presented))
        user = presented.user if presented is not None else did
        return "member" if user in {ROOT.id, BOB.id} else None

    i = PeerAuth(
        db=DB,
        signer=DEVICE,
        local_peer=PA,
        remote_peer=PB,
        nonce=b"\x0a" * 32,
        initiator=True,
        decide=decide,
        delegation=delegation,
    )
    r = PeerAuth(
        db=DB,
        signer=BOB,
        local_peer=PB,
        remote_peer=PA,
        nonce=b"\x0b" * 32,
        initiator=False,
        decide=decide,
    )
    run(i, r)
    assert r.result is not None and r.result.identity == DEVICE.id
    assert seen[0] == (DEVICE.id, delegation)  # the responder decided on the delegation
    assert seen[1] == (BOB.id, None)


def test_a_proof_with_a_foreign_or_forged_delegation_is_refused_by_the_decoder() -> None:
    other = Identity(b"\x43" * 32)

    def device_proof(device: str) -> Proof:
        return prove(
            DEVICE,
            db=DB,
            prover_peer=PA,
            verifier_peer=PB,
            challenge=b"\x01" * 32,
            nonce=b"\x02" * 32,
            delegation=Delegation.create(ROOT, device, issued=1),
        )

    proof = device_proof(DEVICE.id)
    assert roundtrip(proof) == proof
    with pytest.raises(InvalidValueError, match="delegation to the proof's id"):
        device_proof(other.id)
    frame = encode_frame(proof)
    body = codec.decode(frame[2:] if frame[0] & 0x80 else frame[1:])  # minus the varint
    assert isinstance(body, dict)
    body["delegation"] = dict(body["delegation"], device=other.id)  # the root never signed it
    with pytest.raises(ProtocolError, match="invalid proof message"):
        decode_body(codec.encode(body))
    body["delegation"] = Delegation.create(ROOT, other.id, issued=1).to_value()
    with pytest.raises(ProtocolError, match="delegation to the proof's id"):
        decode_body(codec.encode(body))
    body["delegation"] = "not a delegation"
    with pytest.raises(ProtocolError):
        decode_body(codec.encode(body))

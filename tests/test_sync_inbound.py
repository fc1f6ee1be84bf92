"""The pure rules of what an inbound stream is, what a peer's entries must be, and the
per-peer serve budgets (sync/inbound.py, sync/received.py, sync/serve_limits.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core.access import StaticAccess
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.errors import AccessDeniedError, InvalidDataError, ProtocolError
from orbitstore.storage.memory import MemoryStore
from orbitstore.sync.frames import (
    PROTOCOL_VERSION,
    Challenge,
    Done,
    GetManifest,
    Hello,
    Message,
    Want,
)
from orbitstore.sync.inbound import (
    NOT_OPEN,
    NotOpen,
    Refuse,
    RunSession,
    ServeManifest,
    refusal,
    route_inbound,
)
from orbitstore.sync.peers import sources_for
from orbitstore.sync.received import check_entries, invalid_entry_error
from orbitstore.sync.serve_limits import PeerBudgets, ServeLimits

MANIFEST = Manifest(name="t", type="log", access=StaticAccess.of(["*"]), meta={})
DB, _ = MANIFEST.to_block()
OTHER_MANIFEST = Manifest(name="u", type="log", access=StaticAccess.of(["*"]), meta={})
OTHER, _ = OTHER_MANIFEST.to_block()
WRITER = Identity(b"\x01" * 32)
HELLO = Hello(v=PROTOCOL_VERSION, db=DB, heads=(), have=())
CHALLENGE = Challenge(v=PROTOCOL_VERSION, db=DB, nonce=b"n" * 32)


def public(db: Cid) -> bool | None:
    return False if db == DB else None


def private(db: Cid) -> bool | None:
    return True if db == DB else None


def test_a_manifest_request_is_served_whether_or_not_the_database_is_open() -> None:
    request = GetManifest(v=PROTOCOL_VERSION, db=OTHER)
    assert route_inbound(request, public) == ServeManifest(request)


def test_a_hello_for_a_public_database_runs_a_session() -> None:
    assert route_inbound(HELLO, public) == RunSession(DB, private=False)


def test_a_challenge_for_a_private_database_runs_a_session() -> None:
    assert route_inbound(CHALLENGE, private) == RunSession(DB, private=True)


def test_a_database_not_open_is_not_found() -> None:
    assert route_inbound(HELLO, lambda db: None) == NotOpen(DB)
    assert NOT_OPEN.code == "not_found"


def test_a_hello_for_a_private_database_is_refused_without_our_heads() -> None:
    route = route_inbound(HELLO, private)
    assert isinstance(route, Refuse)
    assert isinstance(route.error, AccessDeniedError)
    assert "challenge, not hello" in str(route.error)
    assert refusal(route.error).code == "access_denied"


def test_a_challenge_for_a_public_database_is_a_protocol_error() -> None:
    route = route_inbound(CHALLENGE, public)
    assert isinstance(route, Refuse) and isinstance(route.error, ProtocolError)


@pytest.mark.parametrize("first", [Done(), Want(cids=())])
def test_anything_else_first_is_refused(first: Message) -> None:
    route = route_inbound(first, public)
    assert isinstance(route, Refuse) and isinstance(route.error, ProtocolError)
    frame = refusal(route.error)
    assert frame.code == "protocol" and "opens with hello" in frame.message


def test_a_refusal_message_is_bounded() -> None:
    assert len(refusal(ProtocolError("x" * 5000)).message) == 1024


def _entries(manifest: Manifest) -> list[Entry]:
    db, _ = manifest.to_block()
    log = OpLog(db=db, access=manifest.access, store=MemoryStore().log_store(db), identity=WRITER)
    log.append_many(range(2))
    return [entry for cid in log.heads if (entry := log.get(cid)) is not None]


def test_entries_of_this_database_by_an_allowed_writer_pass() -> None:
    check_entries(_entries(MANIFEST), DB, lambda writer: True)


def test_an_entry_of_another_database_is_refused() -> None:
    with pytest.raises(ProtocolError, match="of database"):
        check_entries(_entries(OTHER_MANIFEST), DB, lambda writer: True)


def test_an_entry_by_an_unauthorized_writer_is_refused() -> None:
    with pytest.raises(ProtocolError, match="unauthorized"):
        check_entries(_entries(MANIFEST), DB, lambda writer: False)


def test_an_invalid_entry_names_the_user_and_the_device() -> None:
    cid = _entries(MANIFEST)[0].cid
    error = InvalidDataError("not allowed", writer="k")
    plain = invalid_entry_error(cid, error, {})
    assert str(plain).startswith(f"peer sent an invalid entry {cid}: ")
    user = invalid_entry_error(cid, error, {"user": "alice"})
    assert "(by alice)" in str(user) and user.details["user"] == "alice"
    assert user.details["rejected"] == error.code
    device = InvalidDataError("revoked", user="bob", device="d1")
    told = invalid_entry_error(cid, device, {"user": "alice"})  # the log knew better
    assert "(by device d1 of user bob)" in str(told)
    assert told.details["device"] == "d1"


def test_heads_are_asked_of_their_sender_when_connected() -> None:
    assert sources_for("a", {"a", "b"}, lambda p: True) == ["a"]


@given(st.sets(st.sampled_from("bcdef")), st.sets(st.sampled_from("bcdef")))
def test_forwarded_heads_are_asked_of_every_connected_peer_with_the_db(
    connected: set[str], with_db: set[str]
) -> None:
    assert sources_for("a", connected, with_db.__contains__) == sorted(connected & with_db)


def test_a_peer_in_debt_stays_in_debt_across_reconnects() -> None:
    budgets = PeerBudgets(ServeLimits())
    budgets.get("p", 0.0).time.charge(100.0, 0.0)
    budgets.disconnected("p", 1.0)
    assert budgets.get("p", 1.0).time.wait(1.0) > 0
    assert len(budgets) == 1


def test_a_full_budget_is_forgotten_when_the_peer_leaves() -> None:
    budgets = PeerBudgets(ServeLimits())
    first = budgets.get("p", 0.0)
    assert budgets.get("p", 0.0) is first  # kept across sessions
    budgets.disconnected("p", 0.0)
    assert len(budgets) == 0
    budgets.disconnected("q", 0.0)  # never seen: nothing to forget

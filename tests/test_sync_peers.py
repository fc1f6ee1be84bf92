"""What a node knows of a peer (sync/peers.py): claims, undelivered heads, in-flight wants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core.cid import Cid
from orbitstore.sync.peers import Arrivals, InflightWants, PeerRecord, SyncFailure

A, B, C = (Cid.for_block(bytes([i])) for i in range(3))


def test_a_claim_counts_until_held() -> None:
    held: set[Cid] = set()
    record = PeerRecord()
    record.told(frozenset({A, B}), held.__contains__)
    assert record.missing(held.__contains__) == 2
    held.add(A)
    assert record.missing(held.__contains__) == 1


def test_an_older_message_never_removes_a_claim() -> None:
    record = PeerRecord()
    record.told(frozenset({A, B}), lambda c: False)
    record.told(frozenset({A}), lambda c: False)  # a replayed, older announcement
    assert record.missing(lambda c: False) == 2


def test_claims_a_completed_session_did_not_deliver_stop_counting() -> None:
    none = frozenset[Cid]()
    record = PeerRecord()
    record.told(frozenset({A}), lambda c: False)
    started = record.session_started()
    record.told(frozenset({B}), lambda c: False)  # while the session runs
    record.session_completed(started, none, lambda c: False)
    assert record.undelivered == {A}
    assert record.missing(lambda c: False) == 1 and record.all_missing(lambda c: False) == 2
    # The next completed session covers B (told before it started); C is not claimed.
    record.session_completed(record.session_started(), frozenset({C}), lambda c: False)
    assert record.undelivered == {A, B}
    # Another peer delivers A: it is forgotten from both sets.
    assert record.missing({A}.__contains__) == 0
    assert record.undelivered == {B}


@given(st.sampled_from(["applied", "released"]), st.booleans())
def test_a_head_another_session_brings_is_not_undelivered(outcome: str, completed: bool) -> None:
    """A session that skipped the peer's head because another session claimed its block
    (two sessions streaming one log) is over: the head was delivered, not withheld. It
    counts until that other session applies it, and after, if that one fails instead."""
    held: set[Cid] = set()
    arrivals = Arrivals()
    record = PeerRecord()
    record.told(frozenset({A}), held.__contains__)
    started = record.session_started()
    assert arrivals.claim([A]) == [True]  # the other session verifies A's block
    assert arrivals.claim([A]) == [False]  # so this one skips it
    over = record.session_completed if completed else record.failed_to_deliver
    over(started, frozenset({A}), held.__contains__, arrivals.pending)
    assert record.undelivered == set() and record.missing(held.__contains__) == 1
    if outcome == "applied":
        arrivals.applied([A])
        held.add(A)
        assert record.missing(held.__contains__) == 0
    else:  # the other session failed: the peer that sent A still has it to give
        arrivals.release([A])
        assert not arrivals.pending(A)
        assert record.missing(held.__contains__) == 1
    # Without another session bringing it, the same end makes it undelivered (Rule 1).
    if outcome == "released":
        over(record.session_started(), frozenset({A}), held.__contains__, arrivals.pending)
        assert record.undelivered == {A} and record.missing(held.__contains__) == 0


@given(st.lists(st.sampled_from(["x", "y", "z"]), max_size=20), st.sampled_from(["x", "y", "z"]))
def test_one_owner_per_cid(claims: list[str], who: str) -> None:
    inflight = InflightWants()
    owned: dict[Cid, str] = {}
    for i, owner in enumerate(claims):
        cids = {Cid.for_block(bytes([i % 5]))}
        got = inflight.claim(owner, cids)
        for cid in cids:
            owned.setdefault(cid, owner)
            assert (cid in got) == (owned[cid] == owner)
    inflight.release(who)
    assert len(inflight) == sum(1 for o in owned.values() if o != who)


def test_failures_are_typed() -> None:
    from orbitstore.errors import ServeLimitError

    failure = SyncFailure.of(ServeLimitError("too many wants"))
    assert (failure.error, failure.code) == ("ServeLimitError", "serve_limit")
    assert str(failure) == "serve_limit: too many wants"
    assert SyncFailure.of(RuntimeError("x"), code="internal").code == "internal"


def _cids(n: int) -> list[Cid]:
    return [Cid.for_block(bytes([i])) for i in range(n)]


def test_a_block_another_session_verifies_is_skipped_until_released() -> None:
    a, b, c = _cids(3)
    arrivals = Arrivals()
    assert arrivals.claim([a, b]) == [True, True]
    assert arrivals.claim([a, c, c]) == [False, True, False]  # a: the first session's
    arrivals.release([a])  # the first session failed: a may come from anyone again
    assert arrivals.claim([a]) == [True]


def test_a_block_applied_just_now_is_skipped_then_forgotten() -> None:
    cids = _cids(4)
    arrivals = Arrivals(recent=2)
    assert all(arrivals.claim(cids))
    arrivals.applied(cids)
    assert arrivals.claim(cids) == [True, True, False, False]  # only the last 2 kept

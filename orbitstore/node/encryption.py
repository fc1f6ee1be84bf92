"""The keys of one encrypted database on this node, learned from its log.

How it works
============

:class:`DatabaseKeys` reads the reserved payloads of :mod:`orbitstore.core.encryption`
as entries are applied: key announcements (a member's X25519 key) and key epochs (a new
database key sealed to each member). It keeps the epoch keys this node can open — those
sealed to its own derived X25519 key, and the earlier ones an epoch it opened carries —
and which epoch is current: the valid epoch greatest in the total order. The keys are a
function of the log and this node's identity; so that reopening need not learn them
again from the whole log, the learned state is kept at rest sealed under a key derived
from the identity (:meth:`DatabaseKeys.export_sealed`, :mod:`orbitstore.node.key_state`).

Who makes epochs. The owner named in the manifest, always; under capabilities access also
an identity that held ``admin`` in the epoch entry's causal past, as long as that entry is
not retracted (``epoch_authority``, decided by the capability log): an admin's revocation
rotates the key as the owner's does. An admin epoch concurrent with its author's
removal is retracted like any of its writes, and :meth:`DatabaseKeys.revalidate` (called
when a revocation changed what is visible) makes the greatest epoch that is still valid
current again — so a removed admin cannot, by writing on old parents, make the others
seal under a key it chose.

Writes seal under the current epoch (:meth:`DatabaseKeys.seal`); a node whose key the
current epoch does not carry cannot write (NotAMemberError), so a revoked member's new
entries cannot land under an epoch the remaining members no longer expect.

:meth:`DatabaseKeys.readable` turns entries into what the view folds: sealed data it can
open becomes the entry with its plaintext payload; reserved payloads (keys, epochs) are
left out; sealed data under an epoch it has no key for is left out and counted
(a blind replica's view stays empty); a payload that does not open or is not one of the
shapes is left out, counted and logged. The entries themselves are stored and served
either way: validity (hash, signature, parents, clock, writer) does not depend on keys.

This module draws randomness (keys, nonces) from the ``random_bytes`` it is given; the
node passes ``os.urandom``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.bindings

from orbitstore.core import codec
from orbitstore.core import encryption as enc
from orbitstore.core.capability_log import CapabilityLog
from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.nonce_pool import NoncePool
from orbitstore.core.oplog import PayloadSealer
from orbitstore.core.order import OrderKey
from orbitstore.errors import (
    InvalidDataError,
    InvalidEncryptedPayloadError,
    NotAMemberError,
    UsageError,
)
from orbitstore.node import key_state

logger = logging.getLogger("orbitstore.node.encryption")

RandomBytes = Callable[[int], bytes]
_MAX_SEALED = 100_000
_NONE: Any = object()


@dataclass(frozen=True, slots=True)
class EncryptionStatistics:
    epochs: int
    """Valid key epochs in the log."""
    keys: int
    """Epoch keys this node holds."""
    readers: tuple[str, ...]
    """Members of the current epoch (who can read new entries)."""
    unreadable: int
    """Sealed entries seen since open under an epoch this node had no key for."""
    invalid: int
    """Payloads that did not open or had no valid shape (not in the view)."""


EpochAuthority = Callable[[Entry], bool]
"""Whether the (non-owner) writer of an epoch entry may distribute keys: under
capabilities, it held ``admin`` in the entry's causal past and the entry is visible."""


_KeysSnapshot = key_state.KeysState
_Epoch = key_state.Epoch


def _is_acl(payload: object) -> bool:
    return isinstance(payload, dict) and "acl" in payload


def admin_epochs(caps: CapabilityLog) -> EpochAuthority:
    """The epoch authority of a capabilities database: the writer held ``admin`` in the
    epoch entry's causal past, and the entry is not retracted."""

    def authority(entry: Entry) -> bool:
        past = caps.mask(caps.frontier(entry.cid))
        if (entry.writer, "admin", None) not in caps.graph.state(past):
            return False
        return caps.visible(entry)

    return authority


class DatabaseKeys:
    """Epoch keys, announced exchange keys and the current epoch of one database."""

    def __init__(
        self,
        *,
        db: Cid,
        spec: enc.EncryptionSpec,
        identity: Identity,
        random_bytes: RandomBytes,
        clear_acl: bool = False,
        epoch_authority: EpochAuthority | None = None,
    ) -> None:
        self.db = db
        self._authority = epoch_authority
        # Under capabilities access, ACL ops ({"acl": ...}) stay in the clear: every
        # replica evaluates rights from them. Elsewhere such a payload is data, sealed.
        self._clear_acl = clear_acl
        self.spec = spec
        self._identity = identity
        self._random = random_bytes
        self._public, self._secret = enc.exchange_keypair(identity)
        self._keys: dict[Cid, bytes] = {}
        self._epochs: dict[Cid, _Epoch] = {}
        self._current: _Epoch | None = None
        self._announced: dict[str, tuple[OrderKey, bytes]] = {}
        self._unreadable = 0
        self._invalid = 0
        # Plaintexts of what this node sealed, by nonce (unique), until its view takes
        # them: a local append need not open what it has just sealed. Bounded.
        self._sealed: dict[bytes, Any] = {}
        # (current epoch, keys, its sealer): see _data_sealer.
        self._writer: tuple[_Epoch | None, dict[Cid, bytes], enc.DataSealer] | None = None

    # -- learning ---------------------------------------------------------------------

    def learn(self, entries: Iterable[Entry]) -> set[Cid]:
        """Take in the announcements and epochs among ``entries``; returns the epochs
        whose keys this call made known."""
        learned: set[Cid] = set()
        access_changed = False
        for entry in entries:
            payload = entry.payload
            if type(payload) is dict and len(payload) == 1 and enc.SEALED in payload:
                continue  # sealed data, the common case: nothing to learn
            shape = enc.classify(payload)
            if shape is None and _is_acl(entry.payload):
                access_changed = True
            if shape is None or shape == enc.SEALED:
                continue
            try:
                if shape == enc.ANNOUNCE:
                    self._learn_announcement(entry)
                else:
                    learned |= self._learn_epoch(entry)
            except InvalidDataError as exc:
                self._problem(entry, exc)
        if access_changed:  # a revocation may have retracted an admin's epoch
            self.revalidate()
        return learned

    def _learn_announcement(self, entry: Entry) -> None:
        member, public = enc.parse_announcement(self.db, entry.payload[enc.ANNOUNCE])
        known = self._announced.get(member)
        if known is None or known[0] < entry.order_key:  # a newer announcement wins
            self._announced = {**self._announced, member: (entry.order_key, public)}

    def _may_make_epochs(self, entry: Entry) -> bool:
        if entry.writer == self.spec.owner:
            return True
        return self._authority is not None and self._authority(entry)

    def _learn_epoch(self, entry: Entry) -> set[Cid]:
        if not self._may_make_epochs(entry):
            raise InvalidEncryptedPayloadError(
                f"a key epoch by {entry.writer[:24]}..., neither the owner nor an admin",
                writer=entry.writer,
            )
        body = enc.parse_epoch(entry.payload[enc.EPOCH])
        if self.spec.owner not in body.keys:  # the owner rotates: it always reads
            raise InvalidEncryptedPayloadError(
                "a key epoch that does not seal its key to the owner", writer=entry.writer
            )
        epoch = _Epoch(
            cid=entry.cid,
            order=entry.order_key,
            members=frozenset(body.keys),
            entry=None if entry.writer == self.spec.owner else entry,
        )
        found: dict[Cid, bytes] = {}
        sealed = body.keys.get(self._identity.id)
        if sealed is not None and entry.cid not in self._keys:
            # Opened before the epoch counts: one whose key does not open for us (a
            # broken or forged box) is not made current here, or nobody could write.
            key = enc.open_sealed_key(sealed, self._public, self._secret)
            found[entry.cid] = key
            if body.prior is not None:
                found.update(
                    enc.open_prior(
                        key,
                        body.prior,
                        db=self.db,
                        writer=entry.writer,
                        clock=entry.clock,
                        next=entry.next,
                        entry_nonce=entry.nonce,
                    )
                )
        self._epochs = {**self._epochs, entry.cid: epoch}
        if self._current is None or self._current.order < epoch.order:
            self._current = epoch
        learned = {cid for cid in found if cid not in self._keys}
        if found:
            self._keys = {**self._keys, **found}
        return learned

    def _problem(self, entry: Entry, exc: InvalidDataError) -> None:
        self._invalid += 1
        logger.warning("encrypted database %s: entry %s skipped: %s", self.db, entry.cid, exc)

    def revalidate(self) -> bool:
        """After a revocation changed what is visible: drop the epochs by admins that
        are no longer valid and make the greatest valid one current. True if the
        current epoch changed."""
        if not any(e.entry is not None for e in self._epochs.values()):
            return False
        valid = {
            cid: e
            for cid, e in self._epochs.items()
            if e.entry is None or self._may_make_epochs(e.entry)
        }
        current = max(valid.values(), key=lambda e: e.order, default=None)
        changed = current != self._current
        self._epochs, self._current = valid, current
        return changed

    def snapshot(self) -> _KeysSnapshot:
        """The learned state now, O(1): containers are replaced, never changed in place."""
        return (self._keys, self._epochs, self._current, self._announced)

    def restore(self, snapshot: _KeysSnapshot) -> None:
        """Back to ``snapshot`` after the store rolled back the entries learned since."""
        self._keys, self._epochs, self._current, self._announced = snapshot

    # -- at rest ------------------------------------------------------------------------

    def export_sealed(self) -> bytes:
        """The learned state, sealed under this node's state key (see
        :func:`~orbitstore.core.encryption.state_key`): ``nonce ‖ ciphertext``."""
        state = key_state.encode(self._keys, self._epochs, self._current, self._announced)
        nonce = self._random(enc.NONCE_BYTES)
        key = enc.state_key(self._identity)
        return nonce + enc.seal(key, codec.encode(state), nonce=nonce, aad=enc.state_aad(self.db))

    def import_sealed(self, blob: bytes, get_entry: Callable[[Cid], Entry | None]) -> None:
        """Take a state :meth:`export_sealed` made (``get_entry`` finds the entries of
        admins' epochs, whose validity may change). InvalidDataError if it does not open
        or does not fit this log; the state is then unchanged."""
        if len(blob) < enc.NONCE_BYTES:
            raise InvalidEncryptedPayloadError("a sealed key state starts with its nonce")
        nonce, sealed = blob[: enc.NONCE_BYTES], blob[enc.NONCE_BYTES :]
        key = enc.state_key(self._identity)
        plain = enc.unseal(key, sealed, nonce=nonce, aad=enc.state_aad(self.db))
        keys, epochs, current, announced = key_state.decode(codec.decode(plain), get_entry)
        self._keys, self._epochs, self._current, self._announced = keys, epochs, current, announced

    # -- reading ------------------------------------------------------------------------

    def can_open(self, entry: Entry) -> bool:
        """Whether ``entry`` is sealed data under an epoch whose key this node holds."""
        payload = entry.payload
        if enc.classify(payload) != enc.SEALED:
            return False
        epoch = payload[enc.SEALED].get("e") if isinstance(payload[enc.SEALED], dict) else None
        return isinstance(epoch, Cid) and epoch in self._keys

    def open(self, entry: Entry) -> Any:
        """The plaintext payload of a sealed entry; NotAMemberError without its key,
        DecryptionError / InvalidEncryptedPayloadError if it does not open."""
        if enc.classify(entry.payload) != enc.SEALED:
            raise InvalidEncryptedPayloadError(f"entry {entry.cid} carries no sealed payload")
        sealed = enc.parse_sealed(entry.payload[enc.SEALED])
        key = self._keys.get(sealed.epoch)
        if key is None:
            raise NotAMemberError(
                f"this node holds no key for epoch {sealed.epoch} of {self.db}",
                epoch=sealed.epoch,
            )
        return enc.open_payload(
            key,
            sealed,
            db=self.db,
            writer=entry.writer,
            clock=entry.clock,
            next=entry.next,
            entry_nonce=entry.nonce,
        )

    def opened(self, entry: Entry) -> Entry:
        """``entry`` with its plaintext payload if this node can open it, else as is."""
        if not self.can_open(entry):
            return entry
        try:
            return entry.with_payload(self.open(entry))
        except InvalidDataError:
            return entry

    def readable(self, entries: Iterable[Entry]) -> list[Entry]:
        """What the view folds (see the module docstring)."""
        out: list[Entry] = []
        mine_by_nonce = self._sealed
        me = self._identity.id
        for entry in entries:
            payload = entry.payload
            if mine_by_nonce and type(payload) is dict and len(payload) == 1:
                # What this node sealed (its nonce is in _sealed): the plaintext, unopened.
                body = payload.get(enc.SEALED)
                nonce = body.get("n") if type(body) is dict else None
                if type(nonce) is bytes:
                    mine = mine_by_nonce.pop(nonce, _NONE)
                    if mine is not _NONE and entry.writer == me:
                        out.append(entry.with_payload(mine))
                        continue
            shape = enc.classify(payload)
            if shape is None:
                if self._clear_acl and _is_acl(payload):
                    out.append(entry)  # access ops stay in the clear; the access layer owns them
                else:
                    self._problem(entry, InvalidEncryptedPayloadError("a payload in the clear"))
                continue
            if shape != enc.SEALED:
                continue
            if not self.can_open(entry):
                self._unreadable += 1
                continue
            try:
                out.append(entry.with_payload(self.open(entry)))
            except InvalidDataError as exc:
                self._problem(entry, exc)
        return out

    def sealed_under(self, epochs: set[Cid], entries: Iterable[Entry]) -> list[Entry]:
        """Those of ``entries`` sealed under one of ``epochs`` (to fold once learned)."""
        out = []
        for entry in entries:
            if enc.classify(entry.payload) == enc.SEALED:
                body = entry.payload[enc.SEALED]
                if isinstance(body, dict) and body.get("e") in epochs:
                    out.append(entry)
        return out

    # -- writing ------------------------------------------------------------------------

    @property
    def current_readers(self) -> frozenset[str]:
        return frozenset() if self._current is None else self._current.members

    @property
    def is_owner(self) -> bool:
        return self._identity.id == self.spec.owner

    def can_write(self) -> bool:
        return self._current is not None and self._current.cid in self._keys

    def _writing_epoch(self) -> tuple[Cid, bytes]:
        current = self._current
        if current is None or current.cid not in self._keys:
            raise NotAMemberError(
                f"{self._identity.id} holds no key for the current epoch of {self.db}:"
                " it is not (or no longer) a member",
                writer=self._identity.id,
            )
        return current.cid, self._keys[current.cid]

    def _data_sealer(self) -> enc.DataSealer:
        """The sealer of the current epoch (NotAMemberError without its key); made again
        when the current epoch or the keys changed (both are replaced on change)."""
        cached = self._writer
        if cached is not None and cached[0] is self._current and cached[1] is self._keys:
            return cached[2]
        epoch, key = self._writing_epoch()
        sealer = enc.DataSealer(key, db=self.db, epoch=epoch, writer=self._identity.id)
        self._writer = (self._current, self._keys, sealer)
        return sealer

    def sealer(self) -> PayloadSealer:
        """A :data:`~orbitstore.core.oplog.PayloadSealer` for one append call: each
        payload sealed under the current epoch with its own random 192-bit nonce. The
        nonces are drawn from ``random_bytes`` a few at a time
        (:class:`~orbitstore.core.nonce_pool.NoncePool`: one call for up to 64 of them,
        fewer for the first payloads of the call) and each is used once; what the call
        leaves undrawn is dropped with it, so no nonce outlives the call that drew it
        (nor is copied into a forked process that could use it again)."""
        pool = NoncePool(self._random, enc.NONCE_BYTES)
        sealed = self._sealed
        clear_acl = self._clear_acl
        # The keys do not change while one append call seals (they are learned when its
        # entries are applied, after it): the epoch's sealer is looked up once.
        data: enc.DataSealer | None = None

        def seal(payload: Any, clock: int, next: Sequence[Cid], entry_nonce: bytes | None) -> Any:
            nonlocal data
            if clear_acl and _is_acl(payload):
                return payload
            if data is None:
                data = self._data_sealer()
            nonce = pool.take()
            if len(sealed) >= _MAX_SEALED:  # appends that were rolled back
                sealed.clear()
            sealed[nonce] = payload
            return data.seal_encoded(
                payload, nonce=nonce, clock=clock, next=next, entry_nonce=entry_nonce
            )

        return seal

    def seal(self, payload: Any, clock: int, next: Sequence[Cid], entry_nonce: bytes | None) -> Any:
        """The sealed-data payload of ``payload`` in the entry ``(clock, next)`` (a
        :data:`~orbitstore.core.oplog.PayloadSealer`; :meth:`sealer` makes one for a
        whole append call, faster)."""
        return self.sealer()(payload, clock, next, entry_nonce)

    def has_announced(self, member: str) -> bool:
        """Whether ``member`` announced its exchange key in the log."""
        return member in self._announced

    def announcement(self) -> dict[str, Any] | None:
        """This node's key announcement, or None if the log already has it."""
        known = self._announced.get(self._identity.id)
        if known is not None and known[1] == self._public:
            return None
        return enc.announcement(self._identity, self.db)

    def epoch_sealer(self, members: Iterable[str], *, as_admin: bool = False) -> PayloadSealer:
        """A sealer that makes the payload of a new epoch for ``members`` (the owner, or
        with ``as_admin`` an identity the caller found holding ``admin`` now)."""
        if self._identity.id != self.spec.owner and not (as_admin and self._authority):
            raise UsageError(
                f"only the owner ({self.spec.owner}) or an admin rotates the database key"
            )
        # The owner always reads (it rotates); so does an admin that rotates.
        chosen = sorted({*members, self.spec.owner, self._identity.id})
        missing = [m for m in chosen if m not in self._announced]
        if missing:
            raise UsageError(
                "no key announcement in the log from "
                + ", ".join(missing)
                + ": each member announces its key first (db.announce_key())"
            )
        key = self._random(enc.KEY_BYTES)
        sealed = {m: nacl.bindings.crypto_box_seal(key, self._announced[m][1]) for m in chosen}
        prior = dict(self._keys)

        def make(_: Any, clock: int, next: Sequence[Cid], entry_nonce: bytes | None) -> Any:
            boxed = None
            if prior:
                boxed = enc.seal_prior(
                    key,
                    prior,
                    nonce=self._random(enc.NONCE_BYTES),
                    db=self.db,
                    writer=self._identity.id,
                    clock=clock,
                    next=next,
                    entry_nonce=entry_nonce,
                )
            return enc.epoch_payload(sealed, boxed)

        return make

    def statistics(self) -> EncryptionStatistics:
        return EncryptionStatistics(
            epochs=len(self._epochs),
            keys=len(self._keys),
            readers=tuple(sorted(self.current_readers)),
            unreadable=self._unreadable,
            invalid=self._invalid,
        )

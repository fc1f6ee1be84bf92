"""The encryption side of a database handle: :class:`DatabaseEncryption`, which the
handle builds around the keys the node gives it (``Database(keys=...)``) and whose
methods its own (``db.set_readers``, ``db.readers``, ...) delegate to.

See docs/encryption.md. In a database in the clear, ``encrypted`` is False and the
other methods raise UsageError.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from orbitstore.core import encryption as enc
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidDataError, InvalidValueError, UsageError
from orbitstore.storage.keys import KeyStateStore

if TYPE_CHECKING:
    from orbitstore.core.cid import Cid
    from orbitstore.core.devices import Delegation
    from orbitstore.core.oplog import OpLog, PayloadSealer
    from orbitstore.node.database import Database
    from orbitstore.node.encryption import DatabaseKeys
    from orbitstore.storage.base import NodeStore

logger = logging.getLogger("orbitstore.node.encryption")


class DatabaseEncryption:
    """The keys of one database handle ``db`` (None in the clear), their state at rest,
    and the encryption methods of the handle."""

    _keys: DatabaseKeys | None
    _key_state: KeyStateStore | None
    _keys_saved: Any
    _store: NodeStore
    cid: Cid

    def __init__(self, db: Database, keys: DatabaseKeys | None) -> None:
        self._db = db
        self._store = db._store
        self.cid = db.cid
        # The keys of an encrypted database (see node/encryption.py); None in the clear.
        self._keys = keys
        # Its learned keys at rest, sealed (storage/keys.py): reopening skips the log.
        self._key_state = None if keys is None else KeyStateStore(db._store, db.cid)
        self._keys_saved = None  # the keys snapshot last written there

    @property
    def address(self) -> str:
        return self._db.address

    @property
    def _delegation(self) -> Delegation | None:
        return self._db._members.delegation

    def _save_keys(self, seq: int) -> None:
        """Keep the learned keys with the checkpoint they match (sealed anew only when
        they changed; containers are replaced on change, so identity tells)."""
        if self._keys is None or self._key_state is None:
            return
        snapshot = self._keys.snapshot()
        saved = self._keys_saved
        if saved is not None and all(a is b for a, b in zip(snapshot, saved, strict=True)):
            self._key_state.save(seq, None)
            return
        self._key_state.save(seq, self._keys.export_sealed())
        self._keys_saved = snapshot

    def _load_keys(self, since: int) -> int:
        """Take the stored key state if it matches the view's checkpoint ``since``: the
        arrival seq it reflects (0: none, learn from the whole log)."""
        assert self._keys is not None and self._key_state is not None
        row = self._key_state.load()
        if row is None or row[0] > since:
            return 0
        try:
            self._keys.import_sealed(row[1], self.log.get)
        except InvalidDataError as exc:
            logger.warning("stored keys of %s not used (%s); relearning them", self.address, exc)
            return 0
        self._keys_saved = self._keys.snapshot()
        return row[0]

    @property
    def log(self) -> OpLog:
        return self._db.log

    def _readable(self, entries: Sequence[Entry], *, upto: int | None = None) -> list[Entry]:
        """An encrypted database's entries as its view folds them (node/encryption.py):
        keys learned from ``entries`` first; entries stored up to arrival ``upto`` (None:
        all stored now, looked up only then) not in ``entries`` that a newly learned key
        opens are folded now too."""
        keys = self._keys
        assert keys is not None
        learned = keys.learn(entries)
        out = keys.readable(entries)
        if learned:
            if upto is None:
                upto = self._store.log_store(self.cid).last_seq()
            batch = {e.cid for e in entries}
            earlier = [
                Entry.from_trusted_block(cid, block)
                for seq, cid, block in self._store.log_store(self.cid).iter_since(0)
                if seq <= upto and cid not in batch
            ]
            caps = self.log.capabilities
            if caps is not None:  # retracted entries stay out of the view
                earlier = [e for e in earlier if caps.visible(e)]
            out = keys.readable(keys.sealed_under(learned, earlier)) + out
        return out

    def view_entries(self, entries: Sequence[Entry]) -> list[Entry]:
        """``entries`` as the view sees them: unchanged in the clear; for an encrypted
        database, opened with the keys this node holds now (reserved and unreadable
        entries left out). Used to fold AS OF snapshots."""
        return list(entries) if self._keys is None else self._keys.readable(entries)

    async def _append(self, payloads: Iterable[Any], seal: PayloadSealer | None) -> list[Entry]:
        return await self._db._writer.append(payloads, seal)

    @property
    def encrypted(self) -> bool:
        """Whether payloads of this database are sealed (``node.open(encrypted=True)``)."""
        return self._keys is not None

    def _require_keys(self) -> DatabaseKeys:
        if self._keys is None:
            raise UsageError("this database is not encrypted")
        return self._keys

    @property
    def readers(self) -> frozenset[str]:
        """The members of the current key epoch: who can read new entries. (Not
        ``members``: under capabilities that names who holds which right.)"""
        return self._require_keys().current_readers

    @property
    def is_reader(self) -> bool:
        """Whether this node holds the current epoch key (can read new entries and write)."""
        return self._require_keys().can_write()

    def open_entry(self, entry: Entry) -> Any:
        """The plaintext payload of a sealed entry. NotAMemberError without its epoch
        key; DecryptionError if it does not open (tampered, or bound to another entry)."""
        return self._require_keys().open(entry)

    async def announce_key(self, announcement: dict[str, Any] | None = None) -> Entry | None:
        """Publish this node's X25519 key for the database (or another member's
        self-signed ``announcement``, from :func:`orbitstore.core.encryption.announcement`)
        in the log, so the owner can seal keys to it. None if it is already there."""
        keys = self._require_keys()
        payload = keys.announcement() if announcement is None else announcement
        if payload is None:
            return None
        if enc.classify(payload) != enc.ANNOUNCE:
            raise InvalidValueError("not a key announcement")
        try:
            enc.parse_announcement(keys.db, payload[enc.ANNOUNCE])
        except InvalidDataError as exc:  # a bad value handed to us by the caller
            raise InvalidValueError(f"invalid key announcement: {exc}") from exc
        return (await self._append([payload], None))[0]

    async def set_readers(self, members: Sequence[str]) -> Entry:
        """The owner (or, under capabilities, an admin): start a new key epoch readable
        by ``members``, the owner and this node (each must have announced its key).
        Entries written from now on are sealed under the new key; members removed cannot
        read them. Members added read the history too (the earlier keys this node
        holds)."""
        keys = self._require_keys()
        sealer = keys.epoch_sealer(self._with_devices(members), as_admin=self._holds_admin())
        return (await self._append([None], sealer))[0]

    def _with_devices(self, members: Sequence[str]) -> list[str]:
        """Under capabilities access, a user among ``members`` reads through its linked
        devices: each device that announced its key gets the epoch key sealed to it (the
        user itself too if it announced; a user without any announcement is kept, so the
        sealer says who must announce)."""
        keys = self._require_keys()
        caps = self.log.capabilities
        if caps is None:
            return list(members)
        linked = caps.graph.linked()
        out: list[str] = []
        for member in members:
            devices = [d for d in sorted(linked.get(member, {})) if keys.has_announced(d)]
            if devices and not keys.has_announced(member):
                out.extend(devices)
            else:
                out.extend([member, *devices])
        return out

    def _holds_admin(self) -> bool:
        """Whether this node holds ``admin`` now, itself or as a linked device of its user."""
        caps = self.log.capabilities
        me = self.log.identity
        if caps is None or me is None:
            return False
        state = caps.graph.state()
        delegation = getattr(self, "_delegation", None)
        ids = {me.id} if delegation is None else {me.id, delegation.user}
        return any((i, "admin", None) in state for i in ids)

    async def _rotate_without(self, did: str) -> Entry | None:
        """After a revocation: a new epoch without ``did`` if it reads and this node may
        rotate (the owner, or an admin holding the key of the current epoch)."""
        keys = self._require_keys()
        if did not in keys.current_readers or did == keys.spec.owner:
            return None
        if not keys.is_owner and not (self._holds_admin() and keys.can_write()):
            return None
        return await self.set_readers(sorted(keys.current_readers - {did}))

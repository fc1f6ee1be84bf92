"""The encryption methods of a database handle (a mixin of :class:`Database`).

See docs/encryption.md. In a database in the clear, ``encrypted`` is False and the
other methods raise UsageError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from orbitstore.core import encryption as enc
from orbitstore.core.entry import Entry
from orbitstore.errors import InvalidDataError, InvalidValueError, UsageError

if TYPE_CHECKING:
    from orbitstore.core.cid import Cid
    from orbitstore.core.oplog import OpLog, PayloadSealer
    from orbitstore.node.encryption import DatabaseKeys, EncryptionStatistics
    from orbitstore.storage.base import NodeStore


class EncryptionMethods:
    _keys: DatabaseKeys | None
    _store: NodeStore
    cid: Cid

    @property
    def log(self) -> OpLog:  # pragma: no cover - implemented by Database
        raise NotImplementedError

    def _readable(self, entries: Sequence[Entry], *, upto: int) -> list[Entry]:
        """An encrypted database's entries as its view folds them (node/encryption.py):
        keys learned from ``entries`` first; entries stored up to arrival ``upto`` (not
        in ``entries``) that a newly learned key opens are folded now too."""
        keys = self._keys
        assert keys is not None
        learned = keys.learn(entries)
        out = keys.readable(entries)
        if learned:
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

    async def _append(
        self, payloads: Iterable[Any], seal: PayloadSealer | None
    ) -> list[Entry]:  # pragma: no cover - implemented by Database
        raise NotImplementedError

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
        """Owner only: start a new key epoch readable by ``members`` and the owner (each
        must have announced its key). Entries written from now on are sealed under the new
        key; members removed cannot read them. Members added read the history too."""
        keys = self._require_keys()
        sealer = keys.epoch_sealer(self._with_devices(members))
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

    async def _rotate_without(self, did: str) -> Entry | None:
        """After a revocation: a new epoch without ``did`` if it reads and this node is
        the owner (an admin's revocation rotates when the owner calls set_readers)."""
        keys = self._require_keys()
        if did not in keys.current_readers or not keys.is_owner or did == keys.spec.owner:
            return None
        return await self.set_readers(sorted(keys.current_readers - {did}))

    def encryption_statistics(self) -> EncryptionStatistics:
        return self._require_keys().statistics()

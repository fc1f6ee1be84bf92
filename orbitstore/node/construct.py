"""The parts of a database handle the node builds from its manifest: the op-log (with
its capability log under capabilities access) and, for an encrypted database, its keys.
The node then hands them, with its shared services, to the handle's class
(:func:`orbitstore.node.types.database_class`).
"""

from __future__ import annotations

import os

from orbitstore.core.access import CapabilitiesAccess
from orbitstore.core.capability_log import CapabilityLog, payload_keys
from orbitstore.core.cid import Cid
from orbitstore.core.entry import NONCE_LENGTH
from orbitstore.core.identity import Identity
from orbitstore.core.limits import EntryLimits
from orbitstore.core.manifest import Manifest
from orbitstore.core.oplog import OpLog
from orbitstore.node.encryption import DatabaseKeys, admin_epochs
from orbitstore.node.manifests import encryption_spec
from orbitstore.storage.base import NodeStore


def new_nonce() -> bytes:
    # Each entry gets fresh random bytes, so two devices holding one identity never
    # build the same entry for two operations (see docs/wire-format.md, field "n").
    return os.urandom(NONCE_LENGTH)


def new_log(
    db: Cid, manifest: Manifest, *, store: NodeStore, identity: Identity, limits: EntryLimits
) -> OpLog:
    """The op-log of ``db`` over ``store``, writing as ``identity``."""
    log_store = store.log_store(db)
    log = OpLog(
        db=db,
        access=manifest.access,
        store=log_store,
        identity=identity,
        limits=limits,
        nonce_source=new_nonce,
    )
    if isinstance(manifest.access, CapabilitiesAccess):
        id_field = manifest.meta.get("id_field", "_id")
        log.capabilities = CapabilityLog(
            owner=manifest.access.owner,
            store=log_store,
            get_entry=log.get,
            keys_of=lambda p: payload_keys(p, id_field if isinstance(id_field, str) else "_id"),
        )
    return log


def new_keys(db: Cid, manifest: Manifest, *, identity: Identity, log: OpLog) -> DatabaseKeys | None:
    """The keys of an encrypted database (None in the clear), held by ``identity``."""
    spec = encryption_spec(manifest)
    if spec is None:
        return None
    return DatabaseKeys(
        db=db,
        spec=spec,
        identity=identity,
        random_bytes=os.urandom,
        clear_acl=isinstance(manifest.access, CapabilitiesAccess),
        epoch_authority=None if log.capabilities is None else admin_epochs(log.capabilities),
    )

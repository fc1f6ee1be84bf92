"""The learned key state of an encrypted database, as the plain value sealed at rest.

:meth:`orbitstore.node.encryption.DatabaseKeys.export_sealed` seals :func:`encode`'s
value under the node's state key; ``import_sealed`` opens it and takes :func:`decode`'s.
The value (canonical DAG-CBOR once encoded)::

    {"v": 1, "keys": [[epoch cid, key], ...],
     "epochs": [[cid, clock, writer, order cid, [member, ...], by_admin], ...],
     "current": epoch cid | null, "announced": [[did, clock, writer, cid, x25519], ...]}

An admin's epoch keeps its entry (its validity may change with later revocations), so
decoding looks it up in the log again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orbitstore.core.cid import Cid
from orbitstore.core.entry import Entry
from orbitstore.core.order import OrderKey
from orbitstore.errors import InvalidEncryptedPayloadError


@dataclass(frozen=True, slots=True)
class Epoch:
    cid: Cid
    order: OrderKey
    members: frozenset[str]
    entry: Entry | None = None  # kept for epochs by admins: their validity may change


KeysState = tuple[
    dict[Cid, bytes], dict[Cid, Epoch], "Epoch | None", dict[str, tuple[OrderKey, bytes]]
]
"""(epoch keys, epochs, the current epoch, key announcements by member)."""


def encode(
    keys: dict[Cid, bytes],
    epochs: dict[Cid, Epoch],
    current: Epoch | None,
    announced: dict[str, tuple[OrderKey, bytes]],
) -> dict[str, Any]:
    """The state as the value sealed at rest (see the module docstring)."""
    return {
        "v": 1,
        "keys": [[cid, key] for cid, key in sorted(keys.items())],
        "epochs": [
            [e.cid, e.order[0], e.order[1], e.order[2], sorted(e.members), e.entry is not None]
            for e in sorted(epochs.values(), key=lambda e: e.order)
        ],
        "current": None if current is None else current.cid,
        "announced": [
            [did, order[0], order[1], order[2], public]
            for did, (order, public) in sorted(announced.items())
        ],
    }


def decode(state: object, get_entry: Callable[[Cid], Entry | None]) -> KeysState:
    """The state :func:`encode` made; InvalidEncryptedPayloadError if it is malformed
    or names an admin's epoch the log lacks."""
    try:
        if not isinstance(state, dict) or state.get("v") != 1:
            raise InvalidEncryptedPayloadError("unknown key state version")
        keys = {cid: k for cid, k in state["keys"]}
        epochs: dict[Cid, Epoch] = {}
        for cid, clock, writer, ocid, members, admin in state["epochs"]:
            entry = get_entry(cid) if admin else None
            if admin and entry is None:
                raise InvalidEncryptedPayloadError(f"epoch {cid} is not in the log")
            epochs[cid] = Epoch(
                cid=cid, order=(clock, writer, ocid), members=frozenset(members), entry=entry
            )
        current = state["current"]
        announced = {
            did: ((clock, writer, ocid), public)
            for did, clock, writer, ocid, public in state["announced"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidEncryptedPayloadError(f"a malformed key state: {exc}") from exc
    if current is not None and current not in epochs:
        raise InvalidEncryptedPayloadError("the key state names an unknown current epoch")
    return keys, epochs, None if current is None else epochs[current], announced


__all__ = ["Epoch", "KeysState", "decode", "encode"]

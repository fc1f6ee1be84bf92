"""Composition root: identity, storage, network and open databases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbitstore._lazy import lazy_getattr

if TYPE_CHECKING:
    from orbitstore.node.config import NodeConfig as NodeConfig
    from orbitstore.node.counter import Counter as Counter
    from orbitstore.node.database import Database as Database
    from orbitstore.node.documents import Documents as Documents
    from orbitstore.node.node import Node as Node
    from orbitstore.node.node import open_node as open_node
    from orbitstore.node.verify import verify_blocks as verify_blocks

# Imported on first use: importing this package stays cheap.
_EXPORTS: dict[str, str] = {
    "NodeConfig": "orbitstore.node.config",
    "Counter": "orbitstore.node.counter",
    "Database": "orbitstore.node.database",
    "Documents": "orbitstore.node.documents",
    "Node": "orbitstore.node.node",
    "open_node": "orbitstore.node.node",
    "verify_blocks": "orbitstore.node.verify",
}
__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

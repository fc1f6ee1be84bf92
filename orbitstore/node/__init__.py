"""Composition root: identity, storage, network and open databases."""

from orbitstore.node.config import NodeConfig as NodeConfig
from orbitstore.node.counter import Counter as Counter
from orbitstore.node.database import Database as Database
from orbitstore.node.documents import Documents as Documents
from orbitstore.node.node import Node as Node
from orbitstore.node.node import open_node as open_node
from orbitstore.node.verify import verify_blocks as verify_blocks

"""The public methods of :class:`Node` and the database handles keep their names and
signatures while their insides move (mixins became injected services; issue #11).

``tests/fixtures/handle_methods.json`` was written from the handles as they were before
that move; a change to it is a change to the public API and belongs in CHANGELOG.md.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from orbitstore.node.database import Database
from orbitstore.node.node import Node
from orbitstore.node.types import database_class

FIXTURE = Path(__file__).parent / "fixtures" / "handle_methods.json"


def describe(cls: type) -> dict[str, str]:
    """Each public member of ``cls``: its signature, or ``property`` / ``attribute``."""
    members: dict[str, str] = {}
    for attr in sorted(dir(cls)):
        if attr.startswith("_"):
            continue
        value: Any = inspect.getattr_static(cls, attr)
        if isinstance(value, property):
            members[attr] = "property"
        elif callable(value) or isinstance(value, (classmethod, staticmethod)):
            members[attr] = str(inspect.signature(getattr(cls, attr)))
        else:
            members[attr] = "attribute"
    return members


def handles() -> dict[str, type]:
    classes: dict[str, type] = {"Node": Node, "Database": Database}
    for type_name in ("feed", "keyvalue", "documents", "counter", "ydoc"):
        cls = database_class(type_name)[0]
        classes[cls.__name__] = cls
    return classes


def test_public_members_of_node_and_handles_are_unchanged() -> None:
    expected = json.loads(FIXTURE.read_text("utf-8"))
    actual = {name: describe(cls) for name, cls in handles().items()}
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name] == expected[name], name

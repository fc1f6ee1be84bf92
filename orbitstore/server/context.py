"""What every handler reaches through ``request.app.state``: the node and the config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection

from orbitstore.errors import InvalidValueError
from orbitstore.node.node import Node
from orbitstore.server.config import ApiConfig
from orbitstore.server.handles import Handles

if TYPE_CHECKING:
    from orbitstore.server.ywebsocket import Rooms


@dataclass(slots=True, kw_only=True)
class ApiContext:
    node: Node
    config: ApiConfig
    handles: Handles
    rooms: Rooms = field(init=False)

    def __post_init__(self) -> None:
        from orbitstore.server.ywebsocket import Rooms

        self.rooms = Rooms(self)


def context(conn: HTTPConnection) -> ApiContext:
    api: ApiContext = conn.app.state.orbitstore
    return api


def int_param(
    params: QueryParams, name: str, *, default: int | None = None, minimum: int = 0
) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidValueError(
            f"query parameter {name!r} is not an integer: {text!r:.40}"
        ) from None
    if value < minimum:
        raise InvalidValueError(f"query parameter {name!r} must be at least {minimum}")
    return value


def float_param(params: QueryParams, name: str, *, default: float) -> float:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidValueError(f"query parameter {name!r} is not a number: {text!r:.40}") from None
    if not value >= 0:
        raise InvalidValueError(f"query parameter {name!r} must be >= 0")
    return value


def bool_param(params: QueryParams, name: str, *, default: bool = False) -> bool:
    text = params.get(name)
    if text is None or text == "":
        return default
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise InvalidValueError(f"query parameter {name!r} is true or false, not {text!r:.40}")

"""The API server's configuration: where it binds, who may talk to it, what it accepts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from orbitstore.errors import InvalidValueError, UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4402
# 8 MiB: above the largest entry a write can make (512 KiB by default) with room for a
# batch of documents or a large Yjs state, small enough that a flood of requests cannot
# exhaust memory.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# WebSocket messages (y-websocket updates, watch requests): as large as a body.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# CAR imports (POST /v1/import) are larger than any other body: a whole database. 1 GiB,
# spooled to a temporary file past 8 MiB.
DEFAULT_MAX_IMPORT_BYTES = 1024 * 1024 * 1024
# Long-poll requests wait at most this long (a client may ask for less), so proxies and
# clients with their own timeouts see an answer.
DEFAULT_MAX_LONGPOLL_S = 60.0
# Changes per page of the changes feed unless the client asks for fewer.
DEFAULT_CHANGES_LIMIT = 1000
# Outgoing WebSocket messages queued for a slow client before it is disconnected
# (it resumes from its last cursor, or re-syncs its document).
DEFAULT_SEND_QUEUE = 1024


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """How the HTTP + WebSocket API is served.

    Binding anything but a loopback address needs a ``token``: every request must then
    carry ``Authorization: Bearer <token>`` (WebSockets may pass ``?token=`` instead,
    since browsers cannot set headers on them). A token may be set on loopback too.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_import_bytes: int = DEFAULT_MAX_IMPORT_BYTES
    max_longpoll_s: float = DEFAULT_MAX_LONGPOLL_S
    changes_limit: int = DEFAULT_CHANGES_LIMIT
    send_queue: int = DEFAULT_SEND_QUEUE

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise InvalidValueError("the API host is a non-empty string")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InvalidValueError(f"the API port is 0..65535, not {self.port!r}")
        if self.token is not None and (not isinstance(self.token, str) or len(self.token) < 16):
            raise InvalidValueError("an API token is a string of at least 16 characters")
        if self.token is None and not is_loopback(self.host):
            raise UsageError(
                f"binding the API to {self.host} (not loopback) needs a token: set one"
                " (--api-token or ORBITSTORE_API_TOKEN) so only its holders can talk to it"
            )
        for name in (
            "max_body_bytes",
            "max_message_bytes",
            "max_import_bytes",
            "changes_limit",
            "send_queue",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"{name} is a positive integer, not {value!r}")
        if not self.max_longpoll_s > 0:
            raise InvalidValueError("max_longpoll_s is a positive number of seconds")

    @classmethod
    def parse_bind(cls, text: str, *, token: str | None = None) -> ApiConfig:
        """``HOST:PORT``, ``PORT`` or ``HOST`` (``[::1]:4402`` for IPv6)."""
        host, port = DEFAULT_HOST, DEFAULT_PORT
        text = text.strip()
        if text.isdigit():
            port = int(text)
        elif text.startswith("["):
            close = text.find("]")
            if close < 0:
                raise InvalidValueError(f"not HOST:PORT: {text!r}")
            host = text[1:close]
            rest = text[close + 1 :]
            if rest:
                port = _port(rest.removeprefix(":"), text)
        elif ":" in text:
            head, _, tail = text.rpartition(":")
            host, port = head or DEFAULT_HOST, _port(tail, text)
        elif text:
            host = text
        return cls(host=host, port=port, token=token)


def _port(text: str, whole: str) -> int:
    if not text.isdigit():
        raise InvalidValueError(f"not HOST:PORT: {whole!r}")
    return int(text)

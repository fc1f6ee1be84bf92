"""Pairing a new device: a short one-time code, bound to the new device's key.

How it works
============

The device holding the user's root key (*A*) opens a pairing: it draws a code of
:data:`CODE_CHARS` Crockford base32 characters (40 bits) and shows a *pairing link*,
``<A's libp2p address with /p2p/<peer id>>#pair=<code>``. The new device (*B*) dials A
at that address (libp2p Noise authenticates A's peer id: nobody else can answer on that
channel, and nobody can read it) and sends one :func:`request`:

    {t: "pair", v: 1, device: <B's did>, proof: HMAC-SHA256(code, ctx), sig: <B signs ctx>}

with ``ctx = DOMAIN ‖ A's peer id ‖ B's did``. A (:class:`PairingDesk`) finds the open
code whose HMAC matches (constant-time), checks B's signature (B holds the key it
names), signs a delegation to B's key and answers ``{t: "delegation", delegation}``;
anything else is answered ``{t: "refused", reason}``. A code is used once and lives
:data:`DEFAULT_TTL` seconds; after :data:`MAX_FAILURES` wrong proofs in a row, every
open code is closed (an attacker guessing online has at most that many tries per code:
5 / 2**40, about 4.5e-12).

Threat model: the code only has to resist online guessing, because the channel is
authenticated to A and encrypted (the link carries A's peer id). A proof seen by an
eavesdropper on some other channel would let them brute-force the code offline — which is
why a code must never travel without the peer id, and why a code typed with only an
address found by discovery (no peer id) would need a PAKE (SPAKE2) instead; see
docs/identity.md. This module is sans-IO: time and randomness are passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Final

from orbitstore.core import codec
from orbitstore.core.devices import ANY_DATABASE, Delegation
from orbitstore.core.identity import Identity, verify
from orbitstore.errors import (
    BadSignatureError,
    DecodeError,
    InvalidDataError,
    InvalidValueError,
    ProtocolError,
)

DOMAIN: Final = b"orbitstore pairing v1\x00"
PAIR_MARK: Final = "#pair="
CODE_CHARS: Final = 8
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
DEFAULT_TTL: Final = 300.0
MAX_FAILURES: Final = 5
MAX_MESSAGE: Final = 4096


def new_code(random: bytes) -> str:
    """A code from 5 random bytes (40 bits), shown as ``XXXX-XXXX``."""
    if len(random) != 5:
        raise InvalidValueError("a pairing code takes 5 random bytes")
    n = int.from_bytes(random, "big")
    chars = [_ALPHABET[(n >> (5 * i)) & 31] for i in reversed(range(CODE_CHARS))]
    return "".join(chars[:4]) + "-" + "".join(chars[4:])


def normalize_code(code: str) -> str:
    """A typed code in canonical form (case, dashes, spaces, and I/L/O read as 1/1/0)."""
    if not isinstance(code, str):
        raise InvalidValueError("a pairing code is text")
    text = code.upper().replace("-", "").replace(" ", "")
    text = text.replace("I", "1").replace("L", "1").replace("O", "0")
    if len(text) != CODE_CHARS or any(c not in _ALPHABET for c in text):
        raise InvalidValueError(f"a pairing code is {CODE_CHARS} letters and digits (XXXX-XXXX)")
    return text[:4] + "-" + text[4:]


def pairing_link(address: str, code: str) -> str:
    return f"{address}{PAIR_MARK}{code}"


def parse_pairing_link(link: str) -> tuple[str, str]:
    """``(address, code)`` of a pairing link; InvalidValueError if it is not one."""
    if not isinstance(link, str) or PAIR_MARK not in link:
        raise InvalidValueError("a pairing link is <address>/p2p/<peer id>#pair=<code>")
    address, _, code = link.partition(PAIR_MARK)
    if "/p2p/" not in address:
        raise InvalidValueError("a pairing link names the peer id (/p2p/...) of the device")
    return address, normalize_code(code)


def _context(peer: str, device: str) -> bytes:
    return DOMAIN + peer.encode() + b"\x00" + device.encode()


def _proof(code: str, peer: str, device: str) -> bytes:
    return hmac.new(normalize_code(code).encode(), _context(peer, device), hashlib.sha256).digest()


def request(device: Identity, code: str, peer: str) -> bytes:
    """B's one message to the device ``peer`` (its libp2p peer id)."""
    ctx = _context(peer, device.id)
    return codec.encode(
        {
            "t": "pair",
            "v": 1,
            "device": device.id,
            "proof": _proof(code, peer, device.id),
            "sig": device.sign(ctx),
        }
    )


def parse_answer(data: bytes, device: str) -> Delegation:
    """The delegation in A's answer (ProtocolError if refused or malformed)."""
    try:
        msg = codec.decode(data)
    except DecodeError as exc:
        raise ProtocolError(f"not a pairing answer: {exc}") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("a pairing answer is a map")
    if msg.get("t") == "refused" and isinstance(msg.get("reason"), str):
        raise ProtocolError(f"the device refused to pair: {msg['reason'][:200]}")
    if msg.get("t") != "delegation" or set(msg) != {"t", "delegation"}:
        raise ProtocolError("a pairing answer is {t: delegation, delegation}")
    try:
        delegation = Delegation.from_value(msg["delegation"])
    except InvalidDataError as exc:
        raise ProtocolError(f"the pairing answer holds no valid delegation: {exc}") from exc
    if delegation.device != device:
        raise ProtocolError("the pairing answer delegates to another device")
    return delegation


def refused(reason: str) -> bytes:
    return codec.encode({"t": "refused", "reason": reason})


@dataclass
class _Open:
    code: str
    expires: float
    purpose: str
    delegation_expires: int | None


@dataclass
class PairingDesk:
    """A's side: open codes and the answers to requests (see the module docstring)."""

    peer: str
    """This node's libp2p peer id (requests are bound to it)."""
    _open: dict[str, _Open] = field(default_factory=dict)
    _failures: int = 0
    paired: list[Delegation] = field(default_factory=list)

    def open(
        self,
        random: bytes,
        now: float,
        *,
        ttl: float = DEFAULT_TTL,
        purpose: str = ANY_DATABASE,
        expires: int | None = None,
    ) -> str:
        """Open a code valid until ``now + ttl`` (monotonic seconds)."""
        if not 0 < ttl <= 3600:
            raise InvalidValueError("a pairing code lives 1 s to 1 hour")
        code = new_code(random)
        self._open[code] = _Open(code, now + ttl, purpose, expires)
        self._failures = 0
        return code

    def close(self, code: str) -> None:
        self._open.pop(code, None)

    @property
    def codes(self) -> list[str]:
        return sorted(self._open)

    def answer(self, data: bytes, *, now: float, root: Identity, issued: int) -> bytes:
        """The answer to B's request: a delegation signed by ``root``, or a refusal."""
        self._open = {c: o for c, o in self._open.items() if o.expires > now}
        try:
            msg = self._parse(data)
        except ProtocolError as exc:
            return refused(str(exc))
        device = msg["device"]
        found = next(
            (
                o
                for o in self._open.values()
                if hmac.compare_digest(_proof(o.code, self.peer, device), msg["proof"])
            ),
            None,
        )
        if found is None:
            self._failures += 1
            if self._failures >= MAX_FAILURES:
                self._open.clear()  # too many wrong guesses: every code is void
            return refused("wrong or expired pairing code")
        try:
            verify(device, msg["sig"], _context(self.peer, device))
        except (BadSignatureError, InvalidDataError):
            return refused("the request is not signed by the device key it names")
        self.close(found.code)
        self._failures = 0
        try:
            delegation = Delegation.create(
                root,
                device,
                issued=issued,
                expires=found.delegation_expires,
                purpose=found.purpose,
            )
        except InvalidValueError as exc:
            return refused(str(exc))
        self.paired.append(delegation)
        return codec.encode({"t": "delegation", "delegation": delegation.to_value()})

    @staticmethod
    def _parse(data: bytes) -> dict[str, Any]:
        if len(data) > MAX_MESSAGE:
            raise ProtocolError("a pairing request is small")
        try:
            msg = codec.decode(data)
        except DecodeError as exc:
            raise ProtocolError(f"not a pairing request: {exc}") from exc
        if (
            not isinstance(msg, dict)
            or set(msg) != {"t", "v", "device", "proof", "sig"}
            or msg["t"] != "pair"
            or msg["v"] != 1
            or not isinstance(msg["device"], str)
            or not isinstance(msg["proof"], bytes)
            or not isinstance(msg["sig"], bytes)
        ):
            raise ProtocolError("a pairing request is {t: pair, v: 1, device, proof, sig}")
        return msg

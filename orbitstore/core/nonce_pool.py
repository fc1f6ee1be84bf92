"""Random nonces drawn a few at a time, each handed out once (pure bookkeeping).

One ``os.urandom`` call costs about as much as 100 bytes of its output, so a writer that
seals many payloads in one call draws their 192-bit nonces in growing slices (1, 2, 4,
... up to :data:`NONCES_PER_DRAW` per draw) instead of one draw each. Every nonce is
random bytes straight from the source, never derived; a pool lives for one append call
and what it leaves undrawn is dropped with it (docs/encryption.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

#: Nonces one draw from the random source yields at most (64 x 24 bytes).
NONCES_PER_DRAW: Final = 64


class NoncePool:
    """Random ``size``-byte nonces for one append call, each handed out once."""

    __slots__ = ("_next", "_nonce_bytes", "_pool", "_random", "_size")

    def __init__(self, random_bytes: Callable[[int], bytes], nonce_bytes: int) -> None:
        self._random = random_bytes
        self._nonce_bytes = nonce_bytes
        self._pool = b""
        self._next = 0
        self._size = 1

    def take(self) -> bytes:
        start = self._next
        if start >= len(self._pool):
            self._pool = self._random(self._size * self._nonce_bytes)
            self._size = min(2 * self._size, NONCES_PER_DRAW)
            start = 0
        self._next = start + self._nonce_bytes
        return self._pool[start : self._next]


__all__ = ["NONCES_PER_DRAW", "NoncePool"]

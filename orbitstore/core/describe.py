"""Describe untrusted values in error messages without ``repr``.

``repr`` of a value from elsewhere is a hazard in an error message: a list nested a few
thousand deep raises RecursionError, a large one costs its whole size before any
truncation (``{v!r:.20}`` formats everything, then cuts), and an object of a foreign
class runs that class's code. :func:`describe` does none of these.

This module imports nothing from orbitstore, so every module may use it.
"""

from __future__ import annotations

from typing import Final

_PREVIEW_CHARS: Final = 40
# A repr escapes what it cannot show ('\U0002ebe1' is one character): it is cut too.
_PREVIEW_REPR: Final = 60


def describe(value: object) -> str:
    """A short, bounded description of any value, for error messages about bad input.

    Gives the type and, for scalars, a preview: ``int 7``, ``str 'abc'``,
    ``str of 9000 chars 'abc…'``, ``bytes of 64 bytes 00ff…``, ``list of 3 items``,
    ``map of 2 keys`` (:func:`orbitstore.core.codec.describe` adds ``link bafy…``).
    It never calls ``repr`` on a container, never runs code of the value's class
    (exact type checks only), and never gives more than about 100 characters: use it,
    not ``{value!r}``, for anything that came from a peer, a file or a caller.
    """
    if value is None or type(value) is bool:
        return repr(value)
    if type(value) is int:
        return f"int {value}" if -(2**64) <= value <= 2**64 else f"int of {value.bit_length()} bits"
    if type(value) is float:
        return f"float {value!r}"
    if type(value) is str:
        if len(value) <= _PREVIEW_CHARS:
            shown = repr(value)
            return (
                f"str {shown}" if len(shown) <= _PREVIEW_REPR else f"str {shown[:_PREVIEW_REPR]}…"
            )
        return f"str of {len(value)} chars {repr(value[:_PREVIEW_CHARS])[:_PREVIEW_REPR]}…"
    if type(value) is bytes or type(value) is bytearray:
        more = "…" if len(value) > 16 else ""
        return f"bytes of {len(value)} bytes {value[:16].hex()}{more}"
    if type(value) is list or type(value) is tuple:
        return f"{type(value).__name__} of {len(value)} items"
    if type(value) is dict:
        return f"map of {len(value)} keys"
    return f"a {type(value).__name__[:40]} object"

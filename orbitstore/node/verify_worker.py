"""The Ed25519 verification worker: a process of its own that checks signatures.

Why a process and not a thread: libsodium releases the GIL while it verifies, but a
verifying thread must take the GIL back after every signature, and CPython hands it
over only every ``sys.getswitchinterval()`` (5 ms) while the event loop's thread is busy
applying entries. Measured here: a thread verifies 16,000 signatures/s beside an idle
event loop and 200/s beside a busy one. A worker process shares no GIL, so it verifies
at libsodium's speed on another core while the node decodes, applies and commits.

This file runs as a script (``python -I verify_worker.py``, started by
:class:`orbitstore.node.verify.Verifier`) and imports nothing of orbitstore: it starts
in ~30 ms, and the node's own code is never re-executed in it (the trap of
``multiprocessing``'s spawn and forkserver, which re-import the user's ``__main__``).

The protocol, on the worker's stdin and stdout (integers big-endian):

- the worker writes ``R`` once it is ready;
- request: ``u32 size``, then ``size`` bytes: ``u8 flags`` (bit 0: stop at the first bad
  signature), ``u32 count``, then ``count`` items of ``public key (32) ‖ u32 n ‖
  signature (64) ‖ message (n)``;
- answer: ``u32 count``, then one byte per item: 1 valid, 0 invalid, 2 not checked
  (after the first invalid one, when asked to stop there).

The check is ``crypto_sign_open(signature ‖ message, public key)``, the function
:func:`orbitstore.core.identity.signature_valid` calls: one rule on every node. The
worker ends at the end of its input (the node closed the pipe) or on a malformed
request.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

from nacl.bindings import crypto_sign_open

_STOP_AT_FIRST = 1


def answer(body: bytes) -> bytes:
    """The answer to one request body (the bytes after its size)."""
    flags, count = struct.unpack_from(">BI", body, 0)
    out = bytearray(b"\x02" * count)
    at = 5
    for i in range(count):
        (n,) = struct.unpack_from(">I", body, at + 32)
        public_key = body[at : at + 32]
        signed = body[at + 36 : at + 100 + n]
        at += 100 + n
        if len(signed) != 64 + n:
            raise ValueError("truncated request")
        try:
            crypto_sign_open(signed, public_key)
        except Exception:  # BadSignatureError, or a key libsodium refuses
            out[i] = 0
            if flags & _STOP_AT_FIRST:
                break
        else:
            out[i] = 1
    if at != len(body) and not (flags & _STOP_AT_FIRST and 0 in out):
        raise ValueError("trailing bytes in request")
    return struct.pack(">I", count) + bytes(out)


def serve(read: BinaryIO, write: BinaryIO) -> None:
    write.write(b"R")
    write.flush()
    while True:
        head = read.read(4)
        if len(head) < 4:
            return
        (size,) = struct.unpack(">I", head)
        body = read.read(size)
        if len(body) < size:
            return
        write.write(answer(body))
        write.flush()


if __name__ == "__main__":
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (ValueError, struct.error, BrokenPipeError, KeyboardInterrupt):
        sys.exit(1)

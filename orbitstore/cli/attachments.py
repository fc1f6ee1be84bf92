"""``orbitstore attach`` and ``orbitstore cat``: files as attachments (docs/attachments.md).

Both go through the API of the ``orbitstore serve`` that owns the node directory when
one runs (``PUT`` / ``GET /v1/attachments``, streamed, so a large file never sits in
memory), and open the directory directly otherwise (then ``cat`` reads only what this
node holds: it has no network to fetch from). The parser side is here too and imports
nothing heavy, so ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:  # `--help` imports this module: no http.client or codec for it
    import http.client

    from orbitstore.cli.output import Output
    from orbitstore.cli.remote import Client

_CHUNK = 256 * 1024
# Reading an attachment may fetch it from peers first: longer than an ordinary call.
_TIMEOUT_S = 600.0


def add_parsers(sub: Any) -> None:
    attach = sub.add_parser(
        "attach", help="store a file as an attachment (IPFS UnixFS) and print its CID"
    )
    attach.add_argument("file", help="the file to store, or - for standard input")
    attach.set_defaults(handler="attachments.attach")
    cat = sub.add_parser(
        "cat", help="write an attachment's bytes (fetched from peers if needed) to stdout"
    )
    cat.add_argument("cid", help="the attachment's CID (bafy..., bafk... or Qm...)")
    cat.add_argument("-o", "--output", help="write to this file instead of standard output")
    cat.set_defaults(handler="attachments.cat")


# --- directly on the node directory -----------------------------------------------------------


async def cmd_attach(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node import open_node

    async with open_node(home) as node:
        source: Any = sys.stdin.buffer if args.file == "-" else Path(args.file)
        cid = await node.attachments.attach(source)
        _attached(out, str(cid), node.attachments.size_hint(cid))
    return 0


async def cmd_cat(args: argparse.Namespace, home: Path, out: Output) -> int:
    from orbitstore.node import open_node

    async with open_node(home) as node:
        size = 0
        with _Target(args.output) as (write, finish):
            async for chunk in node.attachments.open(args.cid):
                write(chunk)
                size += len(chunk)
            finish()
        _written(out, args, size)
    return 0


def _attached(out: Output, cid: str, size: int | None) -> None:
    out.emit(cid, {"cid": cid, "size": size})


def _written(out: Output, args: argparse.Namespace, size: int) -> None:
    if args.output is not None:
        out.emit(f"wrote {size} bytes to {args.output}", {"file": args.output, "size": size})


class _Target:
    """Where ``cat`` writes: standard output, or ``<file>.partial`` renamed to the file
    once every byte arrived (a failed read never leaves half a file under its name)."""

    def __init__(self, output: str | None) -> None:
        self._output = None if output is None else Path(output)
        self._file: BinaryIO | None = None

    def __enter__(self) -> tuple[Any, Any]:
        if self._output is None:
            return sys.stdout.buffer.write, sys.stdout.buffer.flush
        self._partial = self._output.with_name(self._output.name + ".partial")
        self._file = self._partial.open("wb")
        return self._file.write, self._finish

    def _finish(self) -> None:
        assert self._file is not None and self._output is not None
        self._file.close()
        self._partial.replace(self._output)

    def __exit__(self, *exc: object) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
            self._partial.unlink(missing_ok=True)


# --- through the running node's API ------------------------------------------------------------


def _connection(client: Client) -> tuple[http.client.HTTPConnection, dict[str, str]]:
    import http.client

    parts = urlsplit(client.api.url)
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=_TIMEOUT_S
    )
    headers = {"Authorization": f"Bearer {client.api.token}"} if client.api.token else {}
    return conn, headers


def _check(response: http.client.HTTPResponse) -> None:
    if response.status >= 400:
        from orbitstore.cli.remote import api_error

        raw = response.read()
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        raise api_error(answer, response.status)


def remote_attach(client: Client, args: argparse.Namespace, out: Output) -> None:
    from orbitstore.errors import InvalidValueError

    conn, headers = _connection(client)
    try:
        if args.file == "-":
            body: BinaryIO = sys.stdin.buffer
        else:
            try:
                body = Path(args.file).open("rb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise InvalidValueError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
        headers["Content-Type"] = "application/octet-stream"
        headers["Transfer-Encoding"] = "chunked"
        try:
            conn.request("PUT", "/v1/attachments", body=body, headers=headers, encode_chunked=True)
        finally:
            if body is not sys.stdin.buffer:
                body.close()
        response = conn.getresponse()
        _check(response)
        answer = json.loads(response.read())
    finally:
        conn.close()
    _attached(out, answer["cid"], answer["size"])


def remote_cat(client: Client, args: argparse.Namespace, out: Output) -> None:
    import http.client

    from orbitstore.errors import NetworkError

    conn, headers = _connection(client)
    size = 0
    try:
        conn.request("GET", "/v1/attachments/" + quote(args.cid, safe=""), headers=headers)
        response = conn.getresponse()
        _check(response)
        expected = response.getheader("content-length")
        with _Target(args.output) as (write, finish):
            while chunk := response.read(_CHUNK):
                write(chunk)
                size += len(chunk)
            if expected is not None and int(expected) != size:
                raise NetworkError(
                    f"the attachment stopped after {size} of {expected} bytes (a block"
                    " could not be fetched or did not verify: see the node's log)"
                )
            finish()
    except BrokenPipeError:
        raise  # `orbitstore cat <cid> | head`: main() ends quietly
    except (OSError, http.client.HTTPException) as exc:
        raise NetworkError(f"reading the attachment through the node's API failed: {exc}") from exc
    finally:
        conn.close()
    _written(out, args, size)


#: Registered in :data:`orbitstore.cli.remote.HANDLERS`.
REMOTE_HANDLERS = {"attachments.attach": remote_attach, "attachments.cat": remote_cat}

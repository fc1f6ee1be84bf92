"""Read-only commands without opening a node: the directory's SQLite file, read as is.

When no node serves the directory (:mod:`orbitstore.cli.remote` found no live API),
``kv get``, ``kv ls``, ``counter get`` and ``ls`` are answered here instead of through
``open_node``: under the directory lock (storage/lock.py, so a running program that
holds it is reported just as a full open reports it), from the tables a node would read
(:class:`~orbitstore.storage.readonly.StoreReader`), with the same output and the same
errors (unknown database, unknown key, wrong type). This path imports neither trio nor
the node layer: ``kv get`` costs the interpreter, the parser, sqlite3 and the codec.

Whenever the file cannot answer exactly as a full open would, a handler raises
:class:`Fallback` before printing anything and the command runs the full path: no store
file or keystore yet (the full open creates them), another schema version (it migrates),
a view whose checkpoint is behind its log (it folds the new entries in first), an
encrypted or private database (reading needs keys or its read control), a manifest that
does not verify, an address whose manifest is missing, an invalid key (the full path
says what is wrong with them).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from orbitstore.cli.output import Output, jsonable, render
from orbitstore.errors import NotFoundError, OrbitstoreError, WrongDatabaseTypeError

if TYPE_CHECKING:
    from orbitstore.core.manifest import Manifest
    from orbitstore.storage.readonly import StoreReader

# The names of orbitstore.node.node.STORE_FILE and KEYSTORE_FILE, and the manifest meta
# keys of encryption (core/encryption.py) and read control (core/privacy.py); a test
# keeps them equal, so that this module imports neither.
STORE_FILE = "orbitstore.sqlite"
KEYSTORE_FILE = "keystore.json"
SEALED_META = ("encryption", "read")
# orbitstore.views.keyvalue_ops.MAX_KEY_BYTES (that module costs ~10 ms to import).
MAX_KEY_BYTES = 1024


class Fallback(Exception):
    """This read needs the full open (see the module docstring); nothing was printed."""


Handler = Callable[["StoreReader", argparse.Namespace, Output], int]


def run(home: Path, args: argparse.Namespace, out: Output) -> int | None:
    """Answer the command from the file if it is one of :data:`HANDLERS` and the file
    can; None: run the full path instead."""
    handler = HANDLERS.get(args.handler)
    if handler is None:
        return None
    store = home / STORE_FILE
    if not (store.is_file() and (home / KEYSTORE_FILE).is_file()):
        return None
    from orbitstore.storage.lock import DirectoryLock
    from orbitstore.storage.readonly import NotReadable, StoreReader

    lock = DirectoryLock.acquire(home)  # NodeLockedError, as the full open says it
    try:
        reader = StoreReader.open(store)
        if reader is None:
            return None
        with reader:
            try:
                return handler(reader, args, out)
            except (Fallback, NotReadable):
                return None
    finally:
        lock.release()


def unknown_database(name: str, type_name: str | None) -> NotFoundError:
    """What a read of a database this node does not know raises (orbitstore.cli.typed)."""
    hint = f" --type {type_name}" if type_name else " --type TYPE"
    return NotFoundError(
        f"this node has no database named {name!r:.200}"
        f" (create it with: orbitstore create {name}{hint})",
        name=name,
    )


def _manifest(reader: StoreReader, name: str, type_name: str | None) -> tuple[Manifest, bytes]:
    """The verified manifest of ``name`` (a local name or an address) and its CID."""
    from orbitstore.core.cid import Cid
    from orbitstore.core.manifest import Manifest, is_address, parse_address

    if is_address(name):
        try:
            cid = parse_address(name)
        except OrbitstoreError:
            raise Fallback from None  # the full path says what is wrong with it
        raw = bytes(cid)
    else:
        found = reader.database_by_name(name)
        if found is None:
            raise unknown_database(name, type_name)
        raw = found
        try:
            cid = Cid(raw)
        except OrbitstoreError:
            raise Fallback from None
    block = reader.block(raw)
    if block is None:
        raise Fallback
    try:
        manifest = Manifest.from_block(cid, block)
    except OrbitstoreError:
        raise Fallback from None
    if any(key in manifest.meta for key in SEALED_META):
        raise Fallback
    return manifest, raw


def _open(reader: StoreReader, name: str, type_name: str) -> tuple[Manifest, int | None]:
    """The manifest and log of ``name`` as a ``type_name`` database, with its view up to
    date; the errors of ``orbitstore.cli.typed.open_as(..., create=False)``."""
    manifest, raw = _manifest(reader, name, type_name)
    if manifest.type != type_name:
        raise WrongDatabaseTypeError(
            f"{name!r} is a {manifest.type} database, not a {type_name}",
            expected=type_name,
            actual=manifest.type,
        )
    log = reader.log_id(raw)
    if not reader.view_current(log, type_name):  # each view's checkpoint is its type
        raise Fallback
    return manifest, log


def _valid_key(key: str) -> str:
    """``key`` if it is a valid key; an invalid one falls back (the full path's
    ``check_key`` says what is wrong with it)."""
    try:
        if key and len(key.encode("utf-8")) <= MAX_KEY_BYTES:
            return key
    except UnicodeEncodeError:
        pass
    raise Fallback


def kv_get(reader: StoreReader, args: argparse.Namespace, out: Output) -> int:
    from orbitstore.core import codec

    manifest, log = _open(reader, args.name, "keyvalue")
    data = reader.kv_value(log, _valid_key(args.key))
    if data is None:
        raise NotFoundError(f"no key {args.key!r:.200} in {manifest.name!r}", key=args.key)
    value = codec.decode(data)
    out.emit(render(value), {"key": args.key, "value": jsonable(value)})
    return 0


def kv_ls(reader: StoreReader, args: argparse.Namespace, out: Output) -> int:
    from orbitstore.core import codec

    _, log = _open(reader, args.name, "keyvalue")
    low = high = None
    if args.prefix:
        from orbitstore.views.keyvalue import prefix_end

        low, high = args.prefix, prefix_end(args.prefix)
    for key, data in reader.kv_items(log, low=low, high=high, limit=args.limit):
        value = codec.decode(data)
        out.emit(f"{key}\t{render(value)}", {"key": key, "value": jsonable(value)})
    return 0


def counter_get(reader: StoreReader, args: argparse.Namespace, out: Output) -> int:
    _, log = _open(reader, args.name, "counter")
    value = reader.counter(log)
    out.emit(str(value), {"value": value})
    return 0


def ls(reader: StoreReader, args: argparse.Namespace, out: Output) -> int:
    from orbitstore.core.cid import Cid
    from orbitstore.core.manifest import Manifest, format_address

    shown = []
    for name, raw in reader.names():  # every manifest first: a bad one falls back
        block = reader.block(raw)
        if block is None:
            raise Fallback
        try:
            cid = Cid(raw)
            manifest = Manifest.from_block(cid, block)
        except OrbitstoreError:
            raise Fallback from None
        shown.append((name, manifest.type, format_address(cid)))
    for name, type_name, address in shown:
        out.emit(
            f"{name}\t{type_name}\t{address}",
            {"name": name, "type": type_name, "address": address},
        )
    return 0


#: The commands answered here (by ``args.handler``); the others open the node.
HANDLERS: dict[str, Handler] = {
    "typed.kv_get": kv_get,
    "typed.kv_ls": kv_ls,
    "typed.counter_get": counter_get,
    "ls": ls,
}

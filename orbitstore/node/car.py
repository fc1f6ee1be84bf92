"""Export a database as a CAR file, and import one: the I/O half of :mod:`orbitstore.core.car`.

An export holds the manifest block first, then every entry in total order (parents before
children), with the manifest and the heads as roots — so IPFS tools can import it (``ipfs
dag import``) and walk the log from the heads. An import verifies everything as if it
came from a peer (the manifest against its CID, every entry through ``Database.receive``);
a bad block stops it with a typed error, and what was applied before it stays (valid
entries are valid whatever comes after them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orbitstore.core.car import CarReader, encode_header, encode_section
from orbitstore.core.cid import Cid
from orbitstore.core.manifest import Manifest, format_address
from orbitstore.errors import DecodeError, InvalidDataError, UsageError
from orbitstore.node.database import Database
from orbitstore.node.node import Node

# Entries handed to Database.receive at once: one transaction per batch.
IMPORT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class CarImport:
    address: str
    type: str
    received: int
    """Entries in the file."""
    added: int
    """Entries the log did not hold yet."""
    skipped: int
    """Blocks of other codecs or hashes, ignored."""


def export_car(database: Database, write: Callable[[bytes], object]) -> int:
    """Write ``database`` as a CAR v1 stream through ``write``; returns the entry count."""
    manifest_cid, manifest_block = database.manifest.to_block()
    write(encode_header([manifest_cid, *sorted(database.heads)]))
    write(encode_section(manifest_cid, manifest_block))
    count = 0
    for cid, block in database.log.iter_blocks():
        write(encode_section(cid, block))
        count += 1
    return count


async def import_car(node: Node, chunks: Iterable[bytes], *, name: str | None = None) -> CarImport:
    """Read a CAR made by :func:`export_car` (manifest first) into ``node``."""
    reader = CarReader()
    database: Database | None = None
    batch: list[tuple[Cid, bytes]] = []
    received = added = 0

    async def flush() -> None:
        nonlocal added
        if database is not None and batch:
            result = await database.receive(batch)
            if result.rejected:
                first = result.rejected[0]
                raise InvalidDataError(f"the CAR holds an invalid entry {first.cid}: {first.error}")
            added += len(result.added)
            batch.clear()

    for chunk in chunks:
        for cid, block in reader.feed(chunk):
            if database is None:
                database = await _open_manifest(node, reader.roots or (), cid, block, name)
                continue
            batch.append((cid, block))
            received += 1
            if len(batch) >= IMPORT_BATCH:
                await flush()
    reader.finish()
    if database is None:
        raise DecodeError("the CAR holds no blocks (a database export starts with its manifest)")
    await flush()
    if database.log.needed:
        raise InvalidDataError(
            f"the CAR is incomplete: {len(database.log.needed)} parents of its entries are missing"
        )
    return CarImport(
        address=database.address,
        type=database.type_name,
        received=received,
        added=added,
        skipped=reader.skipped,
    )


async def _open_manifest(
    node: Node, roots: tuple[Cid, ...], cid: Cid, block: bytes, name: str | None
) -> Database:
    if not roots or roots[0] != cid:
        raise DecodeError("the CAR must start with the manifest block of its first root")
    manifest = Manifest.from_block(cid, block)  # InvalidDataError if it is not one
    async with node.writes.locked():  # not inside another task's open batch
        with node.store.transaction():
            node.store.blocks.put(cid, block)
            if name is not None:
                bound = node.store.get_name(name)
                if bound is None:
                    node.store.set_name(name, cid)
                elif bound != cid:
                    raise UsageError(
                        f"the name {name!r} is already used by {format_address(bound)}"
                    )
    return await node.open(format_address(cid), type=manifest.type)

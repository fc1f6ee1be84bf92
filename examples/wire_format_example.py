"""Print the worked example of docs/wire-format.md: one v1 entry, byte by byte.

Run: ``.venv/bin/python examples/wire_format_example.py``. The output is pasted into
``docs/wire-format.md`` between the ``example:begin`` / ``example:end`` markers, and
``tests/test_docs.py`` checks that it still matches what the code produces.
"""

from __future__ import annotations

import hashlib

from orbitstore.core import codec
from orbitstore.core.access import StaticAccess
from orbitstore.core.entry import Entry
from orbitstore.core.identity import Identity
from orbitstore.core.manifest import Manifest

SEED = bytes(range(32))
TS = 1_700_000_000_000  # 2023-11-14T22:13:20Z, fixed so the example never changes


def _hex(data: bytes, width: int = 32) -> list[str]:
    text = data.hex()
    return [text[i : i + 2 * width] for i in range(0, len(text), 2 * width)] or [""]


def render() -> str:
    identity = Identity(SEED)
    manifest = Manifest(name="example", type="log", access=StaticAccess.of([identity.id]))
    db, manifest_block = manifest.to_block()
    entry = Entry.create(identity, db=db, clock=1, next=[], payload={"text": "hello"}, ts=TS)
    fields = codec.decode(entry.block)
    out: list[str] = []
    out.append(f"seed (hex)         {SEED.hex()}")
    out.append(f"writer             {identity.id}")
    out.append(f"public key (hex)   {identity.public_key.hex()}")
    out.append(f"manifest block     {manifest_block.hex()}")
    out.append(f"manifest CID (db)  {db}")
    out.append("")
    out.append(f"entry block: {len(entry.block)} bytes, a map of {len(fields)} pairs")
    out.append("")
    header = entry.block[:1]
    out.append(f"{header.hex():<10} map header: major type 5, {len(fields)} pairs")
    rebuilt = bytearray(header)
    for key in fields:  # decode keeps the block's (canonical) key order
        key_bytes = codec.encode(key)
        value_bytes = codec.encode(fields[key])
        rebuilt += key_bytes + value_bytes
        out.append(f"{key_bytes.hex():<10} key {key!r}")
        for i, chunk in enumerate(_hex(value_bytes)):
            note = f"  value of {key!r}" if i == 0 else ""
            out.append(f"  {chunk}{note}")
    assert bytes(rebuilt) == entry.block, "annotation does not add up to the block"
    unsigned = dict(fields)
    del unsigned["sig"]
    signed_bytes = codec.encode(unsigned)
    out.append("")
    out.append(f"signed bytes: the map without 'sig' ({len(signed_bytes)} bytes)")
    out.extend(f"  {chunk}" for chunk in _hex(signed_bytes))
    out.append("")
    digest = hashlib.sha256(entry.block).digest()
    out.append(f"sha256(block)      {digest.hex()}")
    out.append(f"CID bytes          {bytes(entry.cid).hex()}")
    out.append(f"CID text           {entry.cid}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")

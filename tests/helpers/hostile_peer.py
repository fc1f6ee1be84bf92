"""A hostile libp2p peer in its own OS process, for tests/test_chaos.py.

    python hostile_peer.py --db CID --seed N --attacks garbage,forged,lies[,deep,wants]
        --target MULTIADDR [--target ...]

Connects to every target, joins the database's gossip topic and then attacks, forever,
in a seeded random order: ``garbage`` (random bytes and lying length prefixes on sync
streams), ``forged`` (entries with broken signatures, wrong CIDs, other databases),
``lies`` (announcements of heads nobody has, with forged inline entries), ``deep``
(entries nesting 5,000 levels deep) and ``wants`` (a hello, then endless wants of
random CIDs). Streams the victims open to it are answered with garbage. It never sends
a valid entry, so the honest replicas' logs stay comparable. Prints ``READY`` once it
has dialled its targets and ``ATTACK <n>`` every 10 attacks; each line on stdin is one
more target (a restarted node) to dial. Runs until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys

import trio

from orbitstore.core.cid import Cid
from orbitstore.core.identity import Identity
from orbitstore.errors import OrbitstoreError
from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import Libp2pTransport, open_libp2p_transport
from orbitstore.net.transport import Stream
from orbitstore.node.replication import topic_for
from orbitstore.sync.frames import Entries, Hello, Want, encode_frame
from orbitstore.testing import fuzz

EVIL = Identity(b"\x66" * 32)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def forged_blocks(db: Cid, rng: random.Random) -> list[tuple[Cid, bytes]]:
    chain = fuzz.signed_chain(EVIL, db, 2, start=rng.randrange(10**9))
    bad_sig = bytearray(chain[0].block)
    bad_sig[-3] ^= 1
    other_db = Cid.for_block(b"another database %d" % rng.randrange(10**9))
    foreign = fuzz.signed_chain(EVIL, other_db, 1)[0]
    return [
        (Cid.for_block(bytes(bad_sig)), bytes(bad_sig)),  # signature broken
        (chain[0].cid, chain[1].block),  # block under another CID
        (foreign.cid, foreign.block),  # another database
    ]


def deep_block(db: Cid, rng: random.Random) -> tuple[Cid, bytes]:
    fields = fuzz.entry_fields(fuzz.signed_chain(EVIL, db, 1, start=rng.randrange(10**9))[0])
    block = fuzz.sign_raw({**fields, "v": fuzz.nest(0, 5_000)}, EVIL)
    return Cid.for_block(block), block


def random_cids(rng: random.Random, n: int) -> tuple[Cid, ...]:
    return tuple(sorted({Cid.for_block(rng.randbytes(8)) for _ in range(n)}))


def stream_payload(kind: str, db: Cid, rng: random.Random) -> bytes:
    hello = encode_frame(Hello(db=db, heads=random_cids(rng, 3)))
    if kind == "garbage":
        return rng.choice(
            [
                rng.randbytes(rng.randrange(1, 4096)),
                fuzz.varint(2**27 + 1),
                hello + fuzz.varint(1000) + rng.randbytes(10),
                hello + b"\x05" + fuzz.encode_raw(fuzz.RawMap((("t", "done"), ("t", "x")))),
            ]
        )
    if kind == "forged":
        return hello + encode_frame(Entries(blocks=tuple(forged_blocks(db, rng))))
    if kind == "deep":
        return hello + encode_frame(Entries(blocks=(deep_block(db, rng),)))
    want = encode_frame(Want(cids=random_cids(rng, 64)))
    return hello + want * 200


def announcement(db: Cid, rng: random.Random, deep: bool) -> bytes:
    blocks = forged_blocks(db, rng)
    if deep:
        blocks.append(deep_block(db, rng))
    return fuzz.encode_raw(
        {"db": db, "heads": list(random_cids(rng, 2)), "entries": [list(b) for b in blocks]}
    )


async def attack_stream(transport: Libp2pTransport, peer: str, payload: bytes) -> None:
    with contextlib.suppress(OrbitstoreError), trio.move_on_after(3):
        stream = await transport.open_stream(peer)
        try:
            await stream.send_all(payload)
            while await stream.receive_some():
                pass
        finally:
            await stream.close()


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    db = Cid.parse(args.db)
    attacks = args.attacks.split(",")
    async with open_libp2p_transport(Libp2pConfig(), key_path=None) as transport:

        async def answer(stream: Stream) -> None:
            with contextlib.suppress(OrbitstoreError), trio.move_on_after(3):
                await stream.send_all(rng.randbytes(64))
                await stream.close()

        async def ignore(peer: str, data: bytes) -> None:
            await trio.lowlevel.checkpoint()

        transport.set_stream_handler(answer)
        await transport.subscribe(topic_for(db), ignore)
        for address in args.target:
            with contextlib.suppress(OrbitstoreError), trio.move_on_after(10):
                await transport.connect(address)
        say("READY")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_targets, transport)
            await attack(transport, db, attacks, rng)


async def read_targets(transport: Libp2pTransport) -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    buffer = b""
    while data := await stdin.receive_some():
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            with contextlib.suppress(OrbitstoreError), trio.move_on_after(10):
                await transport.connect(line.decode().strip())


async def attack(
    transport: Libp2pTransport, db: Cid, attacks: list[str], rng: random.Random
) -> None:
    n = 0
    while True:
        kind = rng.choice(attacks)
        if kind == "lies":
            with contextlib.suppress(OrbitstoreError):
                await transport.publish(topic_for(db), announcement(db, rng, "deep" in attacks))
        else:
            for peer in sorted(transport.connected_peers()):
                await attack_stream(transport, peer, stream_payload(kind, db, rng))
        n += 1
        if n % 10 == 0:
            say(f"ATTACK {n}")
        # Paced, so that the honest traffic still gets CPU on a 2-core machine.
        await trio.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attacks", default="garbage,forged,lies")
    parser.add_argument("--target", action="append", default=[])
    trio.run(main, parser.parse_args())

"""A libp2p transport in its own OS process, for crash and restart tests.

Usage: python libp2p_peer.py --mode {echo,flood,sink} [--key PATH] [--listen MULTIADDR]
       python libp2p_peer.py --mode client --connect MULTIADDR [--listen MULTIADDR]

Prints ``ADDR <multiaddr>`` once it listens, then ``STREAM`` whenever a sync stream
opens, and runs until it is killed. In client mode it dials ``--connect``, sends a
message over a sync stream, prints ``ECHO <reply>`` and exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import open_libp2p_transport
from orbitstore.net.transport import Stream


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    config = Libp2pConfig(listen_addresses=(args.listen,))
    key = Path(args.key) if args.key else None
    async with open_libp2p_transport(config, key_path=key) as transport:

        async def handler(stream: Stream) -> None:
            say("STREAM")
            if args.mode == "echo":
                while data := await stream.receive_some():
                    await stream.send_all(data)
            elif args.mode == "flood":
                chunk = b"f" * 65536
                while True:
                    await stream.send_all(chunk)
            else:
                while await stream.receive_some():
                    pass
            await stream.close()

        transport.set_stream_handler(handler)
        say("ADDR " + transport.listen_addresses()[0])
        if args.mode != "client":
            await trio.sleep_forever()
        with trio.fail_after(30):
            peer = await transport.connect(args.connect)
            stream = await transport.open_stream(peer)
            await stream.send_all(b"across namespaces")
            await stream.close()
            reply = b""
            while data := await stream.receive_some():
                reply += data
        say("ECHO " + reply.decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["echo", "flood", "sink", "client"], default="echo")
    parser.add_argument("--key")
    parser.add_argument("--connect")
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    trio.run(main, parser.parse_args())

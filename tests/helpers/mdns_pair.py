"""Two transports with mDNS on, in one process; prints ``FOUND`` once they connected.

Run it inside a fresh network namespace with only ``lo`` up (``unshare -n``): py-libp2p's
mDNS multicasts on every interface and cannot be restricted.
"""

from __future__ import annotations

import sys

import trio

from orbitstore.net.libp2p_config import Libp2pConfig
from orbitstore.net.libp2p_transport import open_libp2p_transport


async def main() -> None:
    config = Libp2pConfig(mdns=True, reconnect_initial_delay=0.1)
    async with (
        open_libp2p_transport(config, key_path=None) as a,
        open_libp2p_transport(config, key_path=None) as b,
    ):
        with trio.fail_after(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0):
            await a.wait_connected(b.peer_id)
            await b.wait_connected(a.peer_id)
        sys.stdout.write("FOUND\n")
        sys.stdout.flush()


if __name__ == "__main__":
    trio.run(main)

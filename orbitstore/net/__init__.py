"""Network layer: the transport interface and its py-libp2p implementation.

This is the only package that imports libp2p."""

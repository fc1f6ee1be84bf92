"""Network layer: the transport interface and its py-libp2p implementation.

* :mod:`orbitstore.net.transport`: the ``Transport`` and ``Stream`` protocols the
  replication service runs on (no libp2p import: cheap).
* :mod:`orbitstore.net.libp2p_transport`: ``open_libp2p_transport`` and its
  ``Libp2pConfig`` (importing it imports py-libp2p: ~1 s, ~73 MB).

This is the only package that imports libp2p."""

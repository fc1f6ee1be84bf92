"""The public test kit: an in-memory network (:mod:`~orbitstore.testing.network`),
two-node setups on it or on real libp2p (:mod:`~orbitstore.testing.pairs`), Hypothesis
strategies and conformance batteries.

The strategies and batteries need the ``test`` extra (pytest, hypothesis); nothing else
in orbitstore imports this package.
"""

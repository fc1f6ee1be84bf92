"""The public test kit: Hypothesis strategies and conformance batteries.

These modules need the ``test`` extra (pytest, hypothesis); nothing else in orbitstore
imports them.
"""

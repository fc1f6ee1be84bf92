"""Size and count limits on entries, with the reason for each default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryLimits:
    # 512 KiB: an entry must fit in one bitswap block (IPFS peers refuse larger blocks)
    # and, with room to spare, in one gossip message (py-libp2p drops messages > 1 MiB).
    max_entry_bytes: int = 512 * 1024
    # Parents: one per concurrent head. 64 concurrent writers merging at once is far past
    # any real workload; the cap bounds the work one entry can cause.
    max_next: int = 64
    # Skip-ahead references are hints for traversal; 32 covers 2**32 entries of doubling.
    max_refs: int = 32
    # Writer ids are did:key strings of 56 characters for Ed25519.
    max_writer_chars: int = 64


DEFAULT_LIMITS = EntryLimits()

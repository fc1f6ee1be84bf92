"""CID text: the base32 encoder behind ``str(cid)``."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from orbitstore.core.cid import Cid, base32


@given(st.binary(max_size=80))
def test_base32_is_rfc4648_lower_case_without_padding(data: bytes) -> None:
    assert base32(data) == base64.b32encode(data).decode("ascii").lower().rstrip("=")


@given(st.binary(max_size=300))
def test_a_cid_text_parses_back_to_the_cid(block: bytes) -> None:
    cid = Cid.for_block(block)
    text = str(cid)
    assert text.startswith("b") and Cid.parse(text) == cid

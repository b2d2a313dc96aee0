"""Property tests: a corrupted proof or public input never verifies and never raises anything
but ``Groth16DecodeError`` (pairings cost tens of milliseconds: examples are kept few)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.bn254 import R
from proofs.groth16 import (
    Groth16DecodeError,
    decode_proof,
    decode_public,
    decode_verification_key,
    parse_json,
    verify,
)

from ._groth16_helpers import load_groth16

_VK = decode_verification_key(load_groth16("sumproduct", "sumproduct_vkey.json"))
_PROOF_JSON = load_groth16("sumproduct", "proof_1.json")
_PROOF = decode_proof(_PROOF_JSON)
_PUBLIC = decode_public(load_groth16("sumproduct", "public_1.json"), _VK.n_public)
_PROOF_BYTES = json.dumps(_PROOF_JSON, separators=(",", ":")).encode()


@settings(max_examples=25, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(_PROOF_BYTES) - 1),
    mask=st.integers(min_value=1, max_value=255),
)
def test_flipped_proof_byte_never_verifies(index: int, mask: int) -> None:
    data = bytearray(_PROOF_BYTES)
    data[index] ^= mask
    try:
        proof = decode_proof(parse_json(bytes(data), "proof"))
    except Groth16DecodeError:
        return
    assert verify(_VK, proof, _PUBLIC) is (proof == _PROOF)


@settings(max_examples=25, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(_PUBLIC) - 1),
    bit=st.integers(min_value=0, max_value=255),
)
def test_flipped_public_bit_never_verifies(position: int, bit: int) -> None:
    corrupted = list(_PUBLIC)
    corrupted[position] ^= 1 << bit
    try:
        public = decode_public([str(v) for v in corrupted], _VK.n_public)
    except Groth16DecodeError:
        assert corrupted[position] >= R
        return
    assert verify(_VK, _PROOF, public) is False

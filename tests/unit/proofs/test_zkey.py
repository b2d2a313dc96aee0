"""snarkjs ``.zkey`` parsing (testvectors/groth16/<c>/<c>_final.zkey, README section 1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.groth16 import Groth16DecodeError, encode_verification_key
from proofs.zkey import MATRIX_A, decode_zkey

from ._groth16_helpers import GROTH16_CIRCUITS, load_groth16, zkey_bytes


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
def test_zkey_exports_the_vectors_verification_key(circuit: str) -> None:
    pk = decode_zkey(zkey_bytes(circuit))
    expected = load_groth16(circuit, f"{circuit}_vkey.json")
    assert encode_verification_key(pk.verification_key()) == expected


def test_sumproduct_zkey_coefficients_are_out_of_montgomery_form() -> None:
    """R1CS constraint 0 is (−a)·b = −c; snarkjs appends A[m+i][i] = 1 for wires 0..nPublic."""
    pk = decode_zkey(zkey_bytes("sumproduct"))
    r1cs = load_groth16("sumproduct", "sumproduct.r1cs.json")
    minus_one = int(r1cs["prime"]) - 1
    assert (pk.n_vars, pk.n_public, pk.domain_size) == (5, 2, 8)
    assert (MATRIX_A, 0, 3, minus_one) in pk.coeffs
    assert [c for c in pk.coeffs if c[1] >= 2] == [(MATRIX_A, 2 + i, i, 1) for i in range(3)]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"zkez" + b[4:], "bad magic"),
        (lambda b: b[:100], "truncated"),
        (lambda b: b[:-10], "truncated"),
    ],
)
def test_malformed_zkey_raises_typed_error(mutate: object, message: str) -> None:
    data = zkey_bytes("multiplier")
    with pytest.raises(Groth16DecodeError, match=message):
        decode_zkey(mutate(data))  # type: ignore[operator]


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_corrupted_zkey_decodes_or_raises_only_the_typed_error(data: st.DataObject) -> None:
    original = zkey_bytes("multiplier")
    index = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
    mask = data.draw(st.integers(min_value=1, max_value=255))
    corrupted = bytearray(original)
    corrupted[index] ^= mask
    try:
        pk = decode_zkey(bytes(corrupted))
    except Groth16DecodeError:
        return
    assert pk.n_vars >= 1

"""go-ethereum's bn256 precompile vectors (testvectors/eip197, README section 4) through the
same point decoding the Groth16 verifier uses (``proofs.bn254``)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest

from proofs.bn254 import Bn254DecodeError, P, decode_g2_bytes
from proofs.eip197 import bn256_add, bn256_pairing, bn256_scalar_mul

from ._groth16_helpers import load_eip197, load_groth16


def _cases(name: str) -> list[Any]:
    return [pytest.param(case, id=case["Name"]) for case in load_eip197(name)]


@pytest.mark.parametrize("case", _cases("bn256Pairing.json"))
def test_bn256_pairing_vector(case: dict[str, Any]) -> None:
    assert bn256_pairing(bytes.fromhex(case["Input"])).hex() == case["Expected"]


@pytest.mark.parametrize("case", _cases("bn256Add.json"))
def test_bn256_add_vector(case: dict[str, Any]) -> None:
    assert bn256_add(bytes.fromhex(case["Input"])).hex() == case["Expected"]


@pytest.mark.parametrize("case", _cases("bn256ScalarMul.json"))
def test_bn256_scalar_mul_vector(case: dict[str, Any]) -> None:
    assert bn256_scalar_mul(bytes.fromhex(case["Input"])).hex() == case["Expected"]


def test_g2_bytes_are_imaginary_first() -> None:
    """Swapping the halves of a valid EIP-197 G2 encoding must not decode to the same point."""
    case = load_eip197("bn256Pairing.json")[0]
    g2 = bytes.fromhex(case["Input"])[64:192]
    point = decode_g2_bytes(g2, "g2")
    swapped = g2[32:64] + g2[0:32] + g2[96:128] + g2[64:96]
    with contextlib.suppress(Bn254DecodeError):
        assert decode_g2_bytes(swapped, "g2") != point


def test_g1_coordinate_equal_to_p_is_rejected() -> None:
    data = P.to_bytes(32, "big") + (2).to_bytes(32, "big") + bytes(64)
    with pytest.raises(Bn254DecodeError, match=re.escape("bn256Add.p1: coordinate is not below")):
        bn256_add(data)


def test_pairing_input_length_must_be_a_multiple_of_192() -> None:
    with pytest.raises(ValueError, match="multiple of 192"):
        bn256_pairing(bytes(191))


def test_g2_outside_the_subgroup_is_rejected_in_eip197_encoding() -> None:
    """The twist point with x = 1 from the Groth16 invalid cases, in imaginary-first bytes."""
    case = next(
        c
        for c in load_groth16("sumproduct", "sumproduct_invalid_cases.json")["cases"]
        if c["name"] == "pi_b_not_in_subgroup"
    )
    (x0, x1), (y0, y1) = (tuple(int(v) for v in c) for c in case["proof"]["pi_b"][:2])
    g2 = b"".join(v.to_bytes(32, "big") for v in (x1, x0, y1, y0))
    g1 = (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    with pytest.raises(Bn254DecodeError, match=re.escape("bn256Pairing[0].g2: not in the G2")):
        bn256_pairing(g1 + g2)

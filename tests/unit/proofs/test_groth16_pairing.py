"""The multi-pairing of ``proofs.pairing`` against py_ecc and the pairing's defining laws."""

from __future__ import annotations

from math import gcd

from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128 import G1, G2, multiply, neg

from proofs.bn254 import P, R, affine_g1, affine_g2
from proofs.pairing import (
    SNARKJS_PAIRING_EXPONENT,
    final_exponentiate,
    final_exponentiate_snarkjs,
    miller_loop,
    multi_pairing_is_one,
    pairing,
)


def test_fast_final_exponentiation_is_a_fixed_coprime_power() -> None:
    f = miller_loop([(affine_g1(multiply(G1, 3)), affine_g2(multiply(G2, 5)))])
    exact = final_exponentiate(f)
    expected = [1] + [0] * 11
    for bit in bin(SNARKJS_PAIRING_EXPONENT)[2:]:
        expected = _mul(expected, expected)
        if bit == "1":
            expected = _mul(expected, exact)
    assert final_exponentiate_snarkjs(f) == expected
    assert gcd(SNARKJS_PAIRING_EXPONENT, R) == 1


def test_bilinearity_in_one_multi_pairing() -> None:
    """e(6·P, 5·Q) · e(−30·P, Q) == 1, and a wrong scalar breaks it."""
    p, q = affine_g1(G1), affine_g2(G2)
    left = (affine_g1(multiply(G1, 6)), affine_g2(multiply(G2, 5)))
    assert multi_pairing_is_one([left, (affine_g1(neg(multiply(G1, 30))), q)])
    assert not multi_pairing_is_one([left, (affine_g1(neg(multiply(G1, 31))), q)])
    assert multi_pairing_is_one([(None, q), (p, None)])
    assert pairing(p, q) != [1] + [0] * 11


def _mul(a: list[int], b: list[int]) -> list[int]:
    return [int(c) for c in (FQ12(a) * FQ12(b)).coeffs]


def test_fp12_inverse_matches_py_ecc() -> None:
    """The norm-based inverse used by the final exponentiation (a private helper)."""
    from proofs.pairing import _fp12_inv

    for seed in range(5):
        f = [(seed + 1) * 7919 ** (k + 1) % P for k in range(12)]
        assert _fp12_inv(f) == [int(c) for c in FQ12(f).inv().coeffs]

"""The GLV weights of Groth16 batch verification (proofs.glv), the mixed G1 addition of its
MSM, and batches with one bad proof.

The weights' soundness rests on three facts checked here against py_ecc: φ(x, y) = (β·x, y)
acts on G1 as λ; the lattice {(a, b) : a + b·λ ≡ 0 (mod r)} has no short nonzero vector, so
distinct (a, b) give distinct weights; the products equal py_ecc's scalar multiplications.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from py_ecc.optimized_bn128 import G1, add, multiply, normalize

from proofs.bn254 import P, R, affine_g1
from proofs.glv import (
    WEIGHT_HALF_BITS,
    draw_weights,
    glv_beta,
    glv_lambda,
    weight_scalar,
    weighted_points,
    weighted_sum,
)
from proofs.groth16 import batch_verify, decode_proof, decode_public, decode_verification_key
from proofs.jacobian import jac1_add
from proofs.msm import jac1_to_g1

from ._groth16_helpers import GROTH16_CIRCUITS, GROTH16_PROOF_INDICES, load_groth16

# The well-formed vector cases whose proof is invalid (verify gives False, decoding succeeds).
INVALID_WELL_FORMED = (
    "public_signal_changed",
    "pi_a_replaced_by_5G",
    "pi_a_negated",
    "pi_a_pi_c_swapped",
    "pi_a_infinity",
)


def _xy(point: Any) -> tuple[int, int]:
    x, y = normalize(point)
    return (x.n, y.n)


def test_endomorphism_acts_as_lambda_on_g1() -> None:
    beta, lam = glv_beta(), glv_lambda()
    assert pow(beta, 3, P) == 1 and beta != 1
    assert (lam * lam + lam + 1) % R == 0
    for k in (1, 2, 987654321):
        x, y = _xy(multiply(G1, k))
        assert _xy(multiply(G1, k * lam)) == (beta * x % P, y)


def test_lattice_of_lambda_has_no_short_vector() -> None:
    """Gauss-reduce the basis (r, 0), (-λ, 1): its shortest vector is far above 2^66."""
    u, v = (R, 0), (-glv_lambda() % R, 1)

    def norm2(w: tuple[int, int]) -> int:
        return w[0] * w[0] + w[1] * w[1]

    while True:
        if norm2(u) < norm2(v):
            u, v = v, u
        n = norm2(v)
        m = (2 * (u[0] * v[0] + u[1] * v[1]) + n) // (2 * n)  # nearest integer
        if m == 0:
            break
        u = (u[0] - m * v[0], u[1] - m * v[1])
    shortest = min(norm2(u), norm2(v))
    assert math.isqrt(shortest) > 2**125
    assert (v[0] + v[1] * glv_lambda()) % R == 0  # v is in the lattice


def test_weights_carry_128_random_bits_below_a_forced_top_bit() -> None:
    weights = draw_weights(200)
    for a, b in weights:
        assert a >> WEIGHT_HALF_BITS == 1 and b >> WEIGHT_HALF_BITS == 1
    assert len({weight_scalar(w) for w in weights}) == 200
    assert WEIGHT_HALF_BITS * 2 >= 128


def test_weighted_points_and_sum_equal_py_ecc() -> None:
    rng = random.Random(20261201)
    points = [multiply(G1, rng.randrange(1, R)) for _ in range(5)]
    points.append(points[0])  # the same point twice is fine
    weights = draw_weights(len(points))
    expected = [_xy(multiply(p, weight_scalar(w))) for p, w in zip(points, weights, strict=True)]
    affine = [affine_g1(p) for p in points]
    assert weighted_points([a for a in affine if a], weights) == expected
    total = multiply(points[0], 0)
    for p, w in zip(points, weights, strict=True):
        total = add(total, multiply(p, weight_scalar(w)))
    assert _xy(jac1_to_g1(weighted_sum([*affine, None], [*weights, (1, 1)]))) == _xy(total)


def _vector_items(circuit: str) -> tuple[Any, list[Any]]:
    vk = decode_verification_key(load_groth16(circuit, f"{circuit}_vkey.json"))
    items = [
        (
            decode_proof(load_groth16(circuit, f"proof_{i}.json")),
            decode_public(load_groth16(circuit, f"public_{i}.json"), vk.n_public),
        )
        for i in GROTH16_PROOF_INDICES
    ]
    return vk, items


def _bad_cases() -> list[Any]:
    params = []
    for circuit in GROTH16_CIRCUITS:
        for case in load_groth16(circuit, f"{circuit}_invalid_cases.json")["cases"]:
            if case["name"] in INVALID_WELL_FORMED:
                params.append(pytest.param(circuit, case, id=f"{circuit}-{case['name']}"))
    return params


@pytest.mark.parametrize(("circuit", "case"), _bad_cases())
def test_one_bad_vector_proof_fails_a_batch_of_good_ones(
    circuit: str, case: dict[str, Any]
) -> None:
    vk, items = _vector_items(circuit)
    bad = (decode_proof(case["proof"]), decode_public(case["public_signals"], vk.n_public))
    good = items * 3
    assert batch_verify(vk, good) is True
    for position in (0, 3, len(good)):
        assert batch_verify(vk, [*good[:position], bad, *good[position:]]) is False


def test_names_of_the_bad_cases_exist() -> None:
    names = {case.values[1]["name"] for case in _bad_cases()}
    assert names == set(INVALID_WELL_FORMED)


def _jac(point: Any, z: int) -> tuple[int, int, int]:
    x, y = _xy(point)
    return (x * z * z % P, y * z * z * z % P, z)


def _from_jac(point: tuple[int, int, int]) -> tuple[int, int]:
    x, y, z = point
    zi = pow(z, -1, P)
    return (x * zi * zi % P, y * zi * zi * zi % P)


def test_adding_an_affine_point_equals_py_ecc() -> None:
    """jac1_add's mixed path (second point with z = 1): sums, a doubling, the identity."""
    rng = random.Random(7)
    for _ in range(50):
        p, q = multiply(G1, rng.randrange(1, R)), multiply(G1, rng.randrange(1, R))
        total = jac1_add(_jac(p, rng.randrange(2, P)), _jac(q, 1))
        assert _from_jac(total) == _xy(add(p, q))
    p = multiply(G1, 12345)
    assert _from_jac(jac1_add(_jac(p, 99), _jac(p, 1))) == _xy(add(p, p))
    x, y = _xy(p)
    assert jac1_add(_jac(p, 99), (x, -y % P, 1))[2] == 0

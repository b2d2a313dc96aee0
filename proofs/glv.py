"""Random batch-verification weights on BN254 G1 with the GLV endomorphism, and their products.

BN254 has j-invariant 0, so ``φ(x, y) = (β·x, y)`` with β a primitive cube root of unity in
Fp is an endomorphism; on G1 (prime order r) it acts as multiplication by λ, a cube root of
unity mod r (Gallant, Lambert, Vanstone, "Faster point multiplication on elliptic curves with
efficient endomorphisms", CRYPTO 2001, §4). A weight drawn as ``w = a + b·λ mod r`` with
``a, b`` random makes ``w·P = a·P + b·φ(P)`` a double-scalar multiplication of half length.

Weights: ``a = 2^64 + a'`` and ``b = 2^64 + b'`` with ``a', b'`` 64 bits each from ``secrets``
(a CSPRNG). The forced top bit gives every product the same shape and costs no entropy:
distinct pairs ``(a, b)`` give distinct weights mod r, because their difference would be a
nonzero vector of the lattice ``{(x, y) : x + λy ≡ 0 (mod r)}`` with both coordinates below
2^64, while that lattice (determinant r ≈ 2^254) has no nonzero vector shorter than about
2^126 (checked in the tests by Gauss reduction of its basis). So a weight is uniform on a set
of 2^128 residues: in the small-exponents batch test (Bellare, Garay, Rabin, EUROCRYPT 1998,
§3) an invalid proof passes with probability at most 2^-128, as with 128-bit integer weights.

The products run in affine coordinates, all points advancing together bit by bit so that each
step shares one field inversion (Montgomery's trick). With ``k = (k1, k2)`` the multiple
reached so far, ``k·P`` is never the identity and never ``±T`` for a table point ``T`` it is
added to (both would need a nonzero lattice vector with coordinates below 2^66), so the affine
formulas meet no exceptional case for points of G1.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from functools import lru_cache
from typing import TypeAlias

from py_ecc.optimized_bn128 import G1, multiply, normalize

from proofs.bn254 import P, R
from proofs.jacobian import JAC1_INFINITY, Jac1, fp_batch_inv, jac1_add, jac1_double
from proofs.msm import pippenger

G1Affine: TypeAlias = tuple[int, int]
Weight: TypeAlias = tuple[int, int]  # (a, b) for a + b·λ mod r

WEIGHT_HALF_BITS = 64  # random bits in each of a and b: 128 bits per weight
_TOP = 1 << WEIGHT_HALF_BITS


def draw_weights(count: int) -> list[Weight]:
    """``count`` fresh weights ``(2^64 + a', 2^64 + b')`` with a', b' from ``secrets``."""
    return [
        (_TOP | secrets.randbits(WEIGHT_HALF_BITS), _TOP | secrets.randbits(WEIGHT_HALF_BITS))
        for _ in range(count)
    ]


def weight_scalar(weight: Weight) -> int:
    """The scalar ``a + b·λ mod r`` that ``weight`` stands for."""
    return (weight[0] + weight[1] * glv_lambda()) % R


def weighted_points(points: Sequence[G1Affine], weights: Sequence[Weight]) -> list[G1Affine]:
    """``[a_i·P_i + b_i·φ(P_i)]`` for affine points of G1 (none the identity)."""
    if len(points) != len(weights):
        raise ValueError("weighted_points: points and weights differ in length")
    if not points:
        return []
    beta = glv_beta()
    phis = [(beta * x % P, y) for x, y in points]
    both = list(points)
    _add_in_place(both, range(len(both)), phis)  # P + φ(P): never P = ±φ(P), λ ≢ ±1
    tables = list(zip(points, phis, both, strict=True))
    accs = list(both)  # the forced top bits: k = (1, 1)
    for bit in range(WEIGHT_HALF_BITS - 1, -1, -1):
        _double_in_place(accs)
        chosen: list[int] = []
        targets: list[G1Affine] = []
        for i, (a, b) in enumerate(weights):
            digit = (a >> bit & 1) | (b >> bit & 1) << 1
            if digit:
                chosen.append(i)
                targets.append(tables[i][digit - 1])
        _add_in_place(accs, chosen, targets)
    return accs


def weighted_sum(points: Sequence[G1Affine | None], weights: Sequence[Weight]) -> Jac1:
    """``Σ (a_i·P_i + b_i·φ(P_i))`` as one Pippenger MSM of 2n points with 65-bit scalars."""
    beta = glv_beta()
    jac: list[Jac1] = []
    scalars: list[int] = []
    for point, (a, b) in zip(points, weights, strict=True):
        if point is not None:
            jac += [(point[0], point[1], 1), (beta * point[0] % P, point[1], 1)]
            scalars += [a, b]
    if not jac:
        return JAC1_INFINITY
    return pippenger(jac, scalars, jac1_add, jac1_double, JAC1_INFINITY)


@lru_cache(maxsize=1)
def glv_beta() -> int:
    """β with ``φ(x, y) = (β·x, y) = λ·(x, y)`` on G1."""
    return _constants()[0]


@lru_cache(maxsize=1)
def glv_lambda() -> int:
    """λ, the cube root of unity mod r by which φ acts on G1."""
    return _constants()[1]


@lru_cache(maxsize=1)
def _constants() -> tuple[int, int]:
    # A primitive cube root of unity is g^((m-1)/3) for any g that is not a cube mod m.
    beta = next(c for c in (pow(g, (P - 1) // 3, P) for g in range(2, 100)) if c != 1)
    lam = next(c for c in (pow(g, (R - 1) // 3, R) for g in range(2, 100)) if c != 1)
    x, y = (c.n for c in normalize(G1))
    for candidate in (lam, lam * lam % R):
        mx, my = (c.n for c in normalize(multiply(G1, candidate)))
        if (mx, my) == (beta * x % P, y):
            return beta, candidate
    raise AssertionError("no λ matches β on G1")  # unreachable: φ acts as one of the two


def _double_in_place(points: list[G1Affine]) -> None:
    invs = fp_batch_inv([2 * y for _, y in points])
    for i, (x, y) in enumerate(points):
        slope = 3 * x * x % P * invs[i] % P
        x3 = (slope * slope - 2 * x) % P
        points[i] = (x3, (slope * (x - x3) - y) % P)


def _add_in_place(points: list[G1Affine], chosen: Sequence[int], targets: list[G1Affine]) -> None:
    invs = fp_batch_inv([(t[0] - points[i][0]) % P for i, t in zip(chosen, targets, strict=True)])
    for inv, i, (tx, ty) in zip(invs, chosen, targets, strict=True):
        x, y = points[i]
        slope = (ty - y) * inv % P
        x3 = (slope * slope - x - tx) % P
        points[i] = (x3, (slope * (x - x3) - y) % P)

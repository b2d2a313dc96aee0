"""Multi-scalar multiplication ``Σ s_i·P_i`` on BN254 G1 and G2 with Pippenger's bucket method.

Pippenger's method (Bernstein et al., "Faster batch forgery identification", INDOCRYPT 2012,
§4) splits the scalars into c-bit windows; per window each point is added once into the bucket
of its digit and the buckets are summed with a running sum, so an n-term MSM costs about
``(254/c)·(n + 2^c)`` additions instead of ``n·254`` doublings and additions. G1 runs on
integer Jacobian coordinates (a = 0 formulas, Bernstein–Lange EFD ``dbl-2009-l`` and
``add-2007-bl``); G2 reuses py_ecc's projective Fp2 arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.optimized_bn128 import add, double

from proofs.bn254 import G1_INFINITY, G2_INFINITY, G1Point, G2Point, P, R, affine_g1

_Jac = tuple[int, int, int]
_T = TypeVar("_T")
_JAC_INFINITY: _Jac = (1, 1, 0)
MSM_TERMS_MAX = 1 << 22  # a named bound: far above any circuit this package proves


def msm_g1(points: Sequence[G1Point], scalars: Sequence[int]) -> G1Point:
    """``Σ scalars[i]·points[i]`` in G1 (scalars taken mod r)."""
    jac: list[_Jac] = []
    for point in points:
        xy = affine_g1(point)
        jac.append(_JAC_INFINITY if xy is None else (xy[0], xy[1], 1))
    total = _pippenger(jac, scalars, _jac_add, _jac_double, _JAC_INFINITY)
    return _jac_to_point(total)


def msm_g2(points: Sequence[G2Point], scalars: Sequence[int]) -> G2Point:
    """``Σ scalars[i]·points[i]`` in G2 (scalars taken mod r)."""
    return _pippenger(list(points), scalars, add, double, G2_INFINITY)


def g1_mul(point: G1Point, scalar: int) -> G1Point:
    """One G1 scalar multiplication on the integer Jacobian arithmetic of this module."""
    return msm_g1([point], [scalar])


def g1_add(a: G1Point, b: G1Point) -> G1Point:
    """G1 addition (py_ecc projective)."""
    return add(a, b)


def _pippenger(
    points: list[_T],
    scalars: Sequence[int],
    add_fn: Callable[[_T, _T], _T],
    double_fn: Callable[[_T], _T],
    zero: _T,
) -> _T:
    if len(points) != len(scalars):
        raise ValueError("msm: points and scalars differ in length")
    if len(points) > MSM_TERMS_MAX:
        raise ValueError(f"msm: more than {MSM_TERMS_MAX} terms")
    reduced = [s % R for s in scalars]
    pairs = [(pt, s) for pt, s in zip(points, reduced, strict=True) if s]
    if not pairs:
        return zero
    window = _window_bits(len(pairs))
    top_bits = max(s for _, s in pairs).bit_length()
    mask = (1 << window) - 1
    result = zero
    for shift in range(((top_bits - 1) // window) * window, -1, -window):
        for _ in range(window):
            result = double_fn(result)
        buckets: list[_T | None] = [None] * (1 << window)
        for pt, s in pairs:
            digit = (s >> shift) & mask
            if digit:
                held = buckets[digit]
                buckets[digit] = pt if held is None else add_fn(held, pt)
        running: _T | None = None
        window_sum: _T | None = None
        for bucket in reversed(buckets[1:]):
            if bucket is not None:
                running = bucket if running is None else add_fn(running, bucket)
            if running is not None:
                window_sum = running if window_sum is None else add_fn(window_sum, running)
        if window_sum is not None:
            result = add_fn(result, window_sum)
    return result


def _window_bits(n: int) -> int:
    if n < 4:
        return 2
    return max(2, min(16, n.bit_length() - 2))


def _jac_double(pt: _Jac) -> _Jac:
    x, y, z = pt
    if z == 0:
        return pt
    a = x * x % P
    b = y * y % P
    c = b * b % P
    d = 2 * ((x + b) * (x + b) - a - c) % P
    e = 3 * a % P
    x3 = (e * e - 2 * d) % P
    y3 = (e * (d - x3) - 8 * c) % P
    z3 = 2 * y * z % P
    return (x3, y3, z3)


def _jac_add(p1: _Jac, p2: _Jac) -> _Jac:
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = 2 * (s2 - s1) % P
    if h == 0:
        return _jac_double(p1) if r == 0 else _JAC_INFINITY
    i = 4 * h * h % P
    j = h * i % P
    v = u1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * s1 * j) % P
    z3 = ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % P
    return (x3, y3, z3)


def _jac_to_point(pt: _Jac) -> G1Point:
    x, y, z = pt
    if z == 0:
        return G1_INFINITY
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return (FQ(x * z_inv2 % P), FQ(y * z_inv2 * z_inv % P), FQ.one())

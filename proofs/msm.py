"""Multi-scalar multiplication ``Σ s_i·P_i`` on BN254 G1 and G2 with Pippenger's bucket method.

Pippenger's method (Bernstein et al., "Faster batch forgery identification", INDOCRYPT 2012,
§4) splits the scalars into c-bit windows; per window each point is added once into the bucket
of its digit and the buckets are summed with a running sum, so an n-term MSM costs about
``(254/c)·(n + 2^c)`` additions instead of ``n·254`` doublings and additions. The group
arithmetic is the integer Jacobian code of ``proofs.jacobian``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2

from proofs.bn254 import (
    G1_INFINITY,
    G2_INFINITY,
    G1Point,
    G2Point,
    P,
    R,
    affine_g1,
    affine_g2,
)
from proofs.jacobian import (
    JAC1_INFINITY,
    JAC2_INFINITY,
    Jac1,
    Jac2,
    f2inv,
    fixed_base_muls,
    jac1_add,
    jac1_double,
    jac2_add,
    jac2_double,
    scalar_mul,
)

_T = TypeVar("_T")
MSM_TERMS_MAX = 1 << 22  # a named bound: far above any circuit this package proves


def msm_g1(points: Sequence[G1Point], scalars: Sequence[int]) -> G1Point:
    """``Σ scalars[i]·points[i]`` in G1 (scalars taken mod r)."""
    jac = [g1_to_jac(p) for p in points]
    return jac1_to_g1(pippenger(jac, scalars, jac1_add, jac1_double, JAC1_INFINITY))


def msm_g2(points: Sequence[G2Point], scalars: Sequence[int]) -> G2Point:
    """``Σ scalars[i]·points[i]`` in G2 (scalars taken mod r)."""
    jac = [g2_to_jac(p) for p in points]
    return jac2_to_g2(pippenger(jac, scalars, jac2_add, jac2_double, JAC2_INFINITY))


def g1_mul(point: G1Point, scalar: int) -> G1Point:
    """One G1 scalar multiplication."""
    return msm_g1([point], [scalar])


def g1_fixed_base_muls(base: G1Point, scalars: Sequence[int]) -> list[G1Point]:
    """``[s·base for s in scalars]`` through one precomputed table (setup-time helper)."""
    table = fixed_base_muls(
        g1_to_jac(base), [s % R for s in scalars], jac1_add, jac1_double, JAC1_INFINITY
    )
    return [jac1_to_g1(p) for p in table]


def g2_fixed_base_muls(base: G2Point, scalars: Sequence[int]) -> list[G2Point]:
    """``[s·base for s in scalars]`` in G2 through one precomputed table."""
    table = fixed_base_muls(
        g2_to_jac(base), [s % R for s in scalars], jac2_add, jac2_double, JAC2_INFINITY
    )
    return [jac2_to_g2(p) for p in table]


def pippenger(
    points: list[_T],
    scalars: Sequence[int],
    add_fn: Callable[[_T, _T], _T],
    double_fn: Callable[[_T], _T],
    zero: _T,
) -> _T:
    """``Σ scalars[i]·points[i]`` (scalars mod r) in any group given by its add and double."""
    if len(points) != len(scalars):
        raise ValueError("msm: points and scalars differ in length")
    if len(points) > MSM_TERMS_MAX:
        raise ValueError(f"msm: more than {MSM_TERMS_MAX} terms")
    pairs = [(pt, s % R) for pt, s in zip(points, scalars, strict=True) if s % R]
    if not pairs:
        return zero
    if len(pairs) == 1:
        return scalar_mul(pairs[0][0], pairs[0][1], add_fn, double_fn, zero)
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


def g1_to_jac(point: G1Point) -> Jac1:
    """From a py_ecc G1 point."""
    xy = affine_g1(point)
    return JAC1_INFINITY if xy is None else (xy[0], xy[1], 1)


def g2_to_jac(point: G2Point) -> Jac2:
    """From a py_ecc G2 point."""
    xy = affine_g2(point)
    return JAC2_INFINITY if xy is None else (xy[0], xy[1], (1, 0))


def jac1_to_g1(pt: Jac1) -> G1Point:
    """To an affine py_ecc G1 point."""
    x, y, z = pt
    if z == 0:
        return G1_INFINITY
    zi = pow(z, -1, P)
    zi2 = zi * zi % P
    return (FQ(x * zi2 % P), FQ(y * zi2 * zi % P), FQ.one())


def jac2_to_g2(pt: Jac2) -> G2Point:
    """To an affine py_ecc G2 point."""
    x, y, z = pt
    if z == (0, 0):
        return G2_INFINITY
    zi = f2inv(z)
    zi2 = _f2mul(zi, zi)
    xa, ya = _f2mul(x, zi2), _f2mul(y, _f2mul(zi2, zi))
    return (FQ2(list(xa)), FQ2(list(ya)), FQ2.one())


def _f2mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return ((a[0] * b[0] - a[1] * b[1]) % P, (a[0] * b[1] + a[1] * b[0]) % P)

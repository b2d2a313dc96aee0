"""Integer Jacobian-coordinate arithmetic for BN254 G1 (over Fp) and G2 (over Fp2).

py_ecc's field objects cost tens of microseconds per point addition; these plain-integer
versions of the a = 0 formulas (Bernstein–Lange Explicit-Formulas Database, ``dbl-2009-l``
and ``add-2007-bl``) are several times faster and back the MSMs, the fixed-base tables of
the test setup and the G2 subgroup check. ``(X, Y, Z)`` stands for ``(X/Z^2, Y/Z^3)``;
``Z = 0`` is the point at infinity. An Fp2 element is ``(c0, c1)`` for ``c0 + c1·u``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias, TypeVar

from py_ecc.optimized_bn128 import field_modulus as P

Fp2: TypeAlias = tuple[int, int]
Jac1: TypeAlias = tuple[int, int, int]
Jac2: TypeAlias = tuple[Fp2, Fp2, Fp2]
_T = TypeVar("_T")

JAC1_INFINITY: Jac1 = (1, 1, 0)
JAC2_INFINITY: Jac2 = ((1, 0), (1, 0), (0, 0))
FIXED_BASE_WINDOW_BITS = 4
SCALAR_BITS = 256


def jac1_double(pt: Jac1) -> Jac1:
    """2·P in G1."""
    x, y, z = pt
    if z == 0:
        return pt
    a = x * x % P
    b = y * y % P
    c = b * b % P
    d = 2 * ((x + b) * (x + b) - a - c) % P
    e = 3 * a % P
    x3 = (e * e - 2 * d) % P
    return (x3, (e * (d - x3) - 8 * c) % P, 2 * y * z % P)


def jac1_add(p1: Jac1, p2: Jac1) -> Jac1:
    """P1 + P2 in G1 (any inputs, including equal points and infinity)."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    if z2 == 1:
        return _jac1_add_affine(p1, x2, y2)
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = 2 * (s2 - s1) % P
    if h == 0:
        return jac1_double(p1) if r == 0 else JAC1_INFINITY
    i = 4 * h * h % P
    j = h * i % P
    v = u1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * s1 * j) % P
    return (x3, y3, ((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h % P)


def _jac1_add_affine(p1: Jac1, x2: int, y2: int) -> Jac1:
    """P1 + (x2, y2, 1): the mixed formulas (EFD ``madd-2007-bl``), four products fewer; the
    MSMs' buckets take their points in this form."""
    x1, y1, z1 = p1
    z1z1 = z1 * z1 % P
    h = (x2 * z1z1 - x1) % P
    r = 2 * (y2 * z1 * z1z1 - y1) % P
    if h == 0:
        return jac1_double(p1) if r == 0 else JAC1_INFINITY
    hh = h * h % P
    i = 4 * hh
    j = h * i % P
    v = x1 * i % P
    x3 = (r * r - j - 2 * v) % P
    y3 = (r * (v - x3) - 2 * y1 * j) % P
    return (x3, y3, ((z1 + h) * (z1 + h) - z1z1 - hh) % P)


def jac2_double(pt: Jac2) -> Jac2:
    """2·Q in G2 (on the twist)."""
    x, y, z = pt
    if z == (0, 0):
        return pt
    a = _f2mul(x, x)
    b = _f2mul(y, y)
    c = _f2mul(b, b)
    xb = _f2add(x, b)
    d = _f2scale(_f2sub(_f2sub(_f2mul(xb, xb), a), c), 2)
    e = _f2scale(a, 3)
    x3 = _f2sub(_f2mul(e, e), _f2scale(d, 2))
    y3 = _f2sub(_f2mul(e, _f2sub(d, x3)), _f2scale(c, 8))
    return (x3, y3, _f2scale(_f2mul(y, z), 2))


def jac2_add(p1: Jac2, p2: Jac2) -> Jac2:
    """Q1 + Q2 in G2 (any inputs)."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == (0, 0):
        return p2
    if z2 == (0, 0):
        return p1
    z1z1 = _f2mul(z1, z1)
    z2z2 = _f2mul(z2, z2)
    u1 = _f2mul(x1, z2z2)
    u2 = _f2mul(x2, z1z1)
    s1 = _f2mul(_f2mul(y1, z2), z2z2)
    s2 = _f2mul(_f2mul(y2, z1), z1z1)
    h = _f2sub(u2, u1)
    r = _f2scale(_f2sub(s2, s1), 2)
    if h == (0, 0):
        return jac2_double(p1) if r == (0, 0) else JAC2_INFINITY
    h2 = _f2scale(h, 2)
    i = _f2mul(h2, h2)
    j = _f2mul(h, i)
    v = _f2mul(u1, i)
    x3 = _f2sub(_f2sub(_f2mul(r, r), j), _f2scale(v, 2))
    y3 = _f2sub(_f2mul(r, _f2sub(v, x3)), _f2scale(_f2mul(s1, j), 2))
    z12 = _f2add(z1, z2)
    z3 = _f2mul(_f2sub(_f2sub(_f2mul(z12, z12), z1z1), z2z2), h)
    return (x3, y3, z3)


def scalar_mul(
    pt: _T, scalar: int, add: Callable[[_T, _T], _T], double: Callable[[_T], _T], zero: _T
) -> _T:
    """Fixed 4-bit-window multiplication (not constant time: for public scalars and tests).

    About ``bits + bits/4 + 14`` group operations, against ``1.5·bits`` for double-and-add.
    """
    if scalar <= 0:
        return zero
    table = [zero, pt]
    for _ in range(14):
        table.append(add(table[-1], pt))
    result = zero
    top = (scalar.bit_length() + 3) // 4 * 4
    for shift in range(top - 4, -1, -4):
        for _ in range(4):
            result = double(result)
        digit = (scalar >> shift) & 15
        if digit:
            result = add(result, table[digit])
    return result


def fixed_base_muls(
    base: _T,
    scalars: Sequence[int],
    add: Callable[[_T, _T], _T],
    double: Callable[[_T], _T],
    zero: _T,
) -> list[_T]:
    """``[s·base for s in scalars]`` with one table of ``d·16^i·base`` (64 additions each)."""
    windows = SCALAR_BITS // FIXED_BASE_WINDOW_BITS
    digit_count = 1 << FIXED_BASE_WINDOW_BITS
    table: list[list[_T]] = []
    step = base
    for _ in range(windows):
        row = [zero, step]
        for _ in range(digit_count - 2):
            row.append(add(row[-1], step))
        table.append(row)
        step = double(row[digit_count // 2])
    out = []
    mask = digit_count - 1
    for s in scalars:
        acc = zero
        for i in range(windows):
            digit = (s >> (i * FIXED_BASE_WINDOW_BITS)) & mask
            if digit:
                acc = add(acc, table[i][digit])
        out.append(acc)
    return out


def _f2mul(a: Fp2, b: Fp2) -> Fp2:
    return ((a[0] * b[0] - a[1] * b[1]) % P, (a[0] * b[1] + a[1] * b[0]) % P)


def _f2add(a: Fp2, b: Fp2) -> Fp2:
    return ((a[0] + b[0]) % P, (a[1] + b[1]) % P)


def _f2sub(a: Fp2, b: Fp2) -> Fp2:
    return ((a[0] - b[0]) % P, (a[1] - b[1]) % P)


def _f2scale(a: Fp2, k: int) -> Fp2:
    return (a[0] * k % P, a[1] * k % P)


def f2inv(a: Fp2) -> Fp2:
    norm_inv = pow(a[0] * a[0] + a[1] * a[1], -1, P)
    return (a[0] * norm_inv % P, -a[1] * norm_inv % P)


def fp_batch_inv(values: Sequence[int]) -> list[int]:
    """Inverses of nonzero Fp elements with one Fp inversion (Montgomery's trick: 3 products
    per element instead of one inversion each)."""
    prefix = [1]
    acc = 1
    for v in values:
        acc = acc * v % P
        prefix.append(acc)
    running = pow(acc, -1, P)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = running * prefix[i] % P
        running = running * values[i] % P
    return out

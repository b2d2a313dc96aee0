"""BN254 (alt_bn128) points: strict decoding and encoding of the snarkjs and EIP-197 wire forms.

Points are py_ecc ``optimized_bn128`` projective tuples: G1 over ``FQ``, G2 over ``FQ2`` on the
twist ``y^2 = x^3 + 3/(9+u)``. Decoding is strict, as the EIP-197 precompile is (EIP-196
"Encoding", EIP-197 "Specification"): every coordinate is a canonical integer below the base
field modulus ``p``, every point lies on its curve, and G2 points lie in the order-``r``
subgroup (py_ecc checks the curve equation only, so the subgroup check is ours). A value has
exactly one accepted encoding, so a proof has exactly one digest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeAlias

from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128 import (
    G1,
    G2,
    Z1,
    Z2,
    b,
    b2,
    curve_order,
    field_modulus,
    is_inf,
    is_on_curve,
    normalize,
)

from proofs.jacobian import JAC2_INFINITY, fp_batch_inv, jac2_add, jac2_double, scalar_mul

P: int = field_modulus  # base field modulus p
R: int = curve_order  # scalar field modulus r (order of G1 and of the G2 subgroup)
DECIMAL_DIGITS_MAX = 78  # 2^256 has 78 decimal digits; longer strings are never < p
FIELD_BYTES = 32

G1Point: TypeAlias = tuple[FQ, FQ, FQ]
G2Point: TypeAlias = tuple[FQ2, FQ2, FQ2]

G1_GENERATOR: G1Point = G1
G2_GENERATOR: G2Point = G2
G1_INFINITY: G1Point = Z1
G2_INFINITY: G2Point = Z2

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class Bn254DecodeError(ValueError):
    """A BN254 value that is malformed, non-canonical, off the curve or outside the subgroup.

    The message names the offending field, e.g. ``"proof.pi_b: not in the G2 subgroup"``.
    """


def decode_decimal(value: Any, field: str, modulus: int) -> int:
    """Parse a canonical decimal string (no sign, no leading zeros) that must be < ``modulus``."""
    if not isinstance(value, str):
        raise Bn254DecodeError(f"{field}: expected a decimal string, got {type(value).__name__}")
    if len(value) > DECIMAL_DIGITS_MAX or not _DECIMAL.fullmatch(value):
        raise Bn254DecodeError(f"{field}: not a canonical decimal string")
    number = int(value)
    if number >= modulus:
        raise Bn254DecodeError(f"{field}: value is not below the field modulus")
    return number


def decode_g1_json(value: Any, field: str) -> G1Point:
    """Decode a snarkjs G1 point ``[x, y, "1"]`` (infinity: ``["0", "1", "0"]``)."""
    x, y, z = _json_triple(value, field)
    xn = decode_decimal(x, f"{field}.x", P)
    yn = decode_decimal(y, f"{field}.y", P)
    zn = decode_decimal(z, f"{field}.z", P)
    if zn == 0:
        if (xn, yn) != (0, 1):
            raise Bn254DecodeError(f"{field}: infinity must be encoded as [0, 1, 0]")
        return G1_INFINITY
    if zn != 1:
        raise Bn254DecodeError(f"{field}: z must be 1 (affine) or 0 (infinity)")
    return make_g1(xn, yn, field)


def decode_g2_json(value: Any, field: str) -> G2Point:
    """Decode a snarkjs G2 point ``[[x_c0, x_c1], [y_c0, y_c1], ["1", "0"]]`` (c0 + c1*u)."""
    x, y, z = _json_triple(value, field)
    xc = _decode_fq2_json(x, f"{field}.x")
    yc = _decode_fq2_json(y, f"{field}.y")
    zc = _decode_fq2_json(z, f"{field}.z")
    if zc == (0, 0):
        if (xc, yc) != ((0, 0), (1, 0)):
            raise Bn254DecodeError(f"{field}: infinity must be encoded as [[0,0],[1,0],[0,0]]")
        return G2_INFINITY
    if zc != (1, 0):
        raise Bn254DecodeError(f"{field}: z must be [1, 0] (affine) or [0, 0] (infinity)")
    return make_g2(xc, yc, field)


def make_g1(x: int, y: int, field: str) -> G1Point:
    """Build an affine G1 point from canonical coordinates, checking the curve equation."""
    point = (FQ(x), FQ(y), FQ.one())
    if not is_on_curve(point, b):
        raise Bn254DecodeError(f"{field}: not on the G1 curve")
    return point


def make_g2(
    x: tuple[int, int], y: tuple[int, int], field: str, check_subgroup: bool = True
) -> G2Point:
    """Build an affine G2 point, checking the twist equation and the order-r subgroup."""
    point = (FQ2(list(x)), FQ2(list(y)), FQ2.one())
    if not is_on_curve(point, b2):
        raise Bn254DecodeError(f"{field}: not on the G2 twist curve")
    if check_subgroup and not is_in_g2_subgroup(point):
        raise Bn254DecodeError(f"{field}: not in the G2 subgroup")
    return point


def is_in_g2_subgroup(point: G2Point) -> bool:
    """True iff ``r * point`` is the identity (the twist has a cofactor; EIP-197 requires this)."""
    xy = affine_g2(point)
    if xy is None:
        return True
    product = scalar_mul((xy[0], xy[1], (1, 0)), R, jac2_add, jac2_double, JAC2_INFINITY)
    return product[2] == (0, 0)


def encode_g1_json(point: G1Point) -> list[str]:
    """snarkjs form of a G1 point: affine decimal strings with z = "1"."""
    if is_inf(point):
        return ["0", "1", "0"]
    x, y = normalize(point)
    return [str(x.n), str(y.n), "1"]


def encode_g2_json(point: G2Point) -> list[list[str]]:
    """snarkjs form of a G2 point: ``[[x_c0, x_c1], [y_c0, y_c1], ["1", "0"]]``."""
    if is_inf(point):
        return [["0", "0"], ["1", "0"], ["0", "0"]]
    x, y = normalize(point)
    return [[str(c) for c in x.coeffs], [str(c) for c in y.coeffs], ["1", "0"]]


def affine_g1(point: G1Point) -> tuple[int, int] | None:
    """Affine integer coordinates of a G1 point, ``None`` for infinity."""
    if is_inf(point):
        return None
    if point[2] == FQ.one():
        return (point[0].n, point[1].n)
    x, y = normalize(point)
    return (x.n, y.n)


def affine_g2(point: G2Point) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Affine integer coordinates ``((x_c0, x_c1), (y_c0, y_c1))`` of a G2 point."""
    if is_inf(point):
        return None
    x, y = (point[0], point[1]) if point[2] == FQ2.one() else normalize(point)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


def affine_g1_many(points: Sequence[G1Point]) -> list[tuple[int, int] | None]:
    """``affine_g1`` of each point, the projective ones sharing one field inversion."""
    zs = [p[2].n for p in points]
    invs = iter(fp_batch_inv([z for z in zs if z not in (0, 1)]))
    out: list[tuple[int, int] | None] = []
    for (x, y, _), z in zip(points, zs, strict=True):
        if z == 0:
            out.append(None)
        elif z == 1:
            out.append((x.n, y.n))
        else:
            zi = next(invs)
            out.append((x.n * zi % P, y.n * zi % P))
    return out


def affine_g2_many(
    points: Sequence[G2Point],
) -> list[tuple[tuple[int, int], tuple[int, int]] | None]:
    """``affine_g2`` of each point; ``1/z = conj(z)/N(z)``, the norms share one inversion."""
    zs = [(int(p[2].coeffs[0]), int(p[2].coeffs[1])) for p in points]
    moved = [z for z in zs if z not in ((0, 0), (1, 0))]
    invs = iter(fp_batch_inv([z0 * z0 + z1 * z1 for z0, z1 in moved]))
    out: list[tuple[tuple[int, int], tuple[int, int]] | None] = []
    for (x, y, _), z in zip(points, zs, strict=True):
        x0, x1 = int(x.coeffs[0]), int(x.coeffs[1])
        y0, y1 = int(y.coeffs[0]), int(y.coeffs[1])
        if z == (0, 0):
            out.append(None)
        elif z == (1, 0):
            out.append(((x0, x1), (y0, y1)))
        else:
            ni = next(invs)
            zi0, zi1 = z[0] * ni % P, -z[1] * ni % P
            out.append(
                (
                    ((x0 * zi0 - x1 * zi1) % P, (x0 * zi1 + x1 * zi0) % P),
                    ((y0 * zi0 - y1 * zi1) % P, (y0 * zi1 + y1 * zi0) % P),
                )
            )
    return out


def decode_g1_bytes(data: bytes, field: str) -> G1Point:
    """EIP-196 G1 encoding: ``x ‖ y``, 32-byte big-endian each; ``(0, 0)`` is infinity."""
    if len(data) != 2 * FIELD_BYTES:
        raise Bn254DecodeError(f"{field}: expected 64 bytes, got {len(data)}")
    x, y = _be_words(data, field)
    if (x, y) == (0, 0):
        return G1_INFINITY
    return make_g1(x, y, field)


def decode_g2_bytes(data: bytes, field: str) -> G2Point:
    """EIP-197 G2 encoding: ``x_imag ‖ x_real ‖ y_imag ‖ y_real`` (imaginary part first)."""
    if len(data) != 4 * FIELD_BYTES:
        raise Bn254DecodeError(f"{field}: expected 128 bytes, got {len(data)}")
    x_im, x_re, y_im, y_re = _be_words(data, field)
    if (x_im, x_re, y_im, y_re) == (0, 0, 0, 0):
        return G2_INFINITY
    return make_g2((x_re, x_im), (y_re, y_im), field)


def encode_g1_bytes(point: G1Point) -> bytes:
    """EIP-196 G1 encoding (64 bytes; infinity is all zeros)."""
    coords = affine_g1(point) or (0, 0)
    return b"".join(c.to_bytes(FIELD_BYTES, "big") for c in coords)


def _json_triple(value: Any, field: str) -> tuple[Any, Any, Any]:
    if not isinstance(value, list) or len(value) != 3:
        raise Bn254DecodeError(f"{field}: expected a list of 3 coordinates")
    return value[0], value[1], value[2]


def _decode_fq2_json(value: Any, field: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise Bn254DecodeError(f"{field}: expected [c0, c1]")
    return (decode_decimal(value[0], f"{field}.c0", P), decode_decimal(value[1], f"{field}.c1", P))


def _be_words(data: bytes, field: str) -> list[int]:
    words = [
        int.from_bytes(data[i : i + FIELD_BYTES], "big") for i in range(0, len(data), FIELD_BYTES)
    ]
    if any(w >= P for w in words):
        raise Bn254DecodeError(f"{field}: coordinate is not below the field modulus")
    return words

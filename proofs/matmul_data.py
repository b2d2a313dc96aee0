"""Freivalds' check of C = A·B on the consumer's own matrices, exact for int8, with a
derived rounding bound for floating point; and the single-entry check a fraud proof uses.

Jobs. A is m×k, B is k×n, both of ``dtype`` in {float32, float16, bfloat16, int8}; C is
m×n, int32 for int8 inputs, else ``dtype``. The honest node (``adapters.compute.matmul_data``)
computes int8 products exactly (int32 result, every partial sum below 2^26) and floating
products with float32 accumulation in any summation order (TF32 and reduced-precision
reductions off), rounded once to C's dtype.

Vectors. Freivalds (1977): with an n×t matrix R drawn after C is committed, accept iff
A(BR) = CR (int8) or every |CR - A(BR)| is within the bound below (floats). R follows from
``SHAKE-256(VECTOR_TAG || u32 len(s) || s || u32 n || u32 t)`` with s = root || openings_seed
(the result commitment, then the job's beacon randomness), read as little-endian u32 words u:

- int8: r = u mod 2^15, an integer in [0, 2^15). A wrong C has a nonzero row d of AB - C; d·r
  = 0 pins one coordinate of r to at most one value, so each vector passes a wrong C with
  probability at most 2^-15, and ``INT_VECTORS`` = 2 vectors at most 2^-30. Exactness: the
  check first refuses any |c| > 2^14·k (no int8 product reaches it: |a·b| <= 2^14); then
  every partial sum of A(BR) and CR is an integer of magnitude below 2^14·k·n·2^15 <= 2^53
  (k, n <= 4096), so float64 BLAS computes them exactly in any order.
- floats: r = ±(1/2 + (u mod 2^23)·2^-24) (the sign from u's top bit): |r| in [1/2, 1), exact
  in float32, 2^24 values.

Bound (floats). Notation of Higham, "Accuracy and Stability of Numerical Algorithms" (2nd
ed.), §2.2 and §3.1: u = 2^-24 (float32, in which the node accumulates), u' = 2^-53
(float64), u_d the unit roundoff of C's dtype (2^-24, 2^-11, 2^-8 for float32, float16,
bfloat16), γ_j = j·u / (1 - j·u) and γ'_j = j·u' / (1 - j·u'); |X| is entrywise, ‖·‖ the
Euclidean norm, A_i a row, B_l a row of B, B_{:,l} a column. η = 2^-150 and η_d (2^-150,
2^-25, 2^-134) are half the smallest subnormal of float32 and of C's dtype (the underflow
terms of Higham §2.1, (2.8)); F is the largest float32.

1. Honest error. A dot product of length k in float32, in any order, is within γ_k·|a|·|b|
   + k·η (Higham (3.5) and §3.1 with underflow) of the exact one, so the float32 product P
   has |P - AB| <= γ_k|A||B| + kη. Rounding P to C's dtype adds at most u_d|P| + η_d. So the
   honest C = AB + E with |E| <= β|A||B| + α, β = γ_k + u_d(1 + γ_k), α = η_d + 2kη. By
   Cauchy–Schwarz (|A||B|)_il <= ‖A_i‖·‖B_{:,l}‖, so ‖E_i‖ <= β·‖A_i‖·‖B‖_F + √n·α.
   The check allows the slightly larger β_e = M(β + γ'_k)(1 + γ'_k)/(1 - γ'_k) + γ'_k and
   α_e = M·α of the entry check below (M = 1 + 2^-40): every C none of whose entries the
   entry check proves wrong has |E| <= β_e|A||B| + α_e, an honest C among them.
2. Hoeffding over r, not the worst case. r is drawn after C is committed (from root ||
   openings_seed, the beacon's randomness coming after the commitment), so E is fixed
   before r. (Er)_i = Σ_l E_il·r_l is a sum of independent terms, zero-mean (r_l's sign is
   its word's top bit, uniform and independent of its magnitude) with |E_il·r_l| <= |E_il|,
   so P(|(Er)_i| >= λ‖E_i‖) <= 2·exp(-λ²/2) (Hoeffding, 1963). λ = 13: at most 2^-120.9
   per row, 2^-108.9 per job (m <= 2^12 rows), below 2^-68 over 2^40 jobs, so below 2^-60
   as claimed. An honest C's |(Er)_i| is thus within λ(β_e‖A_i‖‖B‖_F + √n·α_e), where a
   worst-case bound (|E||r| <= β|A||B|𝟙) would be √n times larger: at k = n = 2048 on
   random normal data the worst case is about 2·10^3 against |(ABr)_i| of about 1.6·10^3,
   so a lazy row (zero, halved, negated) passed; this bound is about 1.6·10^2.
3. The verifier's own rounding. V = fl64(Br): B's float32 entries and r's (24 significant
   bits each) multiply exactly in float64 and only the n-term sums round, so |V - Br| <=
   γ'_n|B|𝟙 (no underflow: every product is a multiple of 2^-173), and |A_i|·|V - Br| <=
   γ'_n·Σ_l |A_il|‖B_l‖₁ <= γ'_n·√n·‖A_i‖‖B‖_F (Cauchy–Schwarz twice). V32 = fl32(V) has
   |V32 - V| <= u|V| + η, and Y = fl32(A·V32) is within γ_k|A||V32| + kη of A·V32; with
   |V32| <= (1 + u)|V| + η and |A_i||V| <= ‖A_i‖‖V‖ this gives |Y - ABr|_i <= c·‖A_i‖‖V‖ +
   γ'_n·√n·‖A_i‖‖B‖_F + (1 + γ_k)η·√k·‖A_i‖ + kη, c = u + γ_k(1 + u). Z = fl32(C·r) is
   within γ_n|C||r| + nη <= γ_n‖C_i‖‖r‖ + nη of Cr.
4. So, with probability >= 1 - 2^-60 over r, an honest C gives |Z - Y|_i <= τ_i with
   τ_i = M·[λ(β_e‖A_i‖‖B‖_F + √n·α_e) + c‖A_i‖‖V‖ + γ'_n√n‖A_i‖‖B‖_F + (1 + γ_k)η√k‖A_i‖
   + kη + γ_n‖C_i‖‖r‖ + nη].
   The norms are sums of squares in float64 of float32 values (each square exact), within
   a factor 1 ± γ'_j of the exact ones for j terms (‖V‖², of float64 values, γ'_{k+1}; A's
   rows of 16-bit inputs in float32, item 6); the check divides them by 1 - γ'_j, and the
   margin M = 1 + 2^-40 covers the float64 evaluation of τ itself (a few dozen operations,
   each within u'). Inf and NaN, and a V past float32's range, make the check refuse.
5. Detection. If the check passes, then for D = C - AB, |(Dr)_i| <= |Z - Y|_i + |Z - Cr|_i +
   |Y - ABr|_i <= T_i := 2τ_i (τ_i holds the bounds of both rounding errors). T_i depends on r
   only through ‖V‖ and ‖r‖; below, take T_i as its largest value over r_j with the rest
   of r fixed (‖V‖ then moves by at most ‖B_{:,j}‖, ‖r‖ by at most 1). A single wrong entry
   (i, j) gives (Dr)_i = D_ij·r_j with |r_j| >= 1/2: caught by every vector when |D_ij| >
   2T_i. In general, fix all of a vector but r_j for a row i with |D_ij| > 2T_i: flipping
   r_j's sign moves (Dr)_i by 2|D_ij||r_j| > 2T_i, so at most one sign passes (probability
   <= 1/2), and within a sign the passing r_j lie in an interval of length 2T_i/|D_ij|
   holding at most 2T_i/(|D_ij|·2^-24) + 1 of the 2^23 values: a vector passes with
   probability at most min(1/2, 2T_i/|D_ij| + 2^-24). ``FLOAT_VECTORS`` = 1: a garbage row
   (|D_ij| >= 2^20·T_i) escapes with probability below 2^-19, a single changed entry beyond
   2T_i never; a lazy row (D_i = -(AB)_i, or -(AB)_i/2, or -2(AB)_i) has (Dr)_i of the
   order of (ABr)_i, about 0.76·‖(AB)_i‖ ≈ 10τ_i at k = n = 2048 on random normal data (≈ 3.4τ_i
   at 4096): one zeroed row escapes with probability about 8% (about 24% at 4096), a lazy C
   of many such rows is refused with certainty in practice, and an escaped row stays
   provably wrong entry by entry for whoever recomputes it (its entries are far beyond the
   entry check's slack). Each
   further vector would multiply the escape probability by the same factor at about half
   again the check's cost, which the 5% budget at n = 2048 does not leave. Smaller
   deviations are within what float rounding allows and are not claimed caught. Typical
   sizes (random normal float32, k = n): τ_i ≈ 1.6·10^2 at 2048 and ≈ 9·10^2 at 4096,
   against |(ABr)_i| ≈ 0.76·√(kn) (1.6·10^3, 3.1·10^3) and entries of C of about √k.

6. Cheap acceptance. τ_i needs ‖B‖_F, ‖A_i‖ and ‖C_i‖: another look at every entry. Most
   rows do not need them: any lower bound of τ_i accepts a row early, and the rows above
   it are decided by item 4 itself (so honest rows still pass as in item 4, and a passed row
   still has |Z - Y|_i <= τ_i: item 5 holds as stated). τ_i >= c·X with X = |A_i||V|, and
   item 3 gives |Y_i| <= (1 + c)X + (1 + γ_k)η·kF + kη (‖A_i‖₁ <= kF): the first threshold
   c·max(|Y_i| - (1 + γ_k)ηkF - kη, 0)/(1 + c) needs nothing more. For the rows left,
   λβ_e‖A_i‖‖B‖_F + c‖A_i‖‖V‖ from lower bounds of the norms (the sums of squares over
   1 + γ'_j; for float32 inputs ‖B‖_F's lower bound 0, B not read again for it). An honest
   float32 row's |Z - Y|_i is of the order of √k·u times its magnitudes, far below either,
   so the check streams A, B and C once and reads ‖B‖_F and ‖C_i‖ only when some row needs
   item 4. A 16-bit C's own rounding (u_d) puts honest rows above the first threshold; their
   blocks are converted to float32 anyway, so the sums of squares of A's rows (in float32:
   within γ_k and kη, Higham (3.4); a row past float32's range again in float64) and of B's
   (in float64) are taken in the same pass, while the block is in cache.

Entry check (fraud proofs, O(k)). ``is_entry_wrong`` decides one entry from A's row i and
B's column j alone, with a per-entry worst-case tolerance: int8, c_ij differs from the exact
int64 dot product; floats, |c_ij - ŝ| > M·((β + γ'_k)·Ŝ/(1 - γ'_k) + α), where ŝ, Ŝ are the
float64 dot products of a·b and |a|·|b| (each float32 product exact in float64; γ'_k with
u' = 2^-53 bounds their sums, so Ŝ <= (1 + γ'_k)(|A||B|)_ij and |ŝ - (AB)_ij| <=
γ'_k(|A||B|)_ij). An honest entry never satisfies it (item 1). Conversely a C none of whose
entries satisfies it has |E| <= β_e|A||B| + α_e (item 1), so items 2 to 4 hold for it as for
an honest C: with probability >= 1 - 2^-60 over r, a C the check refuses carries an entry a
challenger can prove wrong (``find_wrong_entry``).

Cost. Per vector one matrix-vector product with each of B (in float64, a block of rows
converted at a time), A and C (item 6: the sums of squares only for rows that need them),
O(m·k + k·n + m·n) against the 2·m·k·n multiply-adds of the product: each matrix streamed
from memory once, a cache-sized block of rows at a time (``bench/validator.py`` measures
both sides).
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from proofs.invariants import require
from proofs.merkle import HASH_SIZE
from proofs.npy import bfloat16_to_float32

_Float = TypeVar("_Float", np.float32, np.float64)

FLOAT_DTYPES = ("float32", "float16", "bfloat16")
INPUT_DTYPES = (*FLOAT_DTYPES, "int8")
DIM_MAX = 4096
"""Largest m, k and n (the int8 exactness bound above needs k, n <= 4096)."""

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
UNDERFLOW = {"float32": 2.0**-150, "float16": 2.0**-25, "bfloat16": 2.0**-134}
"""Half the smallest positive subnormal of each dtype (its absolute underflow error)."""

FLOAT32_U = 2.0**-24
FLOAT32_ETA = 2.0**-150
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT64_U = 2.0**-53
TOLERANCE_MARGIN = 1.0 + 2.0**-40
HOEFFDING_LAMBDA = 13.0
"""λ of the module docstring (item 2): 2·exp(-λ²/2) < 2^-120 per row."""

INT_VECTORS = 2
FLOAT_VECTORS = 1
INT_VECTOR_BITS = 15
FLOAT_VECTOR_BITS = 23
INT8_PRODUCT_MAX = 2**14
"""|a·b| <= 128·128 for int8 a, b."""

VECTOR_TAG = b"flopledger/matmul-data/freivalds/v1\x00"
OPENINGS_SEED_BYTES_MAX = 64
BLOCK_BYTES = 1 << 19
"""Rows of a matrix processed at once: about 512 KiB of float32, so a block read for the
product is still in cache when its absolute values are summed."""


def result_dtype(dtype: str) -> str:
    """C's dtype for inputs of ``dtype``: int32 for int8, else the input dtype."""
    return "int32" if dtype == "int8" else dtype


def derive_vectors(
    openings_seed: bytes, root: bytes, n: int, dtype: str
) -> npt.NDArray[np.float64]:
    """The n×t Freivalds vectors for a C committed as ``root`` (module docstring), exact
    float64 values (and exact float32 ones for the float dtypes)."""
    require(
        isinstance(openings_seed, bytes) and len(openings_seed) <= OPENINGS_SEED_BYTES_MAX,
        "openings seed: bytes, <= 64",
    )
    require(isinstance(root, bytes) and len(root) == HASH_SIZE, "root: 32 bytes")
    require(1 <= n <= DIM_MAX, f"n in 1..{DIM_MAX}")
    count = INT_VECTORS if dtype == "int8" else FLOAT_VECTORS
    seed = root + openings_seed
    header = VECTOR_TAG + struct.pack(">I", len(seed)) + seed + struct.pack(">II", n, count)
    words = np.frombuffer(hashlib.shake_256(header).digest(4 * n * count), dtype="<u4")
    words = words.reshape(n, count).astype(np.int64)
    if dtype == "int8":
        return (words & (2**INT_VECTOR_BITS - 1)).astype(np.float64)
    magnitude = 0.5 + (words & (2**FLOAT_VECTOR_BITS - 1)).astype(np.float64) * 2.0**-24
    return np.where(words >> 31, -magnitude, magnitude)


def check_product(
    a: npt.NDArray[np.generic],
    b: npt.NDArray[np.generic],
    c: npt.NDArray[np.generic],
    dtype: str,
    vectors: npt.NDArray[np.float64],
) -> bool:
    """Freivalds' check that C = A·B (exactly for int8, within the derived bound for floats)
    with the given vectors. Arrays are held as ``proofs.npy.STORAGE`` of their dtypes. Never
    raises on a wrong C of the right shape."""
    m, k = a.shape
    n = b.shape[1]
    require(b.shape[0] == k and c.shape == (m, n), "A is m×k, B k×n, C m×n")
    require(vectors.shape[0] == n, "one vector entry per column of C")
    if dtype == "int8":
        return _check_int8(a, b, c, vectors)
    require(dtype in FLOAT_DTYPES, f"dtype in {INPUT_DTYPES}")
    # 16-bit blocks are converted anyway: their squares cost little more while in cache, and
    # their rounding to C's dtype puts honest rows above item 6's first threshold.
    fused = dtype != "float32"
    with np.errstate(over="ignore", invalid="ignore"):
        v, b_squares = _product64(b, dtype, vectors, squares=fused)
        v32 = v.astype(np.float32)
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(v32))):
        return False  # an input with inf or NaN, or B·r past float32's range
    y, a_squares32 = _product32(a, dtype, v32, squares=fused)
    z, _ = _product32(c, dtype, vectors.astype(np.float32))
    if not np.all(np.isfinite(y)):
        return False
    with np.errstate(invalid="ignore"):  # a NaN difference is never within a bound
        difference = np.abs(z.astype(np.float64) - y.astype(np.float64))
    v_lower, v_upper = _norm_bounds(np.sum(v * v, axis=0), k + 1, FLOAT64_U)  # squares round
    rows = np.flatnonzero(np.any(~(difference <= _first_threshold(k, y)), axis=1))
    if len(rows) == 0:
        return True
    if fused:
        a_lower, a_upper = _norm_bounds32(a_squares32[rows], k, a, rows, dtype)
        b_lower, b_upper = _norm_bounds(np.sum(b_squares), k * n, FLOAT64_U)
    else:
        a_lower, a_upper = _norm_bounds(_squares(np.asarray(a)[rows], dtype), k, FLOAT64_U)
        b_lower = b_upper = np.zeros((), dtype=np.float64)  # read below if a row needs it
    leading = _leading_terms(dtype, k, n, a_lower[:, None], float(b_lower), v_lower[None, :])
    rows_left = np.any(~(difference[rows] <= leading / TOLERANCE_MARGIN), axis=1)
    rows, a_upper = rows[rows_left], a_upper[rows_left]
    if len(rows) == 0:
        return True
    if not fused:
        _, b_squares = _product64(b, dtype, vectors[:, :0], squares=True)
        _, b_upper = _norm_bounds(np.sum(b_squares), k * n, FLOAT64_U)
    _, c_upper = _norm_bounds(_squares(np.asarray(c)[rows], dtype), n, FLOAT64_U)
    _, r_upper = _norm_bounds(np.sum(vectors * vectors, axis=0), n, FLOAT64_U)
    with np.errstate(over="ignore", invalid="ignore"):
        tau = compute_tolerance(
            dtype,
            k,
            n,
            a_norms=a_upper[:, None],
            b_frobenius=float(b_upper),
            c_norms=c_upper[:, None],
            v_norms=v_upper[None, :],
            r_norms=r_upper[None, :],
        )
        return bool(np.all(np.isfinite(tau)) and np.all(difference[rows] <= tau))


def compute_tolerance(
    dtype: str,
    k: int,
    n: int,
    *,
    a_norms: npt.NDArray[np.float64],
    b_frobenius: float,
    c_norms: npt.NDArray[np.float64],
    v_norms: npt.NDArray[np.float64],
    r_norms: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """τ of the module docstring (item 4) from upper bounds of ‖A_i‖ and ‖C_i‖ (a row per
    row), of ‖B‖_F, and of ‖V‖ and ‖r‖ (a column per vector)."""
    g_k, g_n = _gamma(k, FLOAT32_U), _gamma(n, FLOAT32_U)
    root_n = math.sqrt(n)
    tau = (
        _leading_terms(dtype, k, n, a_norms, b_frobenius, v_norms)
        + HOEFFDING_LAMBDA * root_n * TOLERANCE_MARGIN * (UNDERFLOW[dtype] + 2 * k * FLOAT32_ETA)
        + _gamma(n, FLOAT64_U) * root_n * a_norms * b_frobenius
        + (1 + g_k) * FLOAT32_ETA * math.sqrt(k) * a_norms
        + k * FLOAT32_ETA
        + g_n * c_norms * r_norms
        + n * FLOAT32_ETA
    )
    return tau * TOLERANCE_MARGIN


def _leading_terms(
    dtype: str,
    k: int,
    n: int,
    a_norms: npt.NDArray[np.float64],
    b_frobenius: float,
    v_norms: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """λ·β_e·‖A_i‖‖B‖_F + c·‖A_i‖‖V‖ of τ_i (item 4), increasing in every norm: a lower
    bound of τ_i from lower bounds of the norms (item 6)."""
    g_k, g64_k = _gamma(k, FLOAT32_U), _gamma(k, FLOAT64_U)
    beta = g_k + UNIT_ROUNDOFF[dtype] * (1 + g_k)
    beta_e = TOLERANCE_MARGIN * (beta + g64_k) * (1 + g64_k) / (1 - g64_k) + g64_k
    c_y = FLOAT32_U + g_k * (1 + FLOAT32_U)
    result: npt.NDArray[np.float64] = (
        HOEFFDING_LAMBDA * beta_e * a_norms * b_frobenius + c_y * a_norms * v_norms
    )
    return result


def _first_threshold(k: int, y: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """c times a lower bound of X_i from |y_i| alone (item 6 of the module docstring)."""
    g_k = _gamma(k, FLOAT32_U)
    c_y = FLOAT32_U + g_k * (1 + FLOAT32_U)
    slack = (1 + g_k) * FLOAT32_ETA * k * FLOAT32_MAX + k * FLOAT32_ETA
    lower = np.maximum(np.abs(y.astype(np.float64)) - slack, 0.0) / (1 + c_y)
    return c_y * lower / TOLERANCE_MARGIN


def _norm_bounds(
    squares: npt.NDArray[np.float64] | np.float64, terms: int, unit: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Lower and upper bounds of the norms whose sums of ``terms`` squares were computed as
    ``squares`` with unit roundoff ``unit``, no underflow (item 4)."""
    values = np.asarray(squares, dtype=np.float64)
    g = _gamma(terms, unit)
    return np.sqrt(values / (1 + g)), np.sqrt(values / (1 - g))


def _norm_bounds32(
    squares: npt.NDArray[np.float32],
    k: int,
    a: npt.NDArray[np.generic],
    rows: npt.NDArray[np.intp],
    dtype: str,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Bounds of ‖A_i‖ from its float32 sum of squares (within γ_k and one η per square,
    Higham (3.4)); rows whose squares overflowed float32 are summed again in float64."""
    values = squares.astype(np.float64)
    g = _gamma(k, FLOAT32_U)
    lower = np.sqrt(np.maximum(values - k * FLOAT32_ETA, 0.0) / (1 + g))
    upper = np.sqrt((values + k * FLOAT32_ETA) / (1 - g))
    overflowed = ~np.isfinite(values)
    if np.any(overflowed):
        again = _squares(np.asarray(a)[rows[overflowed]], dtype)
        lower[overflowed], upper[overflowed] = _norm_bounds(again, k, FLOAT64_U)
    return lower, upper


def is_entry_wrong(
    a_row: npt.NDArray[np.generic],
    b_column: npt.NDArray[np.generic],
    c_entry: npt.NDArray[np.generic],
    dtype: str,
) -> bool:
    """Whether ``c_entry`` (one entry, held as ``proofs.npy.STORAGE`` of C's dtype) cannot be
    an honest (i, j) entry of C given A's row i and B's column j, both held as ``dtype``
    (module docstring, "Entry check"). Never raises on inputs of equal length."""
    k = len(a_row)
    if len(b_column) != k or np.size(c_entry) != 1:
        return False
    if dtype == "int8":
        exact = int(np.dot(np.asarray(a_row, np.int64), np.asarray(b_column, np.int64)))
        return int(np.asarray(c_entry, np.int64).reshape(-1)[0]) != exact
    a64 = to_float32(np.asarray(a_row), dtype).astype(np.float64)
    b64 = to_float32(np.asarray(b_column), dtype).astype(np.float64)
    c = float(to_float32(np.asarray(c_entry).reshape(-1), dtype)[0])
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        return False  # no honest value to compare with: the inputs themselves are not finite
    if not math.isfinite(c):
        return True
    g_k, g64 = _gamma(k, FLOAT32_U), _gamma(k, FLOAT64_U)
    u_d = UNIT_ROUNDOFF[dtype]
    beta = g_k + u_d * (1 + g_k)
    dot = float(np.dot(a64, b64))
    abs_dot = float(np.dot(np.abs(a64), np.abs(b64)))
    bound = (beta + g64) * abs_dot / (1 - g64) + UNDERFLOW[dtype] + 2 * k * FLOAT32_ETA
    return abs(c - dot) > bound * TOLERANCE_MARGIN


def find_wrong_entry(
    a: npt.NDArray[np.generic],
    b: npt.NDArray[np.generic],
    c: npt.NDArray[np.generic],
    dtype: str,
) -> tuple[int, int] | None:
    """The first (row, column) of C that ``is_entry_wrong`` proves wrong, or None: the
    challenger's search (O(m·k·n) in float64, a block of rows at a time; a challenger runs it
    on a C that failed Freivalds)."""
    m, k = a.shape
    b64 = b.astype(np.float64) if dtype == "int8" else to_float32(b, dtype).astype(np.float64)
    step = max(1, BLOCK_BYTES // (8 * max(k, 1)))
    for start in range(0, m, step):
        block = a[start : start + step]
        a64 = (
            block.astype(np.float64)
            if dtype == "int8"
            else to_float32(block, dtype).astype(np.float64)
        )
        product = a64 @ b64
        claimed = c[start : start + step]
        if dtype == "int8":
            wrong = claimed.astype(np.float64) != product
        else:
            values = to_float32(claimed, dtype).astype(np.float64)
            slack = (np.abs(a64) @ np.abs(b64)) * (UNIT_ROUNDOFF[dtype] + _gamma(k, FLOAT32_U)) / 2
            with np.errstate(invalid="ignore"):  # below the bound: candidates, confirmed below
                wrong = ~(np.abs(values - product) <= slack)
        for i, j in zip(*np.nonzero(wrong), strict=True):
            row = start + int(i)
            if is_entry_wrong(a[row], b[:, int(j)], c[row, int(j) : int(j) + 1], dtype):
                return row, int(j)
    return None


def to_float32(block: npt.NDArray[np.generic], dtype: str) -> npt.NDArray[np.float32]:
    """Entries of a float dtype (held as ``proofs.npy.STORAGE``) as exact float32 values."""
    if dtype == "bfloat16":
        return bfloat16_to_float32(block)  # type: ignore[arg-type]
    if dtype == "float32":
        return block  # type: ignore[return-value]
    return block.astype(np.float32)


def _product32(
    matrix: npt.NDArray[np.generic],
    dtype: str,
    right: npt.NDArray[np.float32],
    *,
    squares: bool = False,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(M·right, optionally each row's sum of squares) in float32 with numpy's own
    single-threaded loops, not BLAS threads: those stall when the cores are busy (a 0.3 ms
    matrix-vector product took 8-20 ms on a shared machine), these stream at memory speed
    regardless."""
    rows, width = matrix.shape
    product = np.empty((rows, right.shape[1]), dtype=np.float32)
    sums = np.empty(rows if squares else 0, dtype=np.float32)
    columns = np.ascontiguousarray(right.T)
    # float32 needs no conversion: one call per vector streams the whole matrix; 16-bit
    # dtypes are converted a cache-sized block at a time.
    step = rows if dtype == "float32" else max(1, BLOCK_BYTES // (4 * max(width, 1)))
    for start in range(0, rows, step):
        block = to_float32(matrix[start : start + step], dtype)
        for index, column in enumerate(columns):
            np.vecdot(block, column, out=product[start : start + len(block), index])
        if squares:
            with np.errstate(over="ignore"):  # an overflowed row is summed again in float64
                np.vecdot(block, block, out=sums[start : start + len(block)])
    return product, sums


def _product64(
    matrix: npt.NDArray[np.generic],
    dtype: str,
    right: npt.NDArray[np.float64],
    *,
    squares: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(M·right, optionally each row's sum of squares) in float64 (item 3: each product
    exact, only the sums round), a cache-sized block of rows converted at a time so the
    matrix is still streamed once."""
    rows, width = matrix.shape
    product = np.empty((rows, right.shape[1]), dtype=np.float64)
    sums = np.empty(rows if squares else 0, dtype=np.float64)
    columns = np.ascontiguousarray(right.T)
    step = max(1, BLOCK_BYTES // (8 * max(width, 1)))
    buffer = np.empty((min(step, rows), width), dtype=np.float64)  # reused: no allocations
    for start in range(0, rows, step):
        block = buffer[: min(step, rows - start)]
        np.copyto(block, to_float32(matrix[start : start + step], dtype))
        for index, column in enumerate(columns):
            np.vecdot(block, column, out=product[start : start + len(block), index])
        if squares:
            np.vecdot(block, block, out=sums[start : start + len(block)])
    return product, sums


def _squares(matrix: npt.NDArray[np.generic], dtype: str) -> npt.NDArray[np.float64]:
    """Each row's sum of squares in float64 (every square of a float32 exact), a block of
    rows at a time."""
    rows, width = matrix.shape
    sums = np.empty(rows, dtype=np.float64)
    step = max(1, BLOCK_BYTES // (8 * max(width, 1)))
    buffer = np.empty((min(step, rows), width), dtype=np.float64)
    for start in range(0, rows, step):
        block = buffer[: min(step, rows - start)]
        np.copyto(block, to_float32(matrix[start : start + step], dtype))
        np.vecdot(block, block, out=sums[start : start + len(block)])
    return sums


def _multiply(matrix: npt.NDArray[_Float], columns: npt.NDArray[_Float]) -> npt.NDArray[_Float]:
    """matrix·columnsᵀ (``columns`` holds one vector per row), as row-by-vector dot products."""
    return np.stack([np.vecdot(matrix, column) for column in columns], axis=1)


def _check_int8(
    a: npt.NDArray[np.generic],
    b: npt.NDArray[np.generic],
    c: npt.NDArray[np.generic],
    r: npt.NDArray[np.float64],
) -> bool:
    """Exact Freivalds for int8 in float64 (module docstring: every partial sum < 2^53)."""
    k = a.shape[1]
    v = _int_product(b, r, None)
    y = None if v is None else _int_product(a, v, None)
    z = _int_product(c, r, INT8_PRODUCT_MAX * k)
    return y is not None and z is not None and bool(np.array_equal(y, z))


def _int_product(
    matrix: npt.NDArray[np.generic], right: npt.NDArray[np.float64], entry_max: int | None
) -> npt.NDArray[np.float64] | None:
    """matrix·right in float64 by blocks of rows; None when an entry's magnitude exceeds
    ``entry_max``."""
    rows, width = matrix.shape
    product = np.empty((rows, right.shape[1]), dtype=np.float64)
    columns = np.ascontiguousarray(right.T)
    step = max(1, BLOCK_BYTES // (8 * max(width, 1)))
    for start in range(0, rows, step):
        raw = matrix[start : start + step]
        if entry_max is not None and (raw.max() > entry_max or raw.min() < -entry_max):
            return None
        product[start : start + len(raw)] = _multiply(raw.astype(np.float64), columns)
    return product


def _gamma(count: int, unit: float) -> float:
    """γ_count = count·u / (1 - count·u) (Higham, Lemma 3.1)."""
    require(count * unit < 1, "count·u < 1")
    return count * unit / (1 - count * unit)

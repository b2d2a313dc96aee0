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
ed.), §2.2 and §3.1: u = 2^-24 (float32, in which the node accumulates and the verifier
computes), u_d the unit roundoff of C's dtype (2^-24, 2^-11, 2^-8 for float32, float16,
bfloat16), γ_j = j·u / (1 - j·u); |X| is entrywise. η = 2^-150 and η_d (2^-150, 2^-25, 2^-134)
are half the smallest subnormal of float32 and of C's dtype (the underflow terms of Higham
§2.1, (2.8)); 𝟙 is a vector of ones.

1. Honest error. A dot product of length k in float32, in any order, is within γ_k·|a|·|b|
   + k·η (Higham (3.5) and §3.1 with underflow) of the exact one, so the float32 product P
   has |P - AB| <= γ_k|A||B| + kη. Rounding P to C's dtype adds at most u_d|P| + η_d. So the
   honest C = AB + E with |E| <= β|A||B| + α, β = γ_k + u_d(1 + γ_k), α = η_d + 2kη.
   With |r| <= 1: |ER| <= β·w + nα, where w = |A|(|B|𝟙).
2. The verifier's own rounding (float32, R exact). V = fl(BR) has |V - BR| <= γ_n|B|𝟙 + nη;
   Y = fl(AV) has |Y - ABR| <= (γ_n + γ_k + γ_n·γ_k)·w + 2nη·(|A|𝟙) + 2kη; Z = fl(CR) has
   |Z - CR| <= γ_n|C|𝟙 + 2nη, and an honest |C| <= (1 + u_d)(1 + γ_k)|A||B| + α.
3. So an honest C gives |Z - Y| <= τ with, per row i,
   τ_i = θ·w_i + (1 + γ_n)·n·α + 2nη·(|A|𝟙)_i + 2(n + k)η,
   θ = β + γ_n(1 + u_d)(1 + γ_k) + γ_n + γ_k + γ_n·γ_k.
   w is bounded without taking absolute values (a pass that costs as much as the check):
   by Cauchy–Schwarz w_i = Σ_l |A_il|·s_l <= ‖A_i‖₂·‖s‖₂ with s_l = ‖B_l‖₁ <= √n·‖B_l‖₂,
   so w_i <= W_i := √n·‖A_i‖₂·‖B‖_F, and (|A|𝟙)_i <= √k·‖A_i‖₂. The sums of squares are
   computed in float32 from nonnegative terms, within a factor 1 - γ of the exact ones less
   one η per square (Higham (3.4)): ‖A_i‖₂² <= (q_i + kη)/(1 - γ_k) for the computed q_i,
   B's rows likewise (n terms each), summed over its k rows in float64 (a factor 1 + γ'_k,
   u' = 2^-53). ``compute_tolerance`` evaluates τ with W in float64 with a relative margin
   of 2^-40 for its own rounding, so an honest node never fails, whatever the summation
   order of its hardware. Entries whose squares overflow float32 (above 2^63), inf and NaN
   make the check refuse.
4. Detection. If the check passes, then for D = C - AB, |(DR)_i| <= |Z - Y|_i + |Z - CR|_i +
   |Y - ABR|_i <= T_i := 2τ_i + γ_n(|C|𝟙)_i. A single wrong entry (i, j) gives (DR)_i = D_ij·r_j
   with |r_j| >= 1/2: caught by every vector when |D_ij| > 2T_i. In general, fix all of a
   vector but r_j for a row i with |D_ij| > 2T_i: flipping r_j's sign moves (DR)_i by
   2|D_ij||r_j| > 2T_i, so at most one sign passes (probability <= 1/2), and within a sign the
   passing r_j lie in an interval of length 2T_i/|D_ij| holding at most 2T_i/(|D_ij|·2^-24) + 1
   of the 2^23 values: a vector passes with probability at most min(1/2, 2T_i/|D_ij| +
   2^-24). ``FLOAT_VECTORS`` = 1: a garbage row (|D_ij| >= 2^20·T_i) escapes with probability
   below 2^-19, a single changed entry beyond 2T_i never; each further vector would multiply
   the escape probability by the same factor at about half again the check's cost (a
   product with each of B, A and C), which the 5% budget at n = 2048 does not leave.
   Smaller deviations are within what float rounding allows and are not claimed caught.
   Typical sizes: random normal A, B with k = n = 2048 in float32 give θ ≈ 4.9·10^-4 and W_i
   ≈ 4.2·10^6 (w_i ≈ 2.7·10^6), so T_i ≈ 4·10^3 against entries of C of about 45: the check
   proves the product right up to worst-case rounding slack at the scale of a whole row, not
   each entry's last bit (a changed entry below that slack needs the entry check below).

5. Cheap acceptance. τ_i needs ‖B‖_F and ‖A_i‖₂: another look at every entry of A and B.
   Most rows do not need them: any lower bound L_i <= ‖A_i‖₂·‖s‖₂ (<= W_i) gives a threshold
   θ·L_i <= τ_i, so a row with |Z - Y|_i <= θ·L_i passes the check of item 3 as well, and the
   rows that do not are decided by item 3 itself (so honest rows still always pass, and a
   passed row still satisfies |Z - Y|_i <= τ_i: item 4 holds as stated). First L_i from
   |y_i| alone: item 2's bounds give |y_i| <= (1 + γ_k)(1 + γ_n)·‖A_i‖₂‖s‖₂ + (1 + γ_k)·nkη·F
   + kη with F the largest float32; then, for the rows left, ‖A_i‖₂ (from its computed sum of
   squares, less kη, over 1 + γ_k) times ‖s‖₂ >= ‖max(|v̂| - nη, 0)‖₂ / (1 + γ_n) (each s_l >=
   |v_l| and |v̂_l - v_l| <= γ_n·s_l + nη). An honest row's |Z - Y|_i is of the order of √k·u
   times its magnitudes, far below θ·L_i, so the check streams A, B and C once and reads
   ‖B‖_F only when some row needs item 3.

Entry check (fraud proofs, O(k)). ``is_entry_wrong`` decides one entry from A's row i and
B's column j alone: int8, c_ij differs from the exact int64 dot product; floats, |c_ij - ŝ| >
(β + γ'_k)·Ŝ/(1 - γ'_k) + α (with margin), where ŝ, Ŝ are the float64 dot products of a·b and
|a|·|b| (each float32 product exact in float64; γ'_k with u' = 2^-53 bounds their sums). An
honest entry never satisfies it (item 1). Conversely a C none of whose entries satisfies it
passes Freivalds: items 1 to 3 hold for it as for an honest C, the entry check's float64
slack (γ'_k, the margin) being far inside θ - β (at least γ_n >= 2^-24). So a C the check
refuses always carries an entry a challenger can prove wrong (``find_wrong_entry``).

Cost. Per vector one matrix-vector product with each of B, A and C (item 5: the sums of
squares only for rows that need them), O(m·k + k·n + m·n) against the 2·m·k·n multiply-adds
of the product: each matrix streamed from memory once, a cache-sized block of rows at a time
(``bench/validator.py`` measures both sides).
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
    r = vectors.astype(np.float32)
    v, _ = _product_and_squares(b, dtype, r, squares=False)
    y, _ = _product_and_squares(a, dtype, v, squares=False)
    z, _ = _product_and_squares(c, dtype, r, squares=False)
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(y))):
        return False  # an input with inf or NaN, or products past float32's range
    with np.errstate(invalid="ignore"):
        difference = np.max(np.abs(z.astype(np.float64) - y.astype(np.float64)), axis=1)
    pending = ~(difference <= _first_threshold(dtype, k, n, y))
    if np.any(pending):
        rows = np.flatnonzero(pending)
        a_rows = to_float32(np.asarray(a)[rows], dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            threshold = _second_threshold(dtype, k, n, np.vecdot(a_rows, a_rows), v)
        rows = rows[~(difference[rows] <= threshold)]
    else:
        rows = np.flatnonzero(pending)
    if len(rows) == 0:
        return True
    _, b_squares = _product_and_squares(b, dtype, r)
    a_rows = to_float32(np.asarray(a)[rows], dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        tau = compute_tolerance(dtype, k, n, np.vecdot(a_rows, a_rows), b_squares)
        return bool(np.all(np.isfinite(tau)) and np.all(difference[rows] <= tau))


def compute_tolerance(
    dtype: str,
    k: int,
    n: int,
    a_squares: npt.NDArray[np.float32],
    b_squares: npt.NDArray[np.float32],
) -> npt.NDArray[np.float64]:
    """τ of the module docstring (item 3) per row, from the computed sums of squares of A's
    rows (k terms each) and of B's rows (n terms each)."""
    u_d, eta_d = UNIT_ROUNDOFF[dtype], UNDERFLOW[dtype]
    g_k, g_n = _gamma(k, FLOAT32_U), _gamma(n, FLOAT32_U)
    beta = g_k + u_d * (1 + g_k)
    theta = beta + g_n * (1 + u_d) * (1 + g_k) + g_n + g_k + g_n * g_k
    alpha = eta_d + 2 * k * FLOAT32_ETA
    a_norms = np.sqrt((a_squares.astype(np.float64) + k * FLOAT32_ETA) / (1 - g_k))
    b_frobenius_squared = (b_squares.astype(np.float64) + n * FLOAT32_ETA) / (1 - g_n)
    b_frobenius = math.sqrt(float(np.sum(b_frobenius_squared)) * (1 + _gamma(k, FLOAT64_U)))
    w_bound = math.sqrt(n) * b_frobenius * a_norms
    tau = (
        theta * w_bound
        + (1 + g_n) * n * alpha
        + 2 * n * FLOAT32_ETA * math.sqrt(k) * a_norms
        + 2 * (n + k) * FLOAT32_ETA
    )
    return tau * TOLERANCE_MARGIN


def _first_threshold(
    dtype: str, k: int, n: int, y: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """θ times a lower bound of W_i from |y_i| alone (item 5 of the module docstring)."""
    g_k, g_n = _gamma(k, FLOAT32_U), _gamma(n, FLOAT32_U)
    slack = (1 + g_k) * n * FLOAT32_ETA * k * FLOAT32_MAX + k * FLOAT32_ETA
    lower = np.maximum(np.abs(y[:, 0].astype(np.float64)) - slack, 0.0) / ((1 + g_k) * (1 + g_n))
    return _theta(dtype, k, n) * lower / TOLERANCE_MARGIN


def _second_threshold(
    dtype: str, k: int, n: int, a_squares: npt.NDArray[np.float32], v: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """θ times the lower bound ‖A_i‖₂·‖Br‖₂ of W_i (item 5), for the rows given."""
    g_k, g_n = _gamma(k, FLOAT32_U), _gamma(n, FLOAT32_U)
    squares = a_squares.astype(np.float64)
    a_norms = np.sqrt(np.maximum(squares - k * FLOAT32_ETA, 0.0) / (1 + g_k))
    a_norms = np.where(np.isfinite(squares), a_norms, 0.0)  # overflowed: decided by item 3
    magnitudes = np.maximum(np.abs(v[:, 0].astype(np.float64)) - n * FLOAT32_ETA, 0.0)
    v_norm = math.sqrt(float(magnitudes @ magnitudes)) / (1 + g_n)
    return _theta(dtype, k, n) * a_norms * v_norm / TOLERANCE_MARGIN


def _theta(dtype: str, k: int, n: int) -> float:
    """θ of item 3."""
    u_d = UNIT_ROUNDOFF[dtype]
    g_k, g_n = _gamma(k, FLOAT32_U), _gamma(n, FLOAT32_U)
    beta = g_k + u_d * (1 + g_k)
    return beta + g_n * (1 + u_d) * (1 + g_k) + g_n + g_k + g_n * g_k


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


def _product_and_squares(
    matrix: npt.NDArray[np.generic],
    dtype: str,
    right: npt.NDArray[np.float32],
    *,
    squares: bool = True,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(M·right, each row's sum of squares) in float32 with numpy's own single-threaded loops,
    not BLAS threads: those stall when the cores are busy (a 0.3 ms matrix-vector product
    took 8-20 ms on a shared machine), these stream at memory speed regardless."""
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
            np.vecdot(block, block, out=sums[start : start + len(block)])
    return product, sums


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

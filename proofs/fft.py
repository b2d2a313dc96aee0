"""Radix-2 number-theoretic transforms over the BN254 scalar field, with snarkjs' roots.

ffjavascript (snarkjs) takes ``ω_28 = g^t`` with ``g`` the smallest quadratic non-residue of
Fr (5) and ``r − 1 = 2^28·t``, and ``ω_k = ω_{k+1}^2``. The Groth16 prover must use the same
roots as the setup that made the proving key's H points, so they are fixed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from proofs.bn254 import R

TWO_ADICITY = 28
_T = (R - 1) >> TWO_ADICITY
_NON_RESIDUE = 5


@lru_cache(maxsize=TWO_ADICITY + 1)
def root_of_unity(log_n: int) -> int:
    """The primitive ``2^log_n``-th root of unity ``ω_{log_n}`` snarkjs uses."""
    if not 0 <= log_n <= TWO_ADICITY:
        raise ValueError(f"no 2^{log_n}-th root of unity in Fr")
    return pow(_NON_RESIDUE, _T << (TWO_ADICITY - log_n), R)


def fft(values: Sequence[int], omega: int) -> list[int]:
    """Evaluations ``[Σ_i values[i]·omega^(i·j)]_j`` (natural order in and out)."""
    n = len(values)
    if n & (n - 1):
        raise ValueError("fft: length must be a power of two")
    out = [values[_bit_reverse(i, n)] % R for i in range(n)]
    size = 2
    while size <= n:
        step = pow(omega, n // size, R)
        half = size // 2
        twiddles = [1] * half
        for k in range(1, half):
            twiddles[k] = twiddles[k - 1] * step % R
        for start in range(0, n, size):
            for k in range(half):
                u = out[start + k]
                v = out[start + k + half] * twiddles[k] % R
                out[start + k] = (u + v) % R
                out[start + k + half] = (u - v) % R
        size *= 2
    return out


def ifft(values: Sequence[int], omega: int) -> list[int]:
    """Inverse of ``fft``: coefficients from evaluations at the powers of ``omega``."""
    n = len(values)
    n_inv = pow(n, -1, R)
    return [v * n_inv % R for v in fft(values, pow(omega, -1, R))]


def _bit_reverse(i: int, n: int) -> int:
    bits = n.bit_length() - 1
    return int(format(i, f"0{bits}b")[::-1], 2) if bits else 0

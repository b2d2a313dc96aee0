"""The Groth16 prover, computed the way snarkjs 0.7 ``groth16 prove`` does.

From the proving key's A/B coefficients and the witness it forms the evaluations of A, B and
C = A·B on the domain, interpolates them (iFFT), evaluates them on the odd coset
``inc·ω^j`` (multiply coefficient i by ``inc^i``, FFT), and combines the H points with
``A·B − C`` on that coset, where ``t(X) = X^n − 1`` is the constant −2 (Groth16 §3.2 with the
quotient h = (A·B − C)/t folded into the H points by the setup). Then

    A = α + Σ w_i·A_i + r·δ,   B = β + Σ w_i·B_i + s·δ  (in G2, and in G1 for C),
    C = Σ_{private} w_i·C_i + Σ_j h_j·H_j + s·A + r·B_1 − r·s·δ.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from py_ecc.optimized_bn128 import add

from proofs.bn254 import R
from proofs.fft import fft, ifft, root_of_unity
from proofs.groth16 import Groth16DecodeError, Proof
from proofs.msm import g1_mul, msm_g1, msm_g2
from proofs.zkey import MATRIX_A, ProvingKey


def prove(
    proving_key: ProvingKey,
    witness: Sequence[int],
    randomness: tuple[int, int] | None = None,
) -> tuple[Proof, tuple[int, ...]]:
    """A Groth16 proof and its public signals ``witness[1 : n_public + 1]``.

    ``randomness`` fixes the blinding ``(r, s)`` (tests only); by default both come from
    ``secrets``. The witness is not checked against the constraints here: an unsatisfying
    witness gives a proof that does not verify (use ``proofs.r1cs.first_unsatisfied``).
    """
    pk = proving_key
    if len(witness) != pk.n_vars or witness[0] != 1:
        raise Groth16DecodeError(f"witness: expected {pk.n_vars} wires starting with 1")
    w = [v % R for v in witness]
    r, s = randomness if randomness is not None else (_random_scalar(), _random_scalar())
    h = compute_h_evaluations(pk, w)

    pi_a = add(add(pk.alpha_1, msm_g1(pk.a_1, w)), g1_mul(pk.delta_1, r))
    pi_b = add(add(pk.beta_2, msm_g2(pk.b_2, w)), msm_g2([pk.delta_2], [s]))
    pib1 = add(add(pk.beta_1, msm_g1(pk.b_1, w)), g1_mul(pk.delta_1, s))
    private = w[pk.n_public + 1 :]
    pi_c = msm_g1(
        [*pk.c_1, *pk.h_1, pi_a, pib1, pk.delta_1],
        [*private, *h, s, r, -r * s % R],
    )
    return Proof(pi_a=pi_a, pi_b=pi_b, pi_c=pi_c), tuple(w[1 : pk.n_public + 1])


def compute_h_evaluations(pk: ProvingKey, w: Sequence[int]) -> list[int]:
    """``A·B − C`` on the odd coset ``inc·ω^j``, j < domain size (snarkjs ``buildABC1``...)."""
    n = pk.domain_size
    log_n = n.bit_length() - 1
    a_eval, b_eval = [0] * n, [0] * n
    for matrix, constraint, wire, value in pk.coeffs:
        target = a_eval if matrix == MATRIX_A else b_eval
        target[constraint] = (target[constraint] + value * w[wire]) % R
    c_eval = [x * y % R for x, y in zip(a_eval, b_eval, strict=True)]
    omega = root_of_unity(log_n)
    inc = root_of_unity(log_n + 1)
    odd = [_coset_evaluations(ev, omega, inc) for ev in (a_eval, b_eval, c_eval)]
    return [(x * y - z) % R for x, y, z in zip(*odd, strict=True)]


def _coset_evaluations(evaluations: list[int], omega: int, inc: int) -> list[int]:
    coefficients = ifft(evaluations, omega)
    shift = 1
    for i in range(len(coefficients)):
        coefficients[i] = coefficients[i] * shift % R
        shift = shift * inc % R
    return fft(coefficients, omega)


def _random_scalar() -> int:
    return secrets.randbelow(R - 1) + 1

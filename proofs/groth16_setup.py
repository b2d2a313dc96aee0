"""A deterministic Groth16 setup from a seed, for tests, devnets and benchmarks only.

Anyone who knows the seed knows the toxic waste (τ, α, β, γ, δ) and can forge proofs: never
use it where soundness matters; production keys come from a snarkjs ceremony (``.zkey``).

The key has snarkjs' shape (``proofs.zkey.ProvingKey``) so the one prover serves both. With
Lagrange polynomials ``L_k`` over the domain ``ω^k`` (snarkjs' roots, ``proofs.fft``), and
u_i, v_i, w_i the interpolants of the A, B, C columns (A extended by the rows
``A[m + i][i] = 1`` for the public wires, as snarkjs does), Groth16 §3.2 gives
``A_i = [u_i(τ)]₁``, ``B_i = [v_i(τ)]₁,₂``, ``IC_i = [(β·u_i + α·v_i + w_i)(τ)/γ]₁``,
``C_i = [(β·u_i + α·v_i + w_i)(τ)/δ]₁``. The prover supplies ``A·B − C`` on the odd coset
``s_j = g·ω^j`` (g^n = −1, so t(s_j) = −2); with the coset Lagrange basis
``L'_j(τ) = (τ^n + 1)·s_j / (−n·(τ − s_j))`` the H points are ``[L'_j(τ)·t(τ)/(−2δ)]₁``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from py_ecc.optimized_bn128 import G1, G2

from proofs.bn254 import R
from proofs.fft import root_of_unity
from proofs.groth16 import VerificationKey
from proofs.msm import g1_fixed_base_muls, g2_fixed_base_muls
from proofs.r1cs import R1CS
from proofs.zkey import MATRIX_A, MATRIX_B, ProvingKey

SETUP_DOMAIN = b"flopledger/groth16-test-setup/v1"
SEED_LIMIT = 1 << 256


def setup_from_seed(r1cs: R1CS, seed: int) -> tuple[ProvingKey, VerificationKey]:
    """Proving and verification keys for ``r1cs`` from toxic waste derived from ``seed``."""
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"setup_from_seed: seed must be in [0, 2^256), got {seed}")
    tau, alpha, beta, gamma, delta = (_derive(seed, label) for label in "tabgd")
    n_public = r1cs.n_public
    domain_size = compute_domain_size(len(r1cs.constraints), n_public)
    lagrange = _lagrange_at(tau, domain_size)
    coeffs = _qap_coeffs(r1cs)
    u, v, w = [0] * r1cs.n_vars, [0] * r1cs.n_vars, [0] * r1cs.n_vars
    for matrix, row, wire, value in coeffs:
        target = u if matrix == MATRIX_A else v
        target[wire] = (target[wire] + value * lagrange[row]) % R
    for row, (_, _, c_lc) in enumerate(r1cs.constraints):
        for wire, value in c_lc.items():
            w[wire] = (w[wire] + value * lagrange[row]) % R
    combined = [(beta * u[i] + alpha * v[i] + w[i]) % R for i in range(r1cs.n_vars)]
    gamma_inv, delta_inv = pow(gamma, -1, R), pow(delta, -1, R)
    g1_scalars = [
        alpha,
        beta,
        delta,
        *u,
        *v,
        *(c * gamma_inv % R for c in combined[: n_public + 1]),
        *(c * delta_inv % R for c in combined[n_public + 1 :]),
        *_h_scalars(tau, domain_size, delta_inv),
    ]
    g1_points = g1_fixed_base_muls(G1, g1_scalars)
    g2_points = g2_fixed_base_muls(G2, [beta, gamma, delta, *v])
    n = r1cs.n_vars
    cut = [3, 3 + n, 3 + 2 * n, 4 + 2 * n + n_public, 3 + 3 * n]
    pk = ProvingKey(
        n_vars=n,
        n_public=n_public,
        domain_size=domain_size,
        alpha_1=g1_points[0],
        beta_1=g1_points[1],
        beta_2=g2_points[0],
        gamma_2=g2_points[1],
        delta_1=g1_points[2],
        delta_2=g2_points[2],
        ic=tuple(g1_points[cut[2] : cut[3]]),
        coeffs=tuple(coeffs),
        a_1=tuple(g1_points[cut[0] : cut[1]]),
        b_1=tuple(g1_points[cut[1] : cut[2]]),
        b_2=tuple(g2_points[3:]),
        c_1=tuple(g1_points[cut[3] : cut[4]]),
        h_1=tuple(g1_points[cut[4] :]),
    )
    return pk, pk.verification_key()


def compute_domain_size(n_constraints: int, n_public: int) -> int:
    """Smallest power of two ≥ constraints + public wires + 1 (snarkjs ``groth16 setup``)."""
    size = 1
    while size < n_constraints + n_public + 1:
        size *= 2
    return size


def _qap_coeffs(r1cs: R1CS) -> list[tuple[int, int, int, int]]:
    coeffs = []
    for row, (a_lc, b_lc, _) in enumerate(r1cs.constraints):
        coeffs += [(MATRIX_A, row, wire, value) for wire, value in a_lc.items() if value % R]
        coeffs += [(MATRIX_B, row, wire, value) for wire, value in b_lc.items() if value % R]
    m = len(r1cs.constraints)
    coeffs += [(MATRIX_A, m + i, i, 1) for i in range(r1cs.n_public + 1)]
    return coeffs


def _lagrange_at(tau: int, n: int) -> list[int]:
    """``L_k(τ) = (τ^n − 1)·ω^k / (n·(τ − ω^k))`` for k < n."""
    omega = root_of_unity(n.bit_length() - 1)
    z = (pow(tau, n, R) - 1) % R
    out, point = [], 1
    for _ in range(n):
        out.append(z * point % R * pow(n * (tau - point) % R, -1, R) % R)
        point = point * omega % R
    return out


def _h_scalars(tau: int, n: int, delta_inv: int) -> Sequence[int]:
    log_n = n.bit_length() - 1
    omega, shift = root_of_unity(log_n), root_of_unity(log_n + 1)
    t_tau = (pow(tau, n, R) - 1) % R
    z_coset = (pow(tau, n, R) + 1) % R
    factor = t_tau * z_coset % R * delta_inv % R * pow(2 * n, -1, R) % R  # 1/(−2)·1/(−n)
    out, s_j = [], shift
    for _ in range(n):
        out.append(factor * s_j % R * pow((tau - s_j) % R, -1, R) % R)
        s_j = s_j * omega % R
    return out


def _derive(seed: int, label: str) -> int:
    counter = 0
    while True:
        digest = hashlib.sha512(
            SETUP_DOMAIN
            + seed.to_bytes(32, "big", signed=False)
            + label.encode()
            + bytes([counter])
        ).digest()
        value = int.from_bytes(digest, "big") % R
        if value > 1:
            return value
        counter += 1

"""Groth16 verification on BN254 over snarkjs JSON (verification_key.json, proof.json, public.json).

The check is Groth16's (Groth, "On the Size of Pairing-based Non-interactive Arguments",
EUROCRYPT 2016, §3.2) in the form snarkjs 0.7 computes it:
``e(-A, B) · e(vk_x, γ) · e(C, δ) · e(α, β) == 1`` with ``vk_x = IC_0 + Σ x_i·IC_{i+1}``,
evaluated as one multi-pairing with a single final exponentiation (``proofs.pairing``).

Two kinds of failure, kept apart:
- **decode errors** (``Groth16DecodeError``, a ``ValueError``): malformed JSON shapes,
  non-canonical or out-of-range numbers (a coordinate ≥ p, ``x + p``, a public signal ≥ r),
  points off their curve, G2 points outside the order-r subgroup, a public-signal count that
  differs from the key's ``nPublic``. These are raised by the ``decode_*`` functions;
- **invalid proofs**: well-formed values for which the pairing check fails. ``verify`` and
  ``batch_verify`` return ``False`` for those and never raise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from py_ecc.optimized_bn128 import add, neg

from proofs.bn254 import (
    Bn254DecodeError,
    G1Point,
    G2Point,
    P,
    R,
    affine_g1,
    affine_g1_many,
    affine_g2,
    affine_g2_many,
    decode_decimal,
    decode_g1_json,
    decode_g2_json,
    encode_g1_json,
    encode_g2_json,
)
from proofs.glv import draw_weights, weight_scalar, weighted_points, weighted_sum
from proofs.msm import g1_mul, jac1_to_g1, msm_g1
from proofs.pairing import PairInput, encode_fp12_snarkjs, multi_pairing_is_one, pairing_snarkjs

PROTOCOL = "groth16"
CURVE = "bn128"  # snarkjs' name for BN254 / alt_bn128
PUBLIC_SIGNALS_MAX = 1 << 16
BATCH_PROOFS_MAX = 1024

_PROOF_KEYS = frozenset({"pi_a", "pi_b", "pi_c", "protocol", "curve"})


class Groth16DecodeError(Bn254DecodeError):
    """Malformed Groth16 input; the message names the field (``"proof.pi_b: ..."``)."""


@dataclass(frozen=True)
class VerificationKey:
    """A decoded snarkjs Groth16 verification key (``IC`` has ``n_public + 1`` points)."""

    n_public: int
    alpha_1: G1Point
    beta_2: G2Point
    gamma_2: G2Point
    delta_2: G2Point
    ic: tuple[G1Point, ...]


@dataclass(frozen=True)
class Proof:
    """A decoded Groth16 proof ``(A, B, C)``."""

    pi_a: G1Point
    pi_b: G2Point
    pi_c: G1Point


def decode_verification_key(obj: Any) -> VerificationKey:
    """Decode snarkjs ``verification_key.json`` (parsed JSON). ``vk_alphabeta_12`` is ignored."""
    try:
        if not isinstance(obj, dict):
            raise Groth16DecodeError("vkey: expected a JSON object")
        _expect_tag(obj, "protocol", PROTOCOL, "vkey", required=True)
        _expect_tag(obj, "curve", CURVE, "vkey", required=True)
        n_public = obj.get("nPublic")
        if type(n_public) is not int or not 0 <= n_public <= PUBLIC_SIGNALS_MAX:
            raise Groth16DecodeError(f"vkey.nPublic: expected an integer 0..{PUBLIC_SIGNALS_MAX}")
        ic = obj.get("IC")
        if not isinstance(ic, list) or len(ic) != n_public + 1:
            raise Groth16DecodeError(f"vkey.IC: expected a list of nPublic + 1 = {n_public + 1}")
        return VerificationKey(
            n_public=n_public,
            alpha_1=decode_g1_json(obj.get("vk_alpha_1"), "vkey.vk_alpha_1"),
            beta_2=decode_g2_json(obj.get("vk_beta_2"), "vkey.vk_beta_2"),
            gamma_2=decode_g2_json(obj.get("vk_gamma_2"), "vkey.vk_gamma_2"),
            delta_2=decode_g2_json(obj.get("vk_delta_2"), "vkey.vk_delta_2"),
            ic=tuple(decode_g1_json(p, f"vkey.IC[{i}]") for i, p in enumerate(ic)),
        )
    except Groth16DecodeError:
        raise
    except Bn254DecodeError as exc:
        raise Groth16DecodeError(str(exc)) from exc


def decode_proof(obj: Any) -> Proof:
    """Decode snarkjs ``proof.json``; unknown keys and a foreign protocol or curve are errors."""
    try:
        if not isinstance(obj, dict):
            raise Groth16DecodeError("proof: expected a JSON object")
        unknown = sorted(set(obj) - _PROOF_KEYS)
        if unknown:
            raise Groth16DecodeError(f"proof: unknown field {unknown[0]!r}")
        _expect_tag(obj, "protocol", PROTOCOL, "proof", required=False)
        _expect_tag(obj, "curve", CURVE, "proof", required=False)
        return Proof(
            pi_a=decode_g1_json(obj.get("pi_a"), "proof.pi_a"),
            pi_b=decode_g2_json(obj.get("pi_b"), "proof.pi_b"),
            pi_c=decode_g1_json(obj.get("pi_c"), "proof.pi_c"),
        )
    except Groth16DecodeError:
        raise
    except Bn254DecodeError as exc:
        raise Groth16DecodeError(str(exc)) from exc


def decode_public(obj: Any, n_public: int) -> tuple[int, ...]:
    """Decode ``public.json``: exactly ``n_public`` canonical decimal strings, each < r."""
    if not isinstance(obj, list):
        raise Groth16DecodeError("public: expected a JSON array of decimal strings")
    if len(obj) != n_public:
        raise Groth16DecodeError(f"public: expected {n_public} signals, got {len(obj)}")
    try:
        return tuple(decode_decimal(v, f"public[{i}]", R) for i, v in enumerate(obj))
    except Bn254DecodeError as exc:
        raise Groth16DecodeError(str(exc)) from exc


def verify(vk: VerificationKey, proof: Proof, public: Sequence[int]) -> bool:
    """True iff ``proof`` is valid for ``public`` under ``vk``: one 4-pair multi-pairing."""
    if not _public_fits(vk, public):
        return False
    vk_x = add(vk.ic[0], msm_g1(vk.ic[1:], public))
    pairs: list[PairInput] = [
        (affine_g1(neg(proof.pi_a)), affine_g2(proof.pi_b)),
        (affine_g1(vk_x), affine_g2(vk.gamma_2)),
        (affine_g1(proof.pi_c), affine_g2(vk.delta_2)),
        (affine_g1(vk.alpha_1), affine_g2(vk.beta_2)),
    ]
    return multi_pairing_is_one(pairs)


def batch_verify(vk: VerificationKey, items: Sequence[tuple[Proof, Sequence[int]]]) -> bool:
    """True iff every ``(proof, public)`` verifies (except with probability ≤ 2^-128).

    Random linear combination (Bellare, Garay, Rabin, "Fast batch verification...",
    EUROCRYPT 1998, small-exponents test) with fresh weights ``w_i`` of 128 random bits from
    ``secrets`` (``proofs.glv``: ``w_i = a_i + b_i·λ``, so ``w_i·A_i`` costs a 64-bit
    double-scalar multiplication): ``Π e(-w_i·A_i, B_i) · e(Σ w_i·vk_x_i, γ) · e(Σ w_i·C_i, δ)
    · e((Σ w_i)·α, β) == 1``. The fixed G2 points γ, δ, β take one Miller loop each over an MSM
    on the G1 side; every proof adds one Miller loop to the shared multi-Miller loop (one Fp12
    squaring per bit for all) and one final exponentiation serves the whole batch.
    """
    if len(items) > BATCH_PROOFS_MAX:
        raise ValueError(f"batch_verify: more than {BATCH_PROOFS_MAX} proofs")
    if not items:
        return True
    if not all(_public_fits(vk, public) for _, public in items):
        return False
    weights = draw_weights(len(items))
    scalars = [weight_scalar(w) for w in weights]
    weight_sum = sum(scalars) % R
    ic_scalars = [weight_sum] + [
        sum(s * public[j] for s, (_, public) in zip(scalars, items, strict=True)) % R
        for j in range(vk.n_public)
    ]
    a_points = affine_g1_many([proof.pi_a for proof, _ in items])
    b_points = affine_g2_many([proof.pi_b for proof, _ in items])
    # e(O, B) = e(A, O) = 1: a proof with an identity A or B contributes nothing to the product.
    live = [
        (a, b, w)
        for a, b, w in zip(a_points, b_points, weights, strict=True)
        if a is not None and b is not None
    ]
    scaled = weighted_points([(a[0], -a[1] % P) for a, _, _ in live], [w for _, _, w in live])
    pairs: list[PairInput] = [(s, b) for s, (_, b, _) in zip(scaled, live, strict=True)]
    c_sum = weighted_sum(affine_g1_many([proof.pi_c for proof, _ in items]), weights)
    pairs.append((affine_g1(msm_g1(vk.ic, ic_scalars)), affine_g2(vk.gamma_2)))
    pairs.append((affine_g1(jac1_to_g1(c_sum)), affine_g2(vk.delta_2)))
    pairs.append((affine_g1(g1_mul(vk.alpha_1, weight_sum)), affine_g2(vk.beta_2)))
    return multi_pairing_is_one(pairs)


def parse_json(data: bytes, field: str) -> Any:
    """Parse UTF-8 JSON bytes; anything unparsable is a ``Groth16DecodeError`` naming ``field``."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int limit
        raise Groth16DecodeError(f"{field}: not valid JSON ({exc})") from exc


def verify_json(vk_obj: Any, proof_obj: Any, public_obj: Any) -> bool:
    """Decode the three parsed snarkjs JSON values and verify; decode errors raise."""
    vk = decode_verification_key(vk_obj)
    proof = decode_proof(proof_obj)
    public = decode_public(public_obj, vk.n_public)
    return verify(vk, proof, public)


def encode_proof(proof: Proof) -> dict[str, Any]:
    """snarkjs ``proof.json`` value."""
    return {
        "pi_a": encode_g1_json(proof.pi_a),
        "pi_b": encode_g2_json(proof.pi_b),
        "pi_c": encode_g1_json(proof.pi_c),
        "protocol": PROTOCOL,
        "curve": CURVE,
    }


def encode_public(public: Sequence[int]) -> list[str]:
    """snarkjs ``public.json`` value."""
    return [str(v % R) for v in public]


def encode_verification_key(vk: VerificationKey) -> dict[str, Any]:
    """snarkjs ``verification_key.json`` value, ``vk_alphabeta_12`` as ffjavascript computes it."""
    alphabeta = pairing_snarkjs(affine_g1(vk.alpha_1), affine_g2(vk.beta_2))
    return {
        "protocol": PROTOCOL,
        "curve": CURVE,
        "nPublic": vk.n_public,
        "vk_alpha_1": encode_g1_json(vk.alpha_1),
        "vk_beta_2": encode_g2_json(vk.beta_2),
        "vk_gamma_2": encode_g2_json(vk.gamma_2),
        "vk_delta_2": encode_g2_json(vk.delta_2),
        "vk_alphabeta_12": encode_fp12_snarkjs(alphabeta),
        "IC": [encode_g1_json(p) for p in vk.ic],
    }


def _public_fits(vk: VerificationKey, public: Sequence[int]) -> bool:
    return len(public) == vk.n_public and all(type(v) is int and 0 <= v < R for v in public)


def _expect_tag(obj: dict[str, Any], key: str, expected: str, field: str, required: bool) -> None:
    if key not in obj and not required:
        return
    if obj.get(key) != expected:
        raise Groth16DecodeError(f"{field}.{key}: expected {expected!r}")

"""Rank-1 constraint systems and witnesses in snarkjs JSON form (``snarkjs r1cs export json``,
``snarkjs wtns export json``).

A witness ``w`` satisfies constraint ``(A, B, C)`` iff ``<A,w>·<B,w> − <C,w> ≡ 0 (mod r)``.
Wire 0 is the constant 1, then the public outputs, the public inputs, the private inputs and
the internal wires (circom's order), so the public signals are ``w[1 : n_public + 1]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from proofs.bn254 import Bn254DecodeError, R, decode_decimal
from proofs.groth16 import Groth16DecodeError

LinearCombination: TypeAlias = Mapping[int, int]
Constraint: TypeAlias = tuple[LinearCombination, LinearCombination, LinearCombination]
WIRES_MAX = 1 << 22
CONSTRAINTS_MAX = 1 << 22


@dataclass(frozen=True)
class R1CS:
    """A constraint system over the BN254 scalar field."""

    n_vars: int
    n_outputs: int
    n_pub_inputs: int
    n_prv_inputs: int
    constraints: tuple[Constraint, ...]

    @property
    def n_public(self) -> int:
        """Public signals: outputs then public inputs."""
        return self.n_outputs + self.n_pub_inputs


def decode_r1cs(obj: Any) -> R1CS:
    """Decode snarkjs R1CS JSON; wire indices must be < nVars and coefficients < r."""
    if not isinstance(obj, dict):
        raise Groth16DecodeError("r1cs: expected a JSON object")
    if obj.get("prime") != str(R):
        raise Groth16DecodeError("r1cs.prime: not the BN254 scalar field")
    counts: dict[str, int] = {}
    for key in ("nVars", "nOutputs", "nPubInputs", "nPrvInputs"):
        value = obj.get(key)
        if type(value) is not int or not 0 <= value <= WIRES_MAX:
            raise Groth16DecodeError(f"r1cs.{key}: expected an integer 0..{WIRES_MAX}")
        counts[key] = value
    if counts["nOutputs"] + counts["nPubInputs"] + counts["nPrvInputs"] >= counts["nVars"]:
        raise Groth16DecodeError("r1cs.nVars: fewer wires than the constant plus the signals")
    n_vars = counts["nVars"]
    raw = obj.get("constraints")
    if not isinstance(raw, list) or len(raw) > CONSTRAINTS_MAX:
        raise Groth16DecodeError("r1cs.constraints: expected a list")
    constraints = tuple(
        _decode_constraint(c, f"r1cs.constraints[{k}]", n_vars) for k, c in enumerate(raw)
    )
    return R1CS(
        n_vars=n_vars,
        n_outputs=counts["nOutputs"],
        n_pub_inputs=counts["nPubInputs"],
        n_prv_inputs=counts["nPrvInputs"],
        constraints=constraints,
    )


def encode_r1cs(r1cs: R1CS) -> dict[str, Any]:
    """snarkjs R1CS JSON (``map`` is the identity: no labels beyond wires)."""
    return {
        "n8": 32,
        "prime": str(R),
        "nVars": r1cs.n_vars,
        "nOutputs": r1cs.n_outputs,
        "nPubInputs": r1cs.n_pub_inputs,
        "nPrvInputs": r1cs.n_prv_inputs,
        "nLabels": r1cs.n_vars,
        "nConstraints": len(r1cs.constraints),
        "useCustomGates": False,
        "constraints": [
            [{str(i): str(v % R) for i, v in sorted(lc.items())} for lc in c]
            for c in r1cs.constraints
        ],
        "map": list(range(r1cs.n_vars)),
        "customGates": [],
        "customGatesUses": [],
    }


def decode_witness(obj: Any, n_vars: int | None = None) -> tuple[int, ...]:
    """Decode a witness JSON array; wire 0 must be 1 and, if given, the length ``n_vars``."""
    if not isinstance(obj, list) or not obj or len(obj) > WIRES_MAX:
        raise Groth16DecodeError("witness: expected a non-empty JSON array of decimal strings")
    if n_vars is not None and len(obj) != n_vars:
        raise Groth16DecodeError(f"witness: expected {n_vars} wires, got {len(obj)}")
    try:
        values = tuple(decode_decimal(v, f"witness[{i}]", R) for i, v in enumerate(obj))
    except Bn254DecodeError as exc:
        raise Groth16DecodeError(str(exc)) from exc
    if values[0] != 1:
        raise Groth16DecodeError("witness[0]: the constant wire must be 1")
    return values


def encode_witness(witness: Sequence[int]) -> list[str]:
    """snarkjs witness JSON."""
    return [str(v % R) for v in witness]


def first_unsatisfied(r1cs: R1CS, witness: Sequence[int]) -> int | None:
    """Index of the first constraint the witness violates, or ``None`` if all hold."""
    for k, (a, b, c) in enumerate(r1cs.constraints):
        if (evaluate_lc(a, witness) * evaluate_lc(b, witness) - evaluate_lc(c, witness)) % R:
            return k
    return None


def evaluate_lc(lc: LinearCombination, witness: Sequence[int]) -> int:
    """``<lc, w> mod r``."""
    return sum(coef * witness[i] for i, coef in lc.items()) % R


def _decode_constraint(value: Any, field: str, n_vars: int) -> Constraint:
    if not isinstance(value, list) or len(value) != 3:
        raise Groth16DecodeError(f"{field}: expected [A, B, C]")
    a, b, c = (
        _decode_lc(lc, f"{field}.{name}", n_vars) for lc, name in zip(value, "ABC", strict=True)
    )
    return (a, b, c)


def _decode_lc(value: Any, field: str, n_vars: int) -> dict[int, int]:
    if not isinstance(value, dict):
        raise Groth16DecodeError(f"{field}: expected an object wire -> coefficient")
    lc: dict[int, int] = {}
    try:
        for key, coef in value.items():
            wire = decode_decimal(key, f"{field} wire", n_vars)
            lc[wire] = decode_decimal(coef, f"{field}[{key}]", R)
    except Bn254DecodeError as exc:
        raise Groth16DecodeError(str(exc)) from exc
    return lc

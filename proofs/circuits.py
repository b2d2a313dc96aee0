"""A small R1CS builder and two circuits, producing snarkjs-shaped R1CS and witnesses.

Node agents prove without Node.js: build the circuit here, set up keys (a ceremony's
``.zkey``, or ``proofs.groth16_setup`` in tests), prove with ``proofs.groth16_prover``.
Wire order follows circom: 0 is the constant 1, then public outputs, public inputs, private
inputs, internal wires. The constraint system of each circuit depends only on its shape, not
on the witness values, so one key serves every instance of a shape.

- ``poseidon_preimage``: "I know (a, b) with Poseidon(a, b) = h"; public [h, binding],
  private a, b. Linear layers stay linear combinations; each x^5 S-box costs 3 constraints
  (x², x⁴, x⁵).
- ``matvec``: "I know x with M·x = y"; public M (row-major), y, then binding; private x.
  Because M is a public *signal*, each product M_ij·x_j is one constraint, then one per row
  for the sum.

Job binding (issue 14, attack 8): the last public input of every circuit is
``compute_binding(job id, node id)``, SHA-256 of the tagged, length-prefixed ids reduced
into the scalar field, so a proof made for one (job, node) does not verify for another (the
verifier rebuilds the public signals from the job it judges). The circuit constrains it
(``binding · binding``, as Tornado Cash squares its recipient) so no setup can leave it out
of the constraint system and with it out of the verification equation.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from proofs.bn254 import R
from proofs.poseidon import FULL_ROUNDS, PARTIAL_ROUNDS, poseidon_parameters
from proofs.r1cs import R1CS, Constraint

Lc = dict[int, int]  # wire -> coefficient
MATVEC_CELLS_MAX = 1 << 16
BINDING_TAG = b"flopledger/zk-job-binding/v1\x00"


@dataclass(frozen=True)
class Circuit:
    """An R1CS together with one satisfying witness."""

    r1cs: R1CS
    witness: tuple[int, ...]

    @property
    def public(self) -> tuple[int, ...]:
        """The public signals, ``witness[1 : n_public + 1]``."""
        return self.witness[1 : self.r1cs.n_public + 1]


class CircuitBuilder:
    """Allocates wires in circom order and records constraints ``<A,w>·<B,w> = <C,w>``."""

    def __init__(self, n_outputs: int, public_inputs: Sequence[int], private: Sequence[int]):
        self._values: list[int] = [1] + [0] * n_outputs
        self._values += [v % R for v in public_inputs] + [v % R for v in private]
        self._counts = (n_outputs, len(public_inputs), len(private))
        self._constraints: list[Constraint] = []

    def wire(self, index: int) -> Lc:
        """The linear combination holding just wire ``index``."""
        return {index: 1}

    def evaluate(self, lc: Lc) -> int:
        """``<lc, w>`` under the witness built so far."""
        return sum(c * self._values[i] for i, c in lc.items()) % R

    def mul(self, a: Lc, b: Lc) -> Lc:
        """A new internal wire equal to ``a·b``, with its constraint."""
        self._values.append(self.evaluate(a) * self.evaluate(b) % R)
        out = len(self._values) - 1
        self._constraints.append((dict(a), dict(b), {out: 1}))
        return {out: 1}

    def set_output(self, index: int, lc: Lc) -> None:
        """Bind output wire ``index`` (1-based) to ``lc`` with ``lc · 1 = out``."""
        self._values[index] = self.evaluate(lc)
        self._constraints.append((dict(lc), {0: 1}, {index: 1}))

    def assert_equal(self, lc: Lc, index: int) -> None:
        """Constrain ``lc == wire[index]`` with ``lc · 1 = wire``."""
        self._constraints.append((dict(lc), {0: 1}, {index: 1}))

    def build(self) -> Circuit:
        """Freeze the constraint system and witness."""
        n_outputs, n_public_inputs, n_private = self._counts
        r1cs = R1CS(
            n_vars=len(self._values),
            n_outputs=n_outputs,
            n_pub_inputs=n_public_inputs,
            n_prv_inputs=n_private,
            constraints=tuple(self._constraints),
        )
        return Circuit(r1cs=r1cs, witness=tuple(self._values))


def compute_binding(job_id: str, node_id: str) -> int:
    """The public input binding a proof to its job and node: SHA-256(BINDING_TAG ‖ u32
    len(job) ‖ job ‖ u32 len(node) ‖ node) reduced mod r. Reducing 256 bits mod the 254-bit
    r skews the distribution a little; it does not help find two (job, node) pairs with one
    binding, which still takes SHA-256 outputs equal mod r (about 2^127 work)."""
    parts = [job_id.encode(), node_id.encode()]
    body = b"".join(struct.pack(">I", len(p)) + p for p in parts)
    return int.from_bytes(hashlib.sha256(BINDING_TAG + body).digest(), "big") % R


def poseidon_preimage(a: int, b: int, binding: int) -> Circuit:
    """Knowledge of a Poseidon(2) preimage: public ``[Poseidon(a, b), binding]``, private
    ``a, b``."""
    builder = CircuitBuilder(n_outputs=1, public_inputs=(binding,), private=(a, b))
    state = poseidon_gadget(builder, [builder.wire(3), builder.wire(4)])
    builder.set_output(1, state)
    _constrain_binding(builder, 2)
    return builder.build()


def poseidon_gadget(builder: CircuitBuilder, inputs: Sequence[Lc]) -> Lc:
    """Poseidon(len(inputs)) as constraints (same rounds as ``proofs.poseidon.poseidon``)."""
    t = len(inputs) + 1
    constants, mds = poseidon_parameters(t)
    partial = PARTIAL_ROUNDS[t - 2]
    state: list[Lc] = [{}, *(dict(x) for x in inputs)]
    for rnd in range(FULL_ROUNDS + partial):
        state = [_lc_add(s, {0: constants[rnd * t + i]}) for i, s in enumerate(state)]
        full = rnd < FULL_ROUNDS // 2 or rnd >= FULL_ROUNDS // 2 + partial
        state = [_sbox(builder, s) if full or i == 0 else s for i, s in enumerate(state)]
        state = [_lc_combine(row, state) for row in mds]
    return state[0]


def matvec(matrix: Sequence[Sequence[int]], x: Sequence[int], binding: int) -> Circuit:
    """``M·x = y``: public M (m×k, row-major), y = M·x mod r, then binding; private x."""
    m, k = len(matrix), len(x)
    if m == 0 or k == 0 or any(len(row) != k for row in matrix) or m * k > MATVEC_CELLS_MAX:
        raise ValueError(f"matvec: need a non-empty m×k matrix (m·k ≤ {MATVEC_CELLS_MAX})")
    flat = [v % R for row in matrix for v in row]
    y = [sum(mv * xv for mv, xv in zip(row, x, strict=True)) % R for row in matrix]
    builder = CircuitBuilder(n_outputs=0, public_inputs=[*flat, *y, binding], private=x)
    x_base = 1 + m * k + m + 1
    for i in range(m):
        row_sum: Lc = {}
        for j in range(k):
            product = builder.mul(builder.wire(1 + i * k + j), builder.wire(x_base + j))
            row_sum = _lc_add(row_sum, product)
        builder.assert_equal(row_sum, 1 + m * k + i)
    _constrain_binding(builder, 1 + m * k + m)
    return builder.build()


def _constrain_binding(builder: CircuitBuilder, index: int) -> None:
    """Put the binding wire into a constraint (its square, an internal wire)."""
    builder.mul(builder.wire(index), builder.wire(index))


def _sbox(builder: CircuitBuilder, lc: Lc) -> Lc:
    x2 = builder.mul(lc, lc)
    x4 = builder.mul(x2, x2)
    return builder.mul(x4, lc)


def _lc_add(a: Lc, b: Lc) -> Lc:
    out = dict(a)
    for wire, coef in b.items():
        out[wire] = (out.get(wire, 0) + coef) % R
    return {w: c for w, c in out.items() if c}


def _lc_combine(weights: Sequence[int], lcs: Sequence[Lc]) -> Lc:
    out: Lc = {}
    for weight, lc in zip(weights, lcs, strict=True):
        for wire, coef in lc.items():
            out[wire] = (out.get(wire, 0) + weight * coef) % R
    return {w: c for w, c in out.items() if c}

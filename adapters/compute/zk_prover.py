"""The zk-prove workload: a Groth16 proof (BN254, snarkjs formats) of a named circuit.

The agent builds the circuit and its witness from the job's inputs (``proofs.circuits``),
takes the proving key from a snarkjs ``.zkey`` (fetched from the object store by the caller)
or derives INSECURE test keys from ``setup_seed`` (``proofs.groth16_setup``; devnets and
tests), and proves with ``proofs.groth16_prover``. No GPU is involved: MSMs run in Python.

Proof artifact (``ZkProofArtifact``, JSON): ``circuit``, ``public`` (decimal strings, as
snarkjs' public.json) and ``proof`` (snarkjs proof.json). The validator rebuilds the public
signals from the job's inputs and the job binding (``proofs.circuits.compute_binding`` of
the job id and the committing node's id, the circuits' last public input), so a proof of
some other statement, or of this one for another job or node, does not pass.

Keys (issue 14, attack 8): ``setup_seed`` keys have a public trapdoor (anyone derives the
toxic waste from the job's params and forges proofs), so validators accept them only where
the ledger's policy says ``insecure_setups_allowed`` (``check_zk``; the ledger also refuses
such jobs at submit). A consumer's snarkjs ``.zkey`` must be a key of our circuit *with* the
binding input: a zkey of the circuit before it has one public signal fewer and is refused
as not fitting the circuit's shape (its proofs could be replayed across jobs).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec

from adapters.compute.workloads import WorkloadParamsError, ZkProveParams
from proofs import groth16
from proofs.circuits import MATVEC_CELLS_MAX, Circuit, matvec, poseidon_preimage
from proofs.groth16_prover import prove
from proofs.groth16_setup import SEED_LIMIT, setup_from_seed
from proofs.r1cs import first_unsatisfied
from proofs.zkey import ProvingKey, decode_zkey

SETUP_CACHE_MAX = 8
_SETUP_CACHE: dict[tuple[str, tuple[int, int], int], ProvingKey] = {}
_SETUP_LOCK = threading.Lock()


class ZkProofArtifact(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a node ships for a zk-prove job (snarkjs-shaped proof and public signals)."""

    circuit: str
    public: list[str]
    proof: dict[str, Any]


class ZkRun(msgspec.Struct, frozen=True, kw_only=True):
    """One proof and how long proving took."""

    artifact: ZkProofArtifact
    prove_ns: int


ZK_OK = "ok"
INSECURE_SETUP = "insecure_setup"
PROOF_INVALID = "proof_invalid"


def build_circuit(params: ZkProveParams, binding: int) -> Circuit:
    """The circuit and witness of ``params`` bound to ``binding`` (the job binding);
    WorkloadParamsError on inputs that do not fit."""
    inputs = params.decoded_inputs()
    try:
        if params.circuit == "poseidon_preimage":
            return poseidon_preimage(_int(inputs, "a"), _int(inputs, "b"), binding)
        matrix, x = inputs.get("matrix"), inputs.get("x")
        if not (isinstance(matrix, list) and isinstance(x, list)):
            raise WorkloadParamsError("zk-prove matvec: inputs need 'matrix' and 'x' lists")
        if len(matrix) * len(x) > MATVEC_CELLS_MAX:
            raise WorkloadParamsError(f"zk-prove matvec: more than {MATVEC_CELLS_MAX} cells")
        return matvec([[int(v) for v in row] for row in matrix], [int(v) for v in x], binding)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, WorkloadParamsError):
            raise
        raise WorkloadParamsError(f"zk-prove {params.circuit}: {exc}") from exc


def load_proving_key(
    params: ZkProveParams, circuit: Circuit, zkey_bytes: bytes | None = None
) -> ProvingKey:
    """The proving key: from the zkey bytes, or derived from ``setup_seed`` (cached)."""
    if params.setup_seed is not None:
        if not params.setup_seed < SEED_LIMIT:
            raise WorkloadParamsError("zk-prove: setup_seed must be below 2^256")
        return _derived_key(params.circuit, _shape(params), params.setup_seed, circuit)
    if zkey_bytes is None:
        raise WorkloadParamsError("zk-prove: the job names a zkey; pass its bytes")
    key = decode_zkey(zkey_bytes)
    check_key_fits(key, circuit)
    return key


def check_key_fits(key: ProvingKey, circuit: Circuit) -> None:
    """Raise WorkloadParamsError unless ``key`` has ``circuit``'s shape (wires and public
    signals): a key of one of our circuits before the job binding (one public signal fewer)
    is refused, since its proofs would verify for any job."""
    if (key.n_vars, key.n_public) != (circuit.r1cs.n_vars, circuit.r1cs.n_public):
        raise WorkloadParamsError(
            "zk-prove: the zkey does not fit the circuit's shape (a key of the circuit with "
            "its job binding input is needed)"
        )


def run_zk_prove(params: ZkProveParams, *, binding: int, zkey_bytes: bytes | None = None) -> ZkRun:
    """Build the circuit bound to ``binding``, check the witness, prove."""
    circuit = build_circuit(params, binding)
    if first_unsatisfied(circuit.r1cs, circuit.witness) is not None:
        raise WorkloadParamsError("zk-prove: the witness does not satisfy the circuit")
    key = load_proving_key(params, circuit, zkey_bytes)
    started = time.perf_counter_ns()
    proof, public = prove(key, circuit.witness)
    elapsed = time.perf_counter_ns() - started
    artifact = ZkProofArtifact(
        circuit=params.circuit,
        public=groth16.encode_public(public),
        proof=groth16.encode_proof(proof),
    )
    return ZkRun(artifact=artifact, prove_ns=elapsed)


def check_zk(
    params: ZkProveParams,
    artifact: ZkProofArtifact,
    *,
    binding: int,
    zkey_bytes: bytes | None = None,
    insecure_setups_allowed: bool = False,
) -> str:
    """The validator's check: ``ZK_OK``, ``INSECURE_SETUP`` (a ``setup_seed`` key where the
    policy does not allow them) or ``PROOF_INVALID`` (the public signals are not those of
    the job's inputs and ``binding``, or the Groth16 proof does not verify under the job's
    key). Never raises on a bad artifact."""
    if params.setup_seed is not None and not insecure_setups_allowed:
        return INSECURE_SETUP
    return ZK_OK if _verify(params, artifact, binding, zkey_bytes) else PROOF_INVALID


def verify_zk(
    params: ZkProveParams,
    artifact: ZkProofArtifact,
    *,
    binding: int,
    zkey_bytes: bytes | None = None,
    insecure_setups_allowed: bool = False,
) -> bool:
    """Whether ``check_zk`` accepts the artifact."""
    return (
        check_zk(
            params,
            artifact,
            binding=binding,
            zkey_bytes=zkey_bytes,
            insecure_setups_allowed=insecure_setups_allowed,
        )
        == ZK_OK
    )


def encode_zk_artifact(artifact: ZkProofArtifact) -> bytes:
    """Wire form: JSON (snarkjs tools read its ``proof`` and ``public`` as they are)."""
    return msgspec.json.encode(artifact)


def decode_zk_artifact(data: bytes) -> ZkProofArtifact:
    """Parse the wire form; raises ``msgspec.ValidationError`` / ``DecodeError``."""
    return msgspec.json.decode(data, type=ZkProofArtifact)


def _verify(
    params: ZkProveParams, artifact: ZkProofArtifact, binding: int, zkey_bytes: bytes | None
) -> bool:
    try:
        circuit = build_circuit(params, binding)
        key = load_proving_key(params, circuit, zkey_bytes)
        expected_public = groth16.encode_public(circuit.public)
        if artifact.circuit != params.circuit or artifact.public != expected_public:
            return False
        return groth16.verify_json(
            groth16.encode_verification_key(key.verification_key()),
            artifact.proof,
            artifact.public,
        )
    except (WorkloadParamsError, groth16.Groth16DecodeError, ValueError, TypeError):
        return False


def _derived_key(name: str, shape: tuple[int, int], seed: int, circuit: Circuit) -> ProvingKey:
    """Test keys for a circuit shape (the constraint system depends only on name and shape)."""
    cache_key = (name, shape, seed)
    with _SETUP_LOCK:
        cached = _SETUP_CACHE.get(cache_key)
    if cached is not None:
        return cached
    key, _vk = setup_from_seed(circuit.r1cs, seed)
    with _SETUP_LOCK:
        if len(_SETUP_CACHE) >= SETUP_CACHE_MAX:
            _SETUP_CACHE.pop(next(iter(_SETUP_CACHE)))
        _SETUP_CACHE[cache_key] = key
    return key


def _shape(params: ZkProveParams) -> tuple[int, int]:
    if params.circuit == "poseidon_preimage":
        return (0, 0)
    inputs = params.decoded_inputs()
    return (len(inputs.get("matrix") or []), len(inputs.get("x") or []))


def _int(inputs: dict[str, Any], name: str) -> int:
    value = inputs.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise WorkloadParamsError(f"zk-prove: input {name!r} must be an integer")
    return int(value)

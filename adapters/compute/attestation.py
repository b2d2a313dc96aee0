"""Hardware attestation: a timed matmul of the challenged size and seed on every device,
answered with the signed inventory, the commitment, the openings and the timings.

Report. ``AttestationReport`` (msgpack) carries the node id, the challenge (nonce, seed,
size), the NVML inventory, one ``DeviceTiming`` per device (environment, root, product
time) and one ``MatmulProof`` (every device computes the same exact product, so the roots
must all be equal and one set of openings serves them all). The object uploaded is a
``SignedReport``: the report's bytes and the node's Ed25519 signature over
``REPORT_TAG || report``.

How it maps onto ``node.attestation.submit``: ``inventory_digest`` = SHA-256 of the
``SignedReport`` bytes (= its address in the artifact store), ``commitment`` = the common
Merkle root, ``timings_ns`` = the product time per device, in device order.

The matmul seed is ``bytes.fromhex(challenge.seed)`` (the ledger's seed is hex SHA-256),
so an answer computed before the challenge existed cannot verify. ``verify_attestation``
returns a stable reason code; ``is_timing_plausible`` bounds the throughput a device class
can show.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import msgspec
import torch

from adapters.compute.nvml import DEVICES_MAX, Inventory
from adapters.compute.runtime import ExecutionEnvironment
from adapters.compute.torch_matmul import run_matmul
from proofs.identity import Identity, verify_signature
from proofs.matmul import MATRIX_SIZE_MAX, MatmulProof, verify_proof

REPORT_TAG = b"flopledger/attestation-report/v1\x00"
REPORT_VERSION = 1
CPU_FLOPS_MAX = 20e12
"""No CPU we know sustains 20 TFLOP/s in float32; a faster "CPU" timing is not believable."""
GPU_FLOPS_MAX = 2_000e12
"""Above any GPU's dense float32/TF32 rate: a faster claim is a lie about the timing."""
GPU_FLOPS_MIN = 0.5e12
"""Below this a claimed CUDA device is slower than a laptop GPU: likely a CPU in disguise.
Only applied for sizes >= ``GPU_TIMING_SIZE_MIN``, where launch overheads no longer dominate."""
GPU_TIMING_SIZE_MIN = 1024


class DeviceTiming(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One device's run of the challenge."""

    index: int
    environment: ExecutionEnvironment
    root: bytes
    matmul_ns: int


class AttestationReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The signed answer to a challenge (module docstring)."""

    version: int = REPORT_VERSION
    node_id: str
    nonce: str
    seed: str
    size: Annotated[int, msgspec.Meta(ge=1, le=MATRIX_SIZE_MAX)]
    inventory: Inventory
    devices: Annotated[list[DeviceTiming], msgspec.Meta(min_length=1, max_length=DEVICES_MAX)]
    proof: MatmulProof
    created_at_ns: int


class SignedReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    report: bytes
    signature: bytes


class AttestationAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The report's bytes and the three fields of ``node.attestation.submit``."""

    report: bytes
    inventory_digest: bytes
    commitment: bytes
    timings_ns: list[int]


def answer_challenge(
    identity: Identity,
    *,
    nonce: str,
    seed: str,
    size: int,
    inventory: Inventory,
    devices: list[torch.device],
    now_ns: int,
) -> AttestationAnswer:
    """Run the challenge on each device and build the signed report."""
    seed_bytes = bytes.fromhex(seed)
    timings: list[DeviceTiming] = []
    proof: MatmulProof | None = None
    for index, device in enumerate(devices[:DEVICES_MAX]):
        run = run_matmul(seed_bytes, size, device)
        proof = proof or run.proof
        timings.append(
            DeviceTiming(
                index=index,
                environment=run.environment,
                root=run.proof.root,
                matmul_ns=run.matmul_ns,
            )
        )
    if proof is None:
        raise ValueError("an attestation needs at least one device")
    report = AttestationReport(
        node_id=identity.id,
        nonce=nonce,
        seed=seed,
        size=size,
        inventory=inventory,
        devices=timings,
        proof=proof,
        created_at_ns=now_ns,
    )
    body = msgspec.msgpack.encode(report)
    signed = msgspec.msgpack.encode(SignedReport(body, identity.sign(REPORT_TAG + body)))
    return AttestationAnswer(
        report=signed,
        inventory_digest=hashlib.sha256(signed).digest(),
        commitment=proof.root,
        timings_ns=[t.matmul_ns for t in timings],
    )


def decode_report(data: bytes, node_id: str) -> AttestationReport | None:
    """The report when it parses and ``node_id`` signed it, else None."""
    try:
        signed = msgspec.msgpack.decode(data, type=SignedReport)
        if not verify_signature(node_id, REPORT_TAG + signed.report, signed.signature):
            return None
        return msgspec.msgpack.decode(signed.report, type=AttestationReport)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None


def verify_attestation(
    report_bytes: bytes,
    *,
    node_id: str,
    nonce: str,
    seed: str,
    size: int,
    inventory_digest: bytes,
    commitment: bytes,
    timings_ns: list[int],
) -> str:
    """The validator's check of a submitted attestation against the open challenge: ``"ok"``
    or the first failed rule (``report_digest_mismatch``, ``report_invalid``,
    ``report_stale`` (another challenge's nonce, seed or size: a replay),
    ``commitment_mismatch``, ``timings_mismatch``, ``proof_invalid``,
    ``timing_implausible``). Never raises on bad node input."""
    if hashlib.sha256(report_bytes).digest() != inventory_digest:
        return "report_digest_mismatch"
    report = decode_report(report_bytes, node_id)
    if report is None or report.node_id != node_id:
        return "report_invalid"
    if (report.nonce, report.seed, report.size) != (nonce, seed, size):
        return "report_stale"
    proof = report.proof
    try:
        seed_bytes = bytes.fromhex(seed)
    except ValueError:
        return "report_stale"
    if (proof.seed, proof.n, proof.root) != (seed_bytes, size, commitment) or any(
        d.root != commitment for d in report.devices
    ):
        return "commitment_mismatch"
    if [d.matmul_ns for d in report.devices] != list(timings_ns):
        return "timings_mismatch"
    if not verify_proof(proof):
        return "proof_invalid"
    if not all(
        is_timing_plausible(size, d.matmul_ns, d.environment.device) for d in report.devices
    ):
        return "timing_implausible"
    return "ok"


def is_timing_plausible(size: int, matmul_ns: int, device: str) -> bool:
    """Whether 2·n³ flops in ``matmul_ns`` is a rate the device class can show."""
    if matmul_ns <= 0:
        return False
    flops_per_s = 2.0 * size**3 / (matmul_ns / 1e9)
    if device == "cuda":
        too_slow = size >= GPU_TIMING_SIZE_MIN and flops_per_s < GPU_FLOPS_MIN
        return flops_per_s <= GPU_FLOPS_MAX and not too_slow
    return flops_per_s <= CPU_FLOPS_MAX

"""Dishonest nodes, built only in tests (cheating is never a mode of ``node_agent``).

Each joins the network like an agent does (register, bond, answer a small attestation
challenge) through the real API and artifact store, and then cheats in one way:

- ``corrupt``: computes the matmul, changes 5% of C's rows (at least one) and commits a
  consistent Merkle root, proof and signed manifest over the corrupted rows;
- ``copy``: commits another job's (honest, settled) result under its own claim;
- ``forge_attestation``: answers its challenge, then claims an impossible matmul time (a
  faster device than it has) in a report it signs itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import msgspec
import numpy as np

from adapters.compute.attestation import (
    REPORT_TAG,
    AttestationReport,
    SignedReport,
    answer_challenge,
)
from adapters.compute.nvml import compute_gpu_class, compute_gpu_specs, probe_inventory
from adapters.compute.results import ResultManifest, sign_manifest
from adapters.compute.runtime import select_device
from adapters.compute.workloads import compute_job_seed
from adapters.ledger_api.client import ApiClient
from adapters.nats.objects import ArtifactStore
from domain import commands as c
from domain.policy import ATTESTATION_SIZE_MIN
from proofs.identity import Identity
from proofs.matmul import compute_product, derive_inputs
from proofs.matmul_product import encode_product_proof, make_product_proof

CHALLENGE_SIZE = ATTESTATION_SIZE_MIN
"""Large enough that a claimed 1 ns product is beyond any CPU (``is_timing_plausible``)."""
CORRUPT_ROWS_PERCENT = 5
POLL_S = 0.2


class DishonestNode:
    """A node driven step by step by the test, over the API and the artifact store."""

    def __init__(self, identity: Identity, api_url: str, artifacts: ArtifactStore) -> None:
        self.identity = identity
        self.id = identity.id
        self.client = ApiClient(api_url, identity=identity)
        self.artifacts = artifacts

    def close(self) -> None:
        self.client.close()

    async def join(self, *, region: str, stake: int, price: int, forge: bool = False) -> None:
        """Register, bond, request a challenge and answer it (forged when ``forge``)."""
        inventory = probe_inventory()
        registration = {
            "region": region,
            "gpus": compute_gpu_specs(inventory),
            "gpu_class": compute_gpu_class(inventory),
            "price": price,
        }
        await self._send(msgspec.convert(registration, c.RegisterNode))
        await self._send(c.BondStake(target=self.id, amount=stake))
        await self._send(c.RequestAttestationChallenge(node_id=self.id, size=CHALLENGE_SIZE))
        challenge = (await asyncio.to_thread(self.client.get_node, self.id)).challenge
        assert challenge is not None
        answer = answer_challenge(
            self.identity,
            nonce=challenge.nonce,
            seed=challenge.seed,
            size=challenge.size,
            inventory=inventory,
            devices=[select_device(False, 0)],
            now_ns=time.time_ns(),
        )
        report_bytes, timings = answer.report, answer.timings_ns
        if forge:
            report_bytes, timings = self._forge_timings(report_bytes)
        digest = await self.artifacts.put(report_bytes)
        await self._send(
            c.SubmitAttestation(
                node_id=self.id,
                nonce=challenge.nonce,
                inventory_digest=bytes.fromhex(digest),
                commitment=answer.commitment,
                timings_ns=timings,
            )
        )

    async def claim(self, job_id: str) -> None:
        await self._send(c.ClaimJob(job_id=job_id, node_id=self.id))

    async def corrupt(self, job_id: str, params: dict[str, Any]) -> None:
        """Commit C with ``CORRUPT_ROWS_PERCENT``% of its rows changed, consistently."""
        n, seed_text = int(params["n"]), str(params.get("seed", ""))
        seed = compute_job_seed(job_id, seed_text)
        a, b = derive_inputs(seed, n)
        c = compute_product(a, b)
        rows = max(1, n * CORRUPT_ROWS_PERCENT // 100)
        c[:rows] += np.float32(1.0)
        proof = make_product_proof(c, seed)
        encoded = encode_product_proof(proof)
        manifest = ResultManifest(
            job_id=job_id,
            node_id=self.id,
            kind="matmul",
            params={"n": n, "seed": seed_text},
            commitment=proof.root,
            proof_digest=hashlib.sha256(encoded).digest(),
            environment=None,
            compute_ns=1,
            total_ns=1,
        )
        artifact = sign_manifest(manifest, self.identity)
        await self._commit(job_id, proof.root, artifact, encoded)

    async def copy(self, job_id: str, source_result: dict[str, bytes]) -> None:
        """Commit ``source_result`` (another job's commitment and digests) as this job's."""
        await self._send(
            c.CommitResult(
                job_id=job_id,
                commitment=source_result["commitment"],
                artifact_digest=source_result["artifact_digest"],
                proof_digest=source_result["proof_digest"],
            )
        )

    async def _commit(self, job_id: str, commitment: bytes, artifact: bytes, proof: bytes) -> None:
        artifact_digest = await self.artifacts.put(artifact)
        proof_digest = await self.artifacts.put(proof)
        await self._send(
            c.CommitResult(
                job_id=job_id,
                commitment=commitment,
                artifact_digest=bytes.fromhex(artifact_digest),
                proof_digest=bytes.fromhex(proof_digest),
            )
        )

    def _forge_timings(self, report_bytes: bytes) -> tuple[bytes, list[int]]:
        """The same report claiming each device did the product in 1 ns, signed again."""
        signed = msgspec.msgpack.decode(report_bytes, type=SignedReport)
        report = msgspec.msgpack.decode(signed.report, type=AttestationReport)
        devices = [msgspec.structs.replace(d, matmul_ns=1) for d in report.devices]
        body = msgspec.msgpack.encode(msgspec.structs.replace(report, devices=devices))
        forged = SignedReport(body, self.identity.sign(REPORT_TAG + body))
        return msgspec.msgpack.encode(forged), [1] * len(devices)

    async def _send(self, command: c.Command) -> None:
        await asyncio.to_thread(self.client.send, command)

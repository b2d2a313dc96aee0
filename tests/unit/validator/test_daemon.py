"""The validator daemon against the in-process ledger: honest results settle, corrupted and
copied ones are rejected and their node slashed, and a restarted validator never signs a
conflicting verdict (slashing protection) and resumes from its checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import torch

from adapters.compute.results import ResultManifest, execute_workload, sign_manifest
from adapters.compute.workloads import compute_job_seed
from adapters.store.memory import MemoryEventStore
from domain.commands import Command, command_kind, encode_command_body
from domain.errors import Rejection
from domain.job import SETTLED, SUBMITTED, Job
from domain.node import ACTIVE, JAILED, REGISTERED, Node
from domain.policy import RULES_V2, SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate, get_balances
from domain.verdicts import SUBJECT_ATTESTATION
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs.identity import Identity
from proofs.matmul import compute_product, derive_inputs
from proofs.matmul_product import encode_product_proof, make_product_proof
from tests.inprocess import DictArtifacts
from validator.daemon import DUTY_KINDS, VERIFIED_OK, CommandRefused, ValidatorDaemon
from validator.protection import SigningDatabase

N = 16
EU, COPIER, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in (61, 62, 63))
KEYS = [make_validator_keys(70 + i) for i in range(3)]
POLICY = LedgerPolicy(
    node_stake_min=1_000,
    validator_stake_min=500,
    verdict_commit_window_ns=10 * SECOND_NS,
    verdict_reveal_window_ns=10 * SECOND_NS,
)


class InProcessLedgerLink:
    def __init__(self, net: LocalNetwork, identity: Identity) -> None:
        self.net, self.identity, self.sent = net, identity, []  # type: ignore[var-annotated]

    async def send(self, command: Command) -> None:
        kind, body = command_kind(command), encode_command_body(command)
        self.sent.append((kind, body))
        try:
            await self.net.run(self.identity, kind, body)
        except Rejection as rejection:
            raise CommandRefused(rejection.code) from rejection


async def _records(net: LocalNetwork, after: int) -> Any:
    for record in await net.store.read_all(after + 1, 10_000):
        yield record


class Harness:
    def __init__(self, net: LocalNetwork, artifacts: DictArtifacts, tmp: Path) -> None:
        self.net, self.artifacts, self.tmp = net, artifacts, tmp
        self.daemons = [self.start(i) for i in range(len(KEYS))]

    def start(self, index: int) -> ValidatorDaemon:
        keys = KEYS[index]
        return ValidatorDaemon(
            identity=keys.identity,
            bls_secret=keys.bls_secret,
            ledger=InProcessLedgerLink(self.net, keys.identity),
            artifacts=self.artifacts,
            db=SigningDatabase(self.tmp / f"v{index}.db"),
            clock_ns=lambda: self.net.now_ns,
        )

    async def step(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            for daemon in self.daemons:
                await daemon.follow(_records(self.net, daemon.checkpoint.position))
                await daemon.tick()


POLICY_V2 = msgspec.structs.replace(POLICY, rules_version=RULES_V2)
"""The daemon still judges a node's own attestation report: rules v2 (issue 15 rewires it to
the validator-timed probes of rules v3)."""


async def _network(policy: LedgerPolicy = POLICY) -> LocalNetwork:
    net = LocalNetwork.create(MemoryEventStore(), policy=policy)
    for node in (EU, COPIER):
        await net.deposit(node, 10_000)
        await net.register_active_node(node, region="eu-west", price=400, stake=5_000)
    for keys in KEYS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 50_000)
    return net


async def _claimed(net: LocalNetwork, node: Identity) -> str:
    job_id = (
        await net.run(
            CONSUMER,
            "job.submit",
            {
                "workload": {"kind": "matmul", "params": {"n": N}},
                "max_price": 1_000,
                "region": "eu-west",
                "redundancy": 3,
                "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
            },
        )
    ).subject
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    return job_id


async def _commit(
    net: LocalNetwork,
    node: Identity,
    job_id: str,
    artifact: bytes,
    proof: bytes,
    commitment: bytes,
    artifacts: DictArtifacts,
) -> None:
    await net.run(
        node,
        "job.commit_result",
        {
            "job_id": job_id,
            "commitment": b64(commitment),
            "artifact_digest": b64(artifacts.put(artifact)),
            "proof_digest": b64(artifacts.put(proof)),
        },
    )


async def _honest(net: LocalNetwork, node: Identity, artifacts: DictArtifacts) -> tuple[str, Any]:
    job_id = await _claimed(net, node)
    bundle = execute_workload(job_id, "matmul", {"n": N}, node, torch.device("cpu"))
    await _commit(net, node, job_id, bundle.artifact, bundle.proof, bundle.commitment, artifacts)
    return job_id, bundle


async def _corrupted(net: LocalNetwork, node: Identity, artifacts: DictArtifacts) -> str:
    """A node that computes C but changes 5% of its rows (at least one) before committing."""
    job_id = await _claimed(net, node)
    seed = compute_job_seed(job_id, "")
    a, b = derive_inputs(seed, N)
    c = compute_product(a, b)
    rows = max(1, N // 20)
    c[:rows] += np.float32(1.0)
    proof = make_product_proof(c, seed)
    encoded = encode_product_proof(proof)
    manifest = ResultManifest(
        job_id=job_id,
        node_id=node.id,
        kind="matmul",
        params={"n": N, "seed": ""},
        commitment=proof.root,
        proof_digest=hashlib.sha256(encoded).digest(),
        environment=None,
        compute_ns=1,
        total_ns=1,
    )
    await _commit(net, node, job_id, sign_manifest(manifest, node), encoded, proof.root, artifacts)
    return job_id


async def test_honest_settles_corrupt_and_copied_are_slashed(tmp_path: Path) -> None:
    net, artifacts = await _network(), DictArtifacts()
    harness = Harness(net, artifacts, tmp_path)
    honest, bundle = await _honest(net, EU, artifacts)
    await harness.step()
    assert (await get_aggregate(net.store, Job, honest)).state == SETTLED  # type: ignore[union-attr]
    assert not [key for d in harness.daemons for key in d.done if key[2] == honest]

    cheat = await _corrupted(net, COPIER, artifacts)
    await harness.step()
    job = await get_aggregate(net.store, Job, cheat)
    node = await get_aggregate(net.store, Node, COPIER.id)
    assert job is not None and job.state == SUBMITTED and COPIER.id in job.excluded_nodes
    assert node is not None and node.state == JAILED and node.stake == 4_500

    # a copier re-commits another node's result under its own name: the manifest is not its own
    copied = await _claimed(net, EU)
    await _commit(net, EU, copied, bundle.artifact, bundle.proof, bundle.commitment, artifacts)
    await harness.step()
    rejected = await get_aggregate(net.store, Job, copied)
    assert rejected is not None and EU.id in rejected.excluded_nodes
    accounts = await get_balances(net.store)
    assert sum(a.balance for a in accounts.values()) == 0


async def test_a_restarted_validator_reveals_its_first_decision_and_never_another(
    tmp_path: Path,
) -> None:
    net, artifacts = await _network(), DictArtifacts()
    harness = Harness(net, artifacts, tmp_path)
    job_id, _ = await _honest(net, EU, artifacts)
    await net.run_beacon()  # the validators' beacon duty: the draw is done before the crash
    first = harness.daemons[0]
    await first.follow(_records(net, 0))
    await first.tick()  # commits, then "crashes" before revealing
    subject = f"job:{job_id}"
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.result is not None
    decision = first.db.get_decision(subject, job.result.commitment)
    assert decision is not None and decision.passed
    # A conflicting decision can never replace the first one.
    again = first.db.decide(subject, job.result.commitment, False, "changed my mind")
    assert again == decision
    saved = first.checkpoint.position
    first.db.close()
    harness.daemons[0] = restarted = harness.start(0)
    assert restarted.checkpoint.position == saved > 0
    await harness.step()
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SETTLED
    sent = [kind for kind, _ in restarted.ledger.sent]  # type: ignore[attr-defined]
    assert "job.commit_verdict" not in sent  # resumed: its commit was already on the ledger
    verdicts = [
        body["passed"]
        for kind, body in restarted.ledger.sent  # type: ignore[attr-defined]
        if kind == "job.record_verdict"
    ]
    assert all(verdicts)


def test_decisions_are_final(tmp_path: Path) -> None:
    db = SigningDatabase(tmp_path / "p.db")
    first = db.decide("job:j", b"c", True, "")
    assert db.decide("job:j", b"c", False, "x") == first
    assert db.decide("job:j", b"d", False, "x").passed is False
    db.close()
    reopened = SigningDatabase(tmp_path / "p.db")
    assert reopened.get_decision("job:j", b"c") == first
    assert msgspec.structs.asdict(first)["salt"] != b""


async def _submit_attestation(net: LocalNetwork, node: Identity) -> None:
    await net.deposit(node, 10_000)
    await net.run(
        node,
        "node.register",
        {"region": "eu-west", "gpus": [], "gpu_class": "cpu", "price": 100},
    )
    await net.run(node, "stake.bond", {"target": node.id, "amount": 2_000})
    await net.run(node, "node.attestation.challenge", {"node_id": node.id})
    current = await get_aggregate(net.store, Node, node.id)
    assert current is not None and current.challenge is not None
    await net.run(
        node,
        "node.attestation.submit",
        {
            "node_id": node.id,
            "nonce": current.challenge.nonce,
            "inventory_digest": b64(bytes(32)),
            "commitment": b64(b"\x05" * 32),
            "timings_ns": [1_000],
        },
    )


async def test_attestations_are_voted_through_the_same_duty_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attestation row of the duty table: commit, reveal, and a crank for a round whose
    validators stayed away; the verifier is stubbed (the real one needs a timed matmul)."""
    honest, forger, late = (Identity.from_seed(bytes([i]) * 32) for i in (64, 65, 66))

    async def verify(daemon: ValidatorDaemon, node: Any) -> str:
        return "timing_implausible" if node.id == forger.id else VERIFIED_OK

    row = dataclasses.replace(DUTY_KINDS[SUBJECT_ATTESTATION], verify=verify)
    monkeypatch.setitem(DUTY_KINDS, SUBJECT_ATTESTATION, row)
    net, artifacts = await _network(POLICY_V2), DictArtifacts()
    harness = Harness(net, artifacts, tmp_path)
    for node in (honest, forger):
        await _submit_attestation(net, node)
    await harness.step()
    accepted = await get_aggregate(net.store, Node, honest.id)
    assert accepted is not None and accepted.state == ACTIVE and accepted.is_attested
    rejected = await get_aggregate(net.store, Node, forger.id)
    assert rejected is not None and rejected.state == JAILED and rejected.stake == 1_800
    sent = [kind for daemon in harness.daemons for kind, _ in daemon.ledger.sent]  # type: ignore[attr-defined]
    assert sent.count("node.attestation.commit_verdict") == 6
    # nobody votes in time: after the reveal window the duty is a crank, which gives up
    await _submit_attestation(net, late)
    await net.run_beacon()  # the round opens when the beacon epoch closes
    net.advance(21)
    await harness.step(rounds=1)
    given_up = await get_aggregate(net.store, Node, late.id)
    assert given_up is not None and given_up.attestation_round is None
    assert not given_up.is_attested and given_up.state == REGISTERED

"""A local network driver: identities that sign commands, a clock that moves on demand.

Used by ``flopledger demo`` and by tests to drive the same services a real deployment runs.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from domain.beacon import BEACON_STREAM_ID, Beacon, compute_beacon_message
from domain.job import RESULT_COMMITTED, Job
from domain.node import Node
from domain.policy import RULES_V3, SECOND_NS, LedgerPolicy
from domain.ports import EventStore
from domain.services.ledger_service import CommandResult, LedgerService
from domain.services.queries import get_aggregate
from domain.verdicts import attestation_subject, compute_verdict_commitment, job_subject
from proofs import bls
from proofs.envelope import sign_command
from proofs.identity import Identity
from proofs.quorum import attestation_verdict_message, verdict_message

GENESIS_NS = 1_800_000_000 * SECOND_NS
LOCAL_DEPOSIT_PREFIX = "local-deposit-"
"""The chain reference ``deposit`` names when given none: no chain holds it."""
BEACON_EPOCHS_PER_RUN_MAX = 64
"""Epochs ``run_beacon`` closes at most in one call (each close may open the next)."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class ValidatorKeys:
    identity: Identity
    bls_secret: int

    @property
    def bls_public(self) -> bytes:
        return bls.sk_to_pk(self.bls_secret)


@dataclass
class LocalNetwork:
    """Signs and executes commands as any of its actors, at its own clock.

    Its first command writes the store's genesis (``declare_genesis``): ``policy`` with
    ``operator`` first among the operators, signed by ``operator``."""

    store: EventStore
    policy: LedgerPolicy
    operator: Identity
    now_ns: int = GENESIS_NS
    _nonces: itertools.count[int] = field(default_factory=itertools.count)
    _service: LedgerService | None = None
    _has_genesis: bool = False
    validator_keys: dict[str, ValidatorKeys] = field(default_factory=dict)
    """The keys of the validators registered through ``register_validator`` (by id): the
    ones ``run_beacon`` has contribute."""

    @classmethod
    def create(
        cls,
        store: EventStore,
        *,
        policy: LedgerPolicy | None = None,
        operator: Identity | None = None,
    ) -> LocalNetwork:
        operator = operator or Identity.from_seed(b"operator".ljust(32, b"\0"))
        base = policy or LedgerPolicy()
        operators = (operator.id, *(o for o in base.operators if o != operator.id))
        policy = LedgerPolicy(**{**_policy_fields(base), "operators": operators})
        return cls(store=store, policy=policy, operator=operator)

    @classmethod
    async def start(
        cls,
        store: EventStore,
        *,
        policy: LedgerPolicy | None = None,
        operator: Identity | None = None,
    ) -> LocalNetwork:
        """``create`` with the genesis recorded (for code that executes commands through
        ``service`` before any ``run``)."""
        net = cls.create(store, policy=policy, operator=operator)
        await net.declare_genesis()
        return net

    @property
    def service(self) -> LedgerService:
        """The ledger over this network's store (its rules come from the store's log)."""
        if self._service is None or self._service.store is not self.store:
            self._service = LedgerService(self.store)
        return self._service

    async def declare_genesis(self) -> CommandResult | None:
        """Record this network's genesis (its operator and policy) unless the store has one:
        the first command of a new store, done before any other ``run``."""
        if self._has_genesis or (await self.service.get_rules()).has_genesis:
            self._has_genesis = True
            return None
        head = await self.store.head()
        envelope = sign_command(
            self.operator,
            "network.genesis",
            encode_genesis_body(self.policy, prior_records=head.position),
            nonce=f"genesis-{head.position}",
            issued_at_ns=self.now_ns,
            network=self.policy.network_id,
        )
        result = await self.service.execute(envelope, now_ns=self.now_ns)
        self._has_genesis = True
        return result

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * SECOND_NS)

    async def run(self, actor: Identity, kind: str, body: dict[str, Any]) -> CommandResult:
        if kind != "network.genesis":
            await self.declare_genesis()
        envelope = sign_command(
            actor,
            kind,
            body,
            nonce=f"n{next(self._nonces):012d}",
            issued_at_ns=self.now_ns,
            network=await self.service.get_network_id(),
        )
        return await self.service.execute(envelope, now_ns=self.now_ns)

    async def deposit(
        self,
        owner: Identity,
        amount: int,
        *,
        chain_reference: str | None = None,
        by: Identity | None = None,
    ) -> CommandResult:
        """Credit ``owner`` as the operator (or ``by``). Rules v4 want the Solana transaction behind
        every deposit; without one this names a made-up one (``LOCAL_DEPOSIT_PREFIX``), which
        the audit against a chain reports as unbacked, as it should."""
        if chain_reference is None:  # unique per store: the position this deposit will take
            chain_reference = f"{LOCAL_DEPOSIT_PREFIX}{(await self.store.head()).position + 1}"
        reference = chain_reference
        body = {"account_owner": owner.id, "amount": amount, "chain_reference": reference}
        return await self.run(by or self.operator, "account.deposit", body)

    async def register_active_node(
        self,
        node: Identity,
        *,
        region: str,
        price: int,
        stake: int,
        gpu_class: str = "datacenter",
        gpus: int = 1,
    ) -> None:
        """Register with ``gpus`` devices, bond, and pass attestation (decided by the
        operator). The claim rule bounds a node's open claims by the devices it registered.
        Under rules v3 the challenge is decided by the operator before any validator is
        drawn (``attest_by_operator``); before, the node answers it with a report first."""
        await self.run(
            node,
            "node.register",
            {
                "region": region,
                "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}] * gpus,
                "gpu_class": gpu_class,
                "price": price,
            },
        )
        await self.run(node, "stake.bond", {"target": node.id, "amount": stake})
        if self.policy.rules_version >= RULES_V3:
            await self.attest_by_operator(node)
            return
        await self.run(node, "node.attestation.challenge", {"node_id": node.id})
        current = await get_aggregate(self.store, Node, node.id)
        assert current is not None and current.challenge is not None
        digest = b64(bytes(32))
        await self.run(
            node,
            "node.attestation.submit",
            {
                "node_id": node.id,
                "nonce": current.challenge.nonce,
                "inventory_digest": digest,
                "commitment": digest,
                "timings_ns": [1_000_000],
            },
        )
        await self.run(
            self.operator,
            "node.attestation.decide",
            {"node_id": node.id, "accepted": True, "reason": "bootstrap: no validators yet"},
        )

    async def attest_by_operator(self, node: Identity) -> None:
        """Rules v3: challenge ``node`` and pass it: by the operator while the network has no
        validator with stake (the bootstrap path), else by the drawn validators, every one
        voting pass (as if each had timed the node; ``tests/adversarial/test_hardware_probes``
        plays the probes themselves)."""
        await self.run(node, "node.attestation.challenge", {"node_id": node.id})
        await self.run_beacon()
        current = await get_aggregate(self.store, Node, node.id)
        assert current is not None
        if current.attestation_round is None:
            await self.run(
                self.operator,
                "node.attestation.decide",
                {"node_id": node.id, "accepted": True, "reason": "bootstrap: no validators yet"},
            )
            return
        drawn = [self.validator_keys[v] for v in current.attestation_round.validators]
        await self.vote_attestation(node.id, [(keys, True) for keys in drawn])

    async def register_validator(self, keys: ValidatorKeys, *, stake: int) -> None:
        self.validator_keys[keys.identity.id] = keys
        await self.run(
            keys.identity,
            "validator.register",
            {
                "bls_public_key": b64(keys.bls_public),
                "proof_of_possession": b64(bls.pop_prove(keys.bls_secret)),
                **({"stake": stake} if stake > 0 else {}),
            },
        )

    async def submit_job(
        self,
        consumer: Identity,
        *,
        region: str,
        max_price: int,
        deadline_s: float = 3_600,
        redundancy: int = 3,
    ) -> str:
        result = await self.run(
            consumer,
            "job.submit",
            {
                "workload": {"kind": "matmul", "gpu_class_min": "consumer", "params": {"n": 512}},
                "max_price": max_price,
                "region": region,
                "redundancy": redundancy,
                "deadline_ns": self.now_ns + int(deadline_s * SECOND_NS),
            },
        )
        return result.subject

    async def get_beacon(self) -> Beacon | None:
        return await get_aggregate(self.store, Beacon, BEACON_STREAM_ID)

    async def contribute_beacon(self, keys: ValidatorKeys) -> CommandResult:
        """Have ``keys`` sign the open epoch's beacon message and contribute it."""
        beacon = await self.get_beacon()
        assert beacon is not None and beacon.open_epoch is not None, "no beacon epoch is open"
        epoch = beacon.open_epoch
        message = compute_beacon_message(epoch.number, epoch.previous_value)
        return await self.run(
            keys.identity,
            "beacon.contribute",
            {"epoch": epoch.number, "signature": b64(bls.sign(keys.bls_secret, message))},
        )

    async def close_beacon(self, closer: Identity | None = None) -> CommandResult:
        """Let the open epoch's deadline pass (advancing the clock) and close it."""
        beacon = await self.get_beacon()
        assert beacon is not None and beacon.open_epoch is not None, "no beacon epoch is open"
        self.now_ns = max(self.now_ns, beacon.open_epoch.deadline_ns + 1)
        return await self.run(
            closer or self.operator, "beacon.close", {"epoch": beacon.open_epoch.number}
        )

    async def run_beacon(self, contributors: list[ValidatorKeys] | None = None) -> int:
        """Close every open beacon epoch: each snapshot validator among ``contributors``
        (default: every validator registered through this network) contributes; an epoch
        still missing someone is closed past its deadline. Returns the epochs closed."""
        known = {k.identity.id: k for k in (contributors or self.validator_keys.values())}
        for closed in range(BEACON_EPOCHS_PER_RUN_MAX):
            beacon = await self.get_beacon()
            if beacon is None or beacon.open_epoch is None:
                return closed
            epoch = beacon.open_epoch
            for participant in epoch.participants:
                keys = known.get(participant.validator_id)
                if keys is not None and participant.validator_id not in epoch.contributions:
                    await self.contribute_beacon(keys)
            beacon = await self.get_beacon()
            assert beacon is not None
            if beacon.open_epoch is not None and beacon.open_epoch.number == epoch.number:
                await self.close_beacon()
        raise AssertionError(f"the beacon kept opening epochs ({BEACON_EPOCHS_PER_RUN_MAX})")

    async def commit_result(
        self, node: Identity, job_id: str, commitment: bytes, *, beacon: bool = True
    ) -> None:
        """Commit a result; with ``beacon`` the known validators then run the beacon, so the
        job's validators are drawn (as the validator daemons do on a live network)."""
        await self.run(
            node,
            "job.commit_result",
            {
                "job_id": job_id,
                "commitment": b64(commitment),
                "artifact_digest": b64(commitment),
                "proof_digest": b64(commitment),
            },
        )
        if beacon:
            await self.run_beacon()

    async def commit_vote(self, keys: ValidatorKeys, job_id: str, passed: bool) -> bytes:
        """Commit a salted verdict hash; returns the salt to reveal with. A draw still
        waiting for the beacon is completed first (``run_beacon``)."""
        await self.run_beacon()
        job = await get_aggregate(self.store, Job, job_id)
        assert job is not None and job.result is not None
        salt = hashlib.sha256(f"{keys.identity.id}/{job_id}/{job.version}".encode()).digest()
        verdict_hash = compute_verdict_commitment(
            subject=job_subject(job_id),
            result_commitment=job.result.commitment,
            validator_id=keys.identity.id,
            passed=passed,
            salt=salt,
        )
        await self.run(
            keys.identity,
            "job.commit_verdict",
            {"job_id": job_id, "verdict_hash": b64(verdict_hash)},
        )
        return salt

    async def reveal_vote(
        self,
        keys: ValidatorKeys,
        job_id: str,
        passed: bool,
        salt: bytes,
        reason: str = "",
        *,
        result_commitment: bytes | None = None,
    ) -> CommandResult:
        """Reveal a committed verdict, signed over ``result_commitment`` (default: the job's
        current result; a caller revealing a stale commit passes the one it committed on)."""
        if result_commitment is None:
            job = await get_aggregate(self.store, Job, job_id)
            assert job is not None and job.result is not None
            result_commitment = job.result.commitment
        message = verdict_message(job_id, result_commitment, passed)
        return await self.run(
            keys.identity,
            "job.record_verdict",
            {
                "job_id": job_id,
                "passed": passed,
                "reason": reason,
                "signature": b64(bls.sign(keys.bls_secret, message)),
                "salt": b64(salt),
            },
        )

    async def vote_round(
        self, job_id: str, votes: list[tuple[ValidatorKeys, bool]], reason: str = ""
    ) -> None:
        """Commit every vote, let the commit window close (advancing the clock past it when
        some assigned validator did not commit), then reveal in order until the job leaves
        its verdict round."""
        salts = [await self.commit_vote(keys, job_id, passed) for keys, passed in votes]
        job = await get_aggregate(self.store, Job, job_id)
        assert job is not None and job.round is not None
        if not job.round.is_commit_phase_over(self.now_ns):
            self.now_ns = job.round.commit_deadline_ns + 1
        for (keys, passed), salt in zip(votes, salts, strict=True):
            await self.reveal_vote(keys, job_id, passed, salt, reason)
            job = await get_aggregate(self.store, Job, job_id)
            assert job is not None
            if job.state != RESULT_COMMITTED:
                return

    async def vote_attestation(
        self,
        node_id: str,
        votes: list[tuple[ValidatorKeys, bool]],
        reason: str = "",
    ) -> None:
        """Rules v3: have the drawn validators of ``node_id``'s open challenge commit their
        votes (completing the draw first, ``run_beacon``), let the commit window close, and
        reveal in order until the round is decided (``reason`` on every vote: "cc" marks a
        checked confidential-computing report)."""
        await self.run_beacon()
        node = await get_aggregate(self.store, Node, node_id)
        assert node is not None and node.challenge is not None, "no open challenge"
        assert node.attestation_round is not None, "no validators drawn"
        nonce, commitment = node.challenge.nonce, node.round_commitment()
        salts = []
        for keys, passed in votes:
            salt = hashlib.sha256(f"{keys.identity.id}/{node_id}/{nonce}".encode()).digest()
            verdict_hash = compute_verdict_commitment(
                subject=attestation_subject(node_id, nonce),
                result_commitment=commitment,
                validator_id=keys.identity.id,
                passed=passed,
                salt=salt,
            )
            await self.run(
                keys.identity,
                "node.attestation.commit_verdict",
                {"node_id": node_id, "nonce": nonce, "verdict_hash": b64(verdict_hash)},
            )
            salts.append(salt)
        committed = await get_aggregate(self.store, Node, node_id)
        assert committed is not None and committed.attestation_round is not None
        if not committed.attestation_round.is_commit_phase_over(self.now_ns):
            self.now_ns = committed.attestation_round.commit_deadline_ns + 1
        for (keys, passed), salt in zip(votes, salts, strict=True):
            message = attestation_verdict_message(node_id, nonce, commitment, passed)
            await self.run(
                keys.identity,
                "node.attestation.record_verdict",
                {
                    "node_id": node_id,
                    "nonce": nonce,
                    "passed": passed,
                    "reason": reason,
                    "signature": b64(bls.sign(keys.bls_secret, message)),
                    "salt": b64(salt),
                },
            )
            current = await get_aggregate(self.store, Node, node_id)
            assert current is not None
            if current.attestation_round is None:
                return

    async def report_equivocation(
        self, reporter: Identity, keys: ValidatorKeys, job_id: str, commitment: bytes
    ) -> CommandResult:
        """Have ``keys`` sign both verdicts on (job, commitment) and report it as ``reporter``."""
        signatures = [
            b64(bls.sign(keys.bls_secret, verdict_message(job_id, commitment, v)))
            for v in (True, False)
        ]
        return await self.run(
            reporter,
            "validator.report_equivocation",
            {
                "validator_id": keys.identity.id,
                "subject_kind": "job",
                "subject_id": job_id,
                "commitment": b64(commitment),
                "signature_pass": signatures[0],
                "signature_fail": signatures[1],
            },
        )


def make_validator_keys(index: int) -> ValidatorKeys:
    seed = f"validator-{index}".encode().ljust(32, b"\0")
    return ValidatorKeys(Identity.from_seed(seed), bls.key_gen(seed))


def encode_genesis_body(policy: LedgerPolicy, *, prior_records: int = 0) -> dict[str, Any]:
    """The body of a ``network.genesis`` command for ``policy`` (operators and parameters)."""
    parameters = _policy_fields(policy)
    operators = list(parameters.pop("operators"))
    return {"operators": operators, "policy": parameters, "prior_records": prior_records}


def _policy_fields(policy: LedgerPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in policy.__struct_fields__}

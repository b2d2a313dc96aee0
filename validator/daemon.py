"""The validator daemon: follow the verified log, verify what it is drawn for, commit, reveal.

Two tasks share a ``LedgerView``: the *follower* applies verified records (from the NATS
mirror) and checkpoints them with the followed streams in the signing database; the *duty
loop* ticks, asks the view what this validator owes (``validator.state``) and does it:
fetch the artifacts, run the workload's verifier (``adapters.compute``), record the decision
in the signing database first (slashing protection), then commit the salted hash, later
reveal the BLS-signed verdict, and crank rounds whose reveal window closed.

With a ``Witness`` the follower also feeds it every record: a signed tree head that matches
the validator's own replay is co-signed through the ledger link (``log.cosign``, BLS) on the next
tick; one that does not is refused and raises an alarm (``tree_head_refused`` logged at error
level, ``heads_refused`` counted) for a human to look at, since a log operator showing a
head that is not the replayed history is the attack witnesses exist to catch.

A validator outvoted on a result it failed proves the pass wrong on a later tick
(``validator.challenger``; issue 14, attack 5): the challenger's reward pays for checking.

A sampled LLM completion (issue 18) is checked by replaying its node's bundle on the
registered model (``validator.completion_check``) when this validator holds that model
(``--check-model``); drawn for one it does not hold, or one whose bundle the store lost after
its node recorded it stored, it abstains (commits nothing, so the round replaces it) rather
than fail a node it cannot judge.

A timed attestation challenge (rules v3, issue 15) is verified by probing the node itself
(``validator.prober``, over NATS request-reply) on this validator's clock, in this
validator's slot of the round: slot i starts ``(i + 1) × slot`` after the round was assigned
(slot = ``probe_slot_ns`` or the probe's length if longer; the first slot leaves the node
time to see who was drawn), so an honest node's device serves one probe at a time, and nodes
challenged together (one GPU UUID) are probed in the same slots, at the same moment; the
probes due in one tick run concurrently. Between rounds ``validator.node_watch`` reports
liveness and re-challenges nodes at random times.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from adapters.compute.attestation import verify_attestation
from adapters.compute.cc_attestation import is_cc_reason_inconclusive
from adapters.compute.llm_model import LoadedModel
from adapters.compute.llm_prompts import encode as encode_prompt
from adapters.compute.results import verify_result
from adapters.compute.workloads import (
    WorkloadParams,
    WorkloadParamsError,
    input_digests,
    parse_params,
)
from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge
from adapters.nats.signals import NodeHeartbeat
from domain.beacon import compute_beacon_message
from domain.commands import (
    CloseBeacon,
    Command,
    CommitAttestationVerdict,
    CommitCompletionVerdict,
    CommitVerdict,
    ContributeBeacon,
    CosignTreeHead,
    ExpireAttestation,
    ExpireCompletion,
    ExpireJob,
    ProveFraud,
    RecordAttestationVerdict,
    RecordCompletionVerdict,
    RecordVerdict,
)
from domain.completions import SUBJECT_COMPLETION, Completion, compute_completion_stream_id
from domain.invariants import invariant, present
from domain.job import Job
from domain.node import Node
from domain.objects import ARTIFACT_LOST_REASON, ARTIFACT_UNAVAILABLE_REASON
from domain.policy import REASON_CHARS_MAX
from domain.records import Head, Record
from domain.services.rounds import ATTESTATION_ROUND, COMPLETION_ROUND, JOB_ROUND
from domain.verdicts import SUBJECT_ATTESTATION, SUBJECT_JOB, compute_verdict_commitment
from proofs import bls
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.probe_wire import REASON_CC, REASON_CC_ABSENT
from validator.challenger import Challenge, build_evidence, find_challenge
from validator.completion_check import CompletionCheck, CompletionRecord, check_completion
from validator.heartbeats import HeartbeatTracker
from validator.node_watch import NodeWatch
from validator.payloads import (
    KeysPending,
    OpenedPayloads,
    compute_proof_digest,
    open_payloads,
)
from validator.prober import Prober
from validator.protection import Decision, SigningDatabase
from validator.refusal import CommandRefused as CommandRefused
from validator.state import (
    CLOSE,
    COMMIT,
    CONTRIBUTE,
    CRANK,
    REVEAL,
    SUBJECT_BEACON,
    Duty,
    LedgerView,
)
from validator.witness import HeadToCosign, RefusedHead, Witness, sign_cosignature

TICK_S = 0.2
DEADLINE_SLACK_NS = 500_000_000
"""Wait this long past a ledger deadline before acting on it (clocks differ a little)."""
RETRY_AFTER_S = 1.0
CHECKPOINT_RECORDS_MAX = 256
VERIFIED_OK = "ok"
"""What a verifier returns for a subject that passes (else a reason code)."""
COSIGNS_PER_TICK_MAX = 64
"""Co-signatures sent in one tick at most, so a backlog of heads never starves the duties."""
NO_WAIT_NS = 2**62
"""A "now" past any key release bound: a fraud proof does not wait for keys."""
KEYS_RETRY_S = 0.25
"""A private job's keys not released yet: look again this soon (``validator.payloads``)."""
CHALLENGES_PER_TICK_MAX = 4
"""Fraud proofs built and sent in one tick at most (each recomputes a product)."""

_log = structlog.get_logger("flopledger.validator")


class LedgerLink(Protocol):
    """Where signed commands go (the API in production)."""

    async def send(self, command: Command) -> None: ...


class ArtifactSource(Protocol):
    async def get(self, digest: str) -> bytes: ...


class Abstain(Exception):
    """This validator cannot judge the subject (a completion of a model it does not hold):
    it commits nothing, and the round replaces it when the reveal window closes."""


class ValidatorDaemon:
    """One validator identity's follower and duty loop."""

    def __init__(
        self,
        *,
        identity: Identity,
        bls_secret: int,
        ledger: LedgerLink,
        artifacts: ArtifactSource,
        db: SigningDatabase,
        clock_ns: Callable[[], int] = time.time_ns,
        witness: Witness | None = None,
        prober: Prober | None = None,
        cc_verify: Callable[[bytes, bytes], str] | None = None,
        rng: random.Random | None = None,
        check_models: Mapping[str, LoadedModel] | None = None,
    ) -> None:
        self.identity = identity
        self.check_models = dict(check_models or {})
        """The LLMs whose sampled completions this validator checks, by model id."""
        self.encryption_key = derive_encryption_keypair(identity)
        """The X25519 pair job keys are wrapped to (issue 17), registered at start-up."""
        self.prober = prober
        self.cc_verify = cc_verify
        """NVIDIA's verifier of CC evidence (``adapters.compute.cc_attestation``), if any."""
        self.bls_secret = bls_secret
        self.ledger = ledger
        self.artifacts = artifacts
        self.db = db
        self.clock_ns = clock_ns
        self.view = LedgerView()
        self.heartbeats = HeartbeatTracker()
        """The nodes' last verified heartbeats (informative: liveness is decided by probes)."""
        self.watch = (
            NodeWatch(identity.id, state=self.view, pinger=prober, ledger=ledger, rng=rng)
            if prober is not None
            else None
        )
        self.done: set[tuple[str, str, str, tuple[int, int]]] = set()
        self.retry_at: dict[tuple[str, str, str, tuple[int, int]], float] = {}
        self.verified = 0
        self.witness = witness
        self.heads_cosigned = 0
        self.heads_refused = 0
        self._to_cosign: list[HeadToCosign] = []
        self._challenges: list[Challenge] = []
        self.challenges_sent = 0
        self._cosign_retry_at = 0.0
        for record in db.load_followed():
            self.view.apply(record)

    @property
    def checkpoint(self) -> Head:
        return self.db.get_checkpoint()

    async def run(self, records: AsyncIterator[Record], stop: asyncio.Event) -> None:
        """Follow ``records`` and do duties until ``stop`` is set."""
        follower = asyncio.create_task(self.follow(records))
        try:
            while not stop.is_set() and not follower.done():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_S)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def follow(self, records: AsyncIterator[Record]) -> None:
        """Apply verified records; checkpoint every record (with the followed streams)."""
        async for record in records:
            kept = [record] if self.view.apply(record) else []
            challenge = find_challenge(record, self.view, self.db)
            if challenge is not None:
                self._challenges.append(challenge)
            finished = self.view.finished_streams()
            self.db.save(Head(position=record.position, hash=record.hash), kept, finished)
            if finished:
                self._forget_duties(finished)
            self.witness_record(record)

    async def follow_heartbeats(self, beats: AsyncIterator[NodeHeartbeat]) -> None:
        """Keep each node's newest heartbeat whose signature verifies (``flop.hb.<node>``)."""
        async for beat in beats:
            if not self.heartbeats.observe(beat, received_ns=self.clock_ns()):
                _log.debug("heartbeat_refused", node_id=beat.node_id)

    async def warm_witness(self, records: AsyncIterator[Record]) -> None:
        """Feed the witness the records up to the checkpoint (a restarted daemon's witness
        must replay from position 1); only the last good head among them is co-signed."""
        async for record in records:
            self.witness_record(record)
        del self._to_cosign[:-1]

    def witness_record(self, record: Record) -> None:
        """Feed one record to the witness; queue a head to co-sign or raise the alarm."""
        witness = self.witness
        if witness is None or record.position <= witness.position:
            return
        if record.position != witness.position + 1:
            _log.warning(
                "witness_disabled", expected=witness.position + 1, position=record.position
            )
            self.witness = None
            return
        outcome = witness.observe(record)
        if isinstance(outcome, HeadToCosign):
            self._to_cosign.append(outcome)
        elif isinstance(outcome, RefusedHead):
            self.heads_refused += 1
            _log.error(
                "tree_head_refused",
                size=outcome.size,
                root=outcome.root.hex(),
                position=outcome.position,
                reason=outcome.reason,
                heads_refused=self.heads_refused,
            )

    async def cosign_heads(self) -> None:
        """Send the queued co-signatures (a refusal is final; a transport error retries)."""
        if time.monotonic() < self._cosign_retry_at:
            return
        for _ in range(min(len(self._to_cosign), COSIGNS_PER_TICK_MAX)):
            head = self._to_cosign[0]
            signature = sign_cosignature(self.bls_secret, head.size, head.root)
            try:
                await self.ledger.send(CosignTreeHead(size=head.size, signature=signature))
            except CommandRefused as refused:
                _log.info("cosign_refused", size=head.size, code=refused.code)
            except (OSError, ConnectionError, TimeoutError) as exc:
                _log.warning("cosign_failed", size=head.size, error=str(exc))
                self._cosign_retry_at = time.monotonic() + RETRY_AFTER_S
                return
            else:
                self.heads_cosigned += 1
                _log.info("tree_head_cosigned", size=head.size, root=head.root.hex())
            self._to_cosign.pop(0)

    async def tick(self) -> None:
        """Co-sign checked heads, then do every duty that is due now (each at most once)."""
        await self.cosign_heads()
        await self.send_challenges()
        now_ns = self.clock_ns()
        if self.watch is not None:
            await self.watch.tick(now_ns)
        self._forget_closed_epochs()
        duties = self.view.compute_beacon_duties(self.identity.id, now_ns, DEADLINE_SLACK_NS)
        duties += self.view.compute_duties(self.identity.id, now_ns, DEADLINE_SLACK_NS)
        due = [
            duty
            for duty in duties
            if duty.key not in self.done
            and self.retry_at.get(duty.key, 0.0) <= time.monotonic()
            and now_ns >= self.compute_probe_slot_ns(duty)
        ]
        # Probes due in one slot run at the same moment (nodes challenged together because
        # they report one GPU UUID must be probed concurrently, or one device could serve all).
        timed = [duty for duty in due if self.is_timed_probe(duty)]
        await asyncio.gather(*(self._run_duty(duty) for duty in timed))
        for duty in due:
            if duty not in timed:
                await self._run_duty(duty)

    async def _run_duty(self, duty: Duty) -> None:
        """Do one duty: a refusal is final, a transport error retries after a pause."""
        try:
            await self._perform(duty)
        except CommandRefused as refused:
            _log.info("duty_refused", action=duty.action, subject=duty.subject, code=refused.code)
        except Abstain as abstain:
            _log.warning("duty_abstained", subject=duty.subject, detail=str(abstain))
        except KeysPending as pending:
            _log.info("keys_pending", subject=duty.subject, detail=str(pending))
            self.retry_at[duty.key] = time.monotonic() + KEYS_RETRY_S
            return
        except (OSError, ConnectionError, TimeoutError) as exc:
            _log.warning("duty_failed", action=duty.action, subject=duty.subject, error=str(exc))
            self.retry_at[duty.key] = time.monotonic() + RETRY_AFTER_S
            return
        self.retry_at.pop(duty.key, None)
        self.done.add(duty.key)

    async def send_challenges(self) -> None:
        """Prove wrong the passed results this validator failed (``validator.challenger``):
        the challenger's reward is its pay for having checked. A refusal is final; a
        transport error keeps the challenge for a later tick."""
        for _ in range(min(len(self._challenges), CHALLENGES_PER_TICK_MAX)):
            challenge = self._challenges[0]
            try:
                opened = await self._open_challenged(challenge.job_id, challenge.proof_digest)
                if opened is None:
                    proof = await self.artifacts.get(challenge.proof_digest.hex())
                    inputs = None
                elif opened.failure:
                    _log.info(
                        "fraud_proof_unavailable", job_id=challenge.job_id, error=opened.failure
                    )
                    self._challenges.pop(0)
                    continue
                else:
                    proof, inputs = opened.proof, opened.inputs
                zkey_digest = challenge.workload.params.get("zkey", "")
                zkey = b""
                if challenge.workload.kind == "zk-prove" and isinstance(zkey_digest, str):
                    zkey = await self.artifacts.get(zkey_digest) if zkey_digest else b""
                evidence = await asyncio.to_thread(build_evidence, challenge, proof, zkey, inputs)
                if evidence is not None:
                    await self.ledger.send(
                        ProveFraud(
                            job_id=challenge.job_id, attempt=challenge.attempt, evidence=evidence
                        )
                    )
                    self.challenges_sent += 1
                    _log.info("fraud_proven", job_id=challenge.job_id)
            except CommandRefused as refused:
                _log.info("fraud_proof_refused", job_id=challenge.job_id, code=refused.code)
            except (ArtifactNotFound, ArtifactCorrupt, ArtifactTooLarge) as exc:
                _log.info("fraud_proof_unavailable", job_id=challenge.job_id, error=str(exc))
            except (OSError, ConnectionError, TimeoutError) as exc:
                _log.warning("fraud_proof_failed", job_id=challenge.job_id, error=str(exc))
                return
            self._challenges.pop(0)

    def _forget_duties(self, subject_ids: set[str]) -> None:
        """A finished job owes nothing more: drop its duty keys, so ``done`` and
        ``retry_at`` stay as small as the set of open subjects."""
        self.done = {key for key in self.done if key[2] not in subject_ids}
        self.retry_at = {k: at for k, at in self.retry_at.items() if k[2] not in subject_ids}

    def _forget_closed_epochs(self) -> None:
        """Beacon duties of closed epochs are owed no more: drop their keys."""
        beacon = self.view.beacon
        if beacon is None:
            return
        last = beacon.last_epoch

        def is_stale(key: tuple[str, str, str, tuple[int, int]]) -> bool:
            return key[1] == SUBJECT_BEACON and int(key[2]) <= last

        self.done = {key for key in self.done if not is_stale(key)}
        self.retry_at = {key: at for key, at in self.retry_at.items() if not is_stale(key)}

    async def _perform(self, duty: Duty) -> None:
        if duty.action == CONTRIBUTE:
            # A unique BLS signature: the validator chooses only whether to contribute.
            epoch = int(duty.subject_id)
            signature = bls.sign(self.bls_secret, compute_beacon_message(epoch, duty.commitment))
            await self.ledger.send(ContributeBeacon(epoch=epoch, signature=signature))
            _log.info("beacon_contributed", epoch=epoch)
        elif duty.action == CLOSE:
            await self.ledger.send(CloseBeacon(epoch=int(duty.subject_id)))
            _log.info("beacon_closed", epoch=int(duty.subject_id))
        elif duty.action == COMMIT:
            decision = self.db.get_decision(duty.subject, duty.commitment)
            if decision is None:
                passed, reason = await self.verify(duty)
                decision = self.db.decide(duty.subject, duty.commitment, passed, reason)
            await self._commit(duty, decision)
        elif duty.action == REVEAL:
            decision = self.db.get_decision(duty.subject, duty.commitment)
            if decision is None:
                _log.warning("reveal_without_decision", subject=duty.subject)
                return
            await self._reveal(duty, decision)
        elif duty.action == CRANK:
            await self.ledger.send(DUTY_KINDS[duty.kind].crank(duty))

    async def verify(self, duty: Duty) -> tuple[bool, str]:
        """Run the subject's verifier (the workload's, the attestation's or the completion's):
        (passed, reason code); ``Abstain`` when this validator cannot judge it."""
        started = time.perf_counter()
        try:
            code = await DUTY_KINDS[duty.kind].verify(self, self.view.aggregates[duty.subject_id])
        except (ArtifactNotFound, ArtifactCorrupt, ArtifactTooLarge) as exc:
            code = self._compute_artifact_failure(duty, exc)
        self.verified += 1
        _log.info(
            "verified",
            subject=duty.subject,
            verdict=code,
            seconds=round(time.perf_counter() - started, 4),
        )
        passed = code in (VERIFIED_OK, REASON_CC)
        return passed, "" if code == VERIFIED_OK else code

    def _compute_artifact_failure(self, duty: Duty, exc: Exception) -> str:
        """``artifact_lost`` when the store lost (or holds damaged) artifacts the job's node
        recorded as stored, which the ledger does not count against the node (rules v4,
        ``domain.objects``); ``artifact_unavailable`` otherwise."""
        subject = self.view.aggregates.get(duty.subject_id)
        if (
            not isinstance(exc, ArtifactTooLarge)
            and isinstance(subject, Job)
            and self.view.is_result_stored(subject)
        ):
            _log.warning("artifact_lost", subject=duty.subject, error=type(exc).__name__)
            return f"{ARTIFACT_LOST_REASON}: {type(exc).__name__}"
        return f"{ARTIFACT_UNAVAILABLE_REASON}: {type(exc).__name__}"

    async def verify_job(self, job: Any) -> str:
        """Re-check a job's committed result against its artifact and proof; a data job's
        on its input objects, a private job's opened with the keys released to us
        (``validator.payloads``; KeysPending while they may still come)."""
        invariant(isinstance(job, Job) and job.result is not None, "a voted job has a result")
        result = job.result
        params = dict(job.workload.params)
        proof_digest = result.proof_digest
        try:
            typed = parse_params(job.workload.kind, params)
        except WorkloadParamsError:
            typed = None
        inputs = None
        if typed is not None and (input_digests(typed) or typed.encrypted):
            opened = await self._open_payloads(job, typed, result.proof_digest, self.clock_ns())
            if opened.failure:
                return opened.failure
            proof, inputs = opened.proof, opened.inputs
            if typed.encrypted:  # the manifest names the plaintext proof
                proof_digest = compute_proof_digest(proof)
        else:
            proof = await self.artifacts.get(result.proof_digest.hex())
        artifact = await self.artifacts.get(result.artifact_digest.hex())
        zkey = None
        if job.workload.kind == "zk-prove" and isinstance(params.get("zkey"), str):
            zkey = await self.artifacts.get(str(params["zkey"]))
        return await asyncio.to_thread(
            verify_result,
            job_id=job.id,
            node_id=job.node_id,
            kind=job.workload.kind,
            raw_params=params,
            commitment=result.commitment,
            artifact_digest=result.artifact_digest,
            proof_digest=proof_digest,
            artifact=artifact,
            proof=proof,
            openings_seed=job.openings_seed,
            zkey_bytes=zkey,
            insecure_setups_allowed=self.view.is_insecure_setup_allowed(job.id),
            inputs=inputs,
        )

    async def _open_payloads(
        self, job: Job, params: WorkloadParams, proof_digest: bytes, now_ns: int
    ) -> OpenedPayloads:
        """A data or private job's inputs and proof, opened (``validator.payloads``)."""
        private_key, public_key = self.encryption_key
        return await open_payloads(
            job,
            params,
            proof_digest.hex(),
            self.artifacts,  # type: ignore[arg-type]  # the NATS store streams
            validator_id=self.identity.id,
            private_key=private_key,
            public_key=public_key,
            now_ns=now_ns,
        )

    async def _open_challenged(self, job_id: str, proof_digest: bytes) -> OpenedPayloads | None:
        """For a fraud proof: a data or private job's payloads, opened with the keys it was
        released when it judged (no waiting: they came then, or never); None for a seeded
        public job, whose proof is read as it is."""
        job = self.view.aggregates.get(job_id)
        if not isinstance(job, Job):
            return None
        try:
            typed = parse_params(job.workload.kind, dict(job.workload.params))
        except WorkloadParamsError:
            return None
        if not (input_digests(typed) or typed.encrypted):
            return None
        return await self._open_payloads(job, typed, proof_digest, NO_WAIT_NS)

    async def verify_completion(self, completion: Any) -> str:
        """Replay a sampled completion's bundle on the registered model (``Abstain`` when this
        validator does not hold it, in the registered dtype)."""
        invariant(
            isinstance(completion, Completion) and completion.usage is not None,
            "a voted completion is committed",
        )
        loaded = self.check_models.get(completion.model_id)
        registered = self.view.models.get(completion.model_id)
        if loaded is None or registered is None:
            raise Abstain(f"model {completion.model_id} is not checked here")
        usage = completion.usage
        try:
            bundle = await self.artifacts.get(usage.proof_digest.hex())
        except (ArtifactNotFound, ArtifactCorrupt) as exc:
            # Recorded as stored by its node, then lost by the store: not the node's fault,
            # and a completion's fail slashes (no lost-artifact rule as a job's), so abstain.
            if self.view.is_bundle_stored(completion):
                _log.warning("bundle_lost", completion_id=completion.completion_id)
                raise Abstain(f"bundle lost by the store: {type(exc).__name__}") from exc
            raise
        record = CompletionRecord(
            model_id=completion.model_id,
            dtype=registered.dtype,
            request_digest=completion.request_digest,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            commitment=usage.commitment,
            greedy=completion.greedy,
        )
        check = await asyncio.to_thread(check_completion, bundle, record, loaded, encode_prompt)
        _log_completion_check(completion.completion_id, check)
        if not check.is_judged:
            raise Abstain(check.reason)
        return VERIFIED_OK if check.passed else check.reason

    def is_timed_probe(self, duty: Duty) -> bool:
        """Whether the duty is the commit of a timed attestation (rules v3): a probe first."""
        if duty.action != COMMIT or duty.kind != SUBJECT_ATTESTATION:
            return False
        node = self.view.aggregates.get(duty.subject_id)
        return isinstance(node, Node) and node.challenge is not None and node.challenge.is_timed

    def compute_probe_slot_ns(self, duty: Duty) -> int:
        """When this validator may probe for a timed attestation duty's commit (0: now)."""
        if not self.is_timed_probe(duty):
            return 0
        node = self.view.aggregates[duty.subject_id]
        if not isinstance(node, Node):
            return 0
        slot_ns = node.compute_probe_slot_ns(self.identity.id, self.view.current_policy())
        if slot_ns is None:
            return 0
        verdict_round = node.current_round
        if verdict_round is not None and slot_ns >= verdict_round.commit_deadline_ns:
            # A policy whose probes outlast the commit window: probe now rather than never
            # (the honest device may then serve two probes at once; say so).
            _log.warning("probe_slot_past_commit_window", node_id=node.id, slot_ns=slot_ns)
            return 0
        return slot_ns

    async def verify_attestation(self, node: Any) -> str:
        """Probe the node (a timed challenge), or re-check its submitted report."""
        if isinstance(node, Node) and node.challenge is not None and node.challenge.is_timed:
            return await self.probe_node(node)
        answer = self.view.answers.get(node.id)
        if answer is None or node.challenge is None:
            return "attestation_missing"
        report = await self.artifacts.get(answer.inventory_digest.hex())
        challenge = node.challenge
        return await asyncio.to_thread(
            verify_attestation,
            report,
            node_id=node.id,
            nonce=challenge.nonce,
            seed=challenge.seed,
            size=challenge.size,
            inventory_digest=answer.inventory_digest,
            commitment=node.attestation_commitment,
            timings_ns=list(answer.timings_ns),
        )

    async def probe_node(self, node: Node) -> str:
        """Time the node's devices with this validator's own clock (``validator.prober``)."""
        challenge = present(node.challenge, "a timed duty has a challenge")
        if self.prober is None:
            _log.warning("probe_without_transport", node_id=node.id)
            return "probe_transport_missing"
        outcome = await self.prober.attest(
            node.id,
            nonce=challenge.nonce,
            challenge_seed=bytes.fromhex(challenge.seed),
            specs=challenge.probes,
        )
        _log.info(
            "node_probed",
            node_id=node.id,
            passed=outcome.passed,
            reason=outcome.reason,
            rtt_ns=outcome.rtt_ns,
            compute_ns=list(outcome.compute_ns),
            read_ns=list(outcome.read_ns),
        )
        if not outcome.passed:
            return outcome.reason
        return await self.check_cc(node, challenge.nonce, bytes.fromhex(challenge.seed))

    async def check_cc(self, node: Node, nonce: str, challenge_seed: bytes) -> str:
        """After the timed probes passed: where this validator runs NVIDIA's verifier, the
        node's CC evidence over the round's nonce. Verified: the pass is voted with reason
        ``cc`` (the tier, when a quorum of pass votes say so); absent, or undecidable here
        (no OCSP, no RIM service): a plain pass; present and wrong: a failure."""
        if self.cc_verify is None or self.prober is None:
            return VERIFIED_OK
        outcome = await self.prober.attest_cc(
            node.id, nonce=nonce, challenge_seed=challenge_seed, verify=self.cc_verify
        )
        _log.info("node_cc_checked", node_id=node.id, reason=outcome.reason)
        if outcome.passed:
            return REASON_CC
        if outcome.reason == REASON_CC_ABSENT or is_cc_reason_inconclusive(outcome.reason):
            return VERIFIED_OK
        return outcome.reason

    async def _commit(self, duty: Duty, decision: Decision) -> None:
        verdict_hash = compute_verdict_commitment(
            subject=duty.subject,
            result_commitment=duty.commitment,
            validator_id=self.identity.id,
            passed=decision.passed,
            salt=decision.salt,
        )
        await self.ledger.send(DUTY_KINDS[duty.kind].commit(duty, verdict_hash))

    async def _reveal(self, duty: Duty, decision: Decision) -> None:
        duty_kind = DUTY_KINDS[duty.kind]
        message = duty_kind.compute_message(
            duty.subject_id, duty.nonce, duty.commitment, decision.passed
        )
        signature = bls.sign(self.bls_secret, message)
        await self.ledger.send(duty_kind.reveal(duty, decision, signature))


@dataclass(frozen=True)
class DutyKind:
    """What a validator does for one subject kind: how to verify a subject, what its verdict
    signature covers, and the typed commands that carry its commit, reveal and crank (their
    kinds and routes come from the command table, ``adapters.ledger_api.routes``)."""

    verify: Callable[[ValidatorDaemon, Any], Awaitable[str]]
    compute_message: Callable[[str, str, bytes, bool], bytes]
    commit: Callable[[Duty, bytes], Command]
    """(duty, salted verdict hash) -> the commit command."""
    reveal: Callable[[Duty, Decision, bytes], Command]
    """(duty, decision, BLS signature) -> the reveal command."""
    crank: Callable[[Duty], Command]


def _commit_job_verdict(duty: Duty, verdict_hash: bytes) -> Command:
    return CommitVerdict(job_id=duty.subject_id, verdict_hash=verdict_hash)


def _reveal_job_verdict(duty: Duty, decision: Decision, signature: bytes) -> Command:
    return RecordVerdict(
        job_id=duty.subject_id,
        passed=decision.passed,
        reason=decision.reason[:REASON_CHARS_MAX],
        signature=signature,
        salt=decision.salt,
    )


def _commit_attestation_verdict(duty: Duty, verdict_hash: bytes) -> Command:
    return CommitAttestationVerdict(
        node_id=duty.subject_id, nonce=duty.nonce, verdict_hash=verdict_hash
    )


def _reveal_attestation_verdict(duty: Duty, decision: Decision, signature: bytes) -> Command:
    return RecordAttestationVerdict(
        node_id=duty.subject_id,
        nonce=duty.nonce,
        passed=decision.passed,
        reason=decision.reason[:REASON_CHARS_MAX],
        signature=signature,
        salt=decision.salt,
    )


def _completion_id(duty: Duty) -> str:
    """A completion duty's subject is its stream id (``completion:<id>``)."""
    completion_id = duty.subject_id.removeprefix(f"{Completion.STREAM_TYPE}:")
    invariant(compute_completion_stream_id(completion_id) == duty.subject_id, "a completion stream")
    return completion_id


def _commit_completion_verdict(duty: Duty, verdict_hash: bytes) -> Command:
    return CommitCompletionVerdict(completion_id=_completion_id(duty), verdict_hash=verdict_hash)


def _reveal_completion_verdict(duty: Duty, decision: Decision, signature: bytes) -> Command:
    return RecordCompletionVerdict(
        completion_id=_completion_id(duty),
        passed=decision.passed,
        reason=decision.reason[:REASON_CHARS_MAX],
        signature=signature,
        salt=decision.salt,
    )


def _log_completion_check(completion_id: str, check: CompletionCheck) -> None:
    """The check's verdict and, per chunk, what TOPLOC measured (the evidence of a fail)."""
    _log.info(
        "completion_checked",
        completion_id=completion_id,
        reason=check.reason,
        greedy_consistent=check.greedy_consistent,
        chunks=[
            {
                "exp_matches": chunk.exp_matches,
                "k": chunk.k,
                "mantissa_err_mean": round(chunk.mantissa_err_mean, 3),
                "mantissa_err_median": chunk.mantissa_err_median,
                "accepted": accepted,
            }
            for chunk, accepted in zip(check.chunks, check.chunks_accepted, strict=True)
        ],
    )


DUTY_KINDS: dict[str, DutyKind] = {
    SUBJECT_JOB: DutyKind(
        verify=ValidatorDaemon.verify_job,
        compute_message=JOB_ROUND.compute_message,
        commit=_commit_job_verdict,
        reveal=_reveal_job_verdict,
        crank=lambda duty: ExpireJob(job_id=duty.subject_id),
    ),
    SUBJECT_ATTESTATION: DutyKind(
        verify=ValidatorDaemon.verify_attestation,
        compute_message=ATTESTATION_ROUND.compute_message,
        commit=_commit_attestation_verdict,
        reveal=_reveal_attestation_verdict,
        crank=lambda duty: ExpireAttestation(node_id=duty.subject_id),
    ),
    SUBJECT_COMPLETION: DutyKind(
        verify=ValidatorDaemon.verify_completion,
        compute_message=COMPLETION_ROUND.compute_message,
        commit=_commit_completion_verdict,
        reveal=_reveal_completion_verdict,
        crank=lambda duty: ExpireCompletion(completion_id=_completion_id(duty)),
    ),
}
"""The validator's duty table: subject kind -> how to verify, which commands to send."""

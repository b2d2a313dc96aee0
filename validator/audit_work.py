"""The audit's re-verification of work (issue 16, item 2): ``flopledger audit --verify-work``.

The replay (``validator.audit``) collects, at each decision it replays, what the verdict rests
on: for a job decided by its validators (``JobVerified``, ``JobRejected``: settled or slashed),
the committed result, the workload, the round's openings seed and the policy the job was
submitted under; for an attestation (``AttestationVerified``, ``AttestationRejected``) the
challenge and the report submitted for it. After the replay, ``check_work`` fetches each
result's artifact and proof (and a zk job's zkey, a public data job's input objects, issue
17), or each report, from the object store and runs the validator's own verifiers on them
(``adapters.compute.results.verify_result``, ``adapters.compute.attestation.verify_attestation``,
as ``validator.daemon`` does). Every item ends under exactly one status (``STATUSES``), never
silently passed:

- ``reverified``: the verifier's outcome is the verdict (a pass passes, a fail fails);
- ``fraud_proven``: a pass the artifacts fail, already proven wrong on the log by a fraud
  proof or a canary (the ledger corrected it; its pass voters were slashed);
- ``past_retention``: the objects are gone and the decision is older than the retention rule
  (``domain.policy.compute_artifact_retention_ns``): nothing is left to re-run;
- ``private_no_key``: a private job (``is_private_job``) whose data the auditor holds no key for;
- ``unavailable_rejected``: a rejection whose objects are missing (what the validators saw);
- ``timed_probe``: a timed attestation (rules v3): its evidence is the drawn validators' own
  clocks, nothing was stored to re-run (the replay checked its certificate and tier);
- ``operator_decided``: an attestation decided by an operator (``node.attestation.decide``),
  not by a validator round: an override, not a verdict.

A verdict its evidence does not support fails the audit at the decision's position (check
``work``): a pass the artifacts fail and no fraud proof corrected, a rejection whose artifacts
pass, a pass whose objects are missing while still within retention.

The collection is synchronous and does no IO; the verifiers need torch (the ``validator``
extra) and are imported only when ``check_work`` runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from nats.aio.client import Client

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound, ArtifactTooLarge
from adapters.nats.objects import ArtifactStore
from domain.errors import OperatingError
from domain.events import datetime_to_ns
from domain.job import ResultCommitment
from domain.key_releases import ENCRYPTED_PARAM, is_private_params
from domain.policy import SECOND_NS, LedgerPolicy, compute_artifact_retention_ns
from domain.records import Record
from domain.workloads import WorkloadParamsError, input_digests, parse_params

WORK = "work"
"""The audit check these items count under (``validator.audit.CHECKS``)."""
REVERIFIED = "reverified"
FRAUD_PROVEN = "fraud_proven"
PAST_RETENTION = "past_retention"
PRIVATE_NO_KEY = "private_no_key"
UNAVAILABLE_REJECTED = "unavailable_rejected"
TIMED_PROBE = "timed_probe"
OPERATOR_DECIDED = "operator_decided"
STATUSES = (
    REVERIFIED,
    FRAUD_PROVEN,
    PAST_RETENTION,
    PRIVATE_NO_KEY,
    UNAVAILABLE_REJECTED,
    TIMED_PROBE,
    OPERATOR_DECIDED,
)
UNVERIFIED_STATUSES = frozenset({PAST_RETENTION, PRIVATE_NO_KEY})
"""Statuses of items whose evidence could not be re-run: the check is then partial."""
VERIFIED_OK = "ok"
PRIVATE_PARAM = ENCRYPTED_PARAM
"""The workload parameter that marks a private job (issue 17's sealed payloads:
``domain.key_releases``)."""
EXTRA = "validator"
"""The optional extra (``pyproject.toml``) that holds the verifiers (torch)."""
JOB_DECISIONS = {("job", "JobVerified"): True, ("job", "JobRejected"): False}
ATTESTATION_DECISIONS = {
    ("node", "AttestationVerified"): True,
    ("node", "AttestationRejected"): False,
}
JOB_SUBMITTED = ("job", "JobSubmitted")
ATTESTATION_SUBMITTED = ("node", "AttestationSubmitted")
FRAUD_PROVEN_EVENT = ("decision", "FraudProven")
OPERATOR_DECIDE_KIND = "node.attestation.decide"
_ARTIFACT_MISSING = (ArtifactNotFound, ArtifactCorrupt, ArtifactTooLarge)


class ArtifactSource(Protocol):
    """What the check reads: the bytes stored under a hex SHA-256 (``ArtifactNotFound``,
    ``ArtifactCorrupt`` or ``ArtifactTooLarge`` when they cannot be had)."""

    async def get(self, digest: str) -> bytes: ...


class JobWork(NamedTuple):
    """A job's decided attempt, as the replay saw it just before the decision."""

    position: int
    job_id: str
    attempt: int
    node_id: str
    kind: str
    params: dict[str, Any]
    result: ResultCommitment
    openings_seed: bytes
    insecure_setups_allowed: bool
    passed: bool
    decided_ns: int
    retention_ns: int
    """How long its objects must be kept (``domain.policy.compute_artifact_retention_ns``)."""


class AttestationWork(NamedTuple):
    """A node's decided attestation challenge and the report submitted for it, if any."""

    position: int
    node_id: str
    nonce: str
    seed: str
    size: int
    report: tuple[bytes, bytes, tuple[int, ...]] | None
    """(inventory digest, commitment, timings) of the report submission (None: timed)."""
    passed: bool
    decided_ns: int
    retention_ns: int
    status: str | None
    """A status fixed by the log alone (``timed_probe``, ``operator_decided``), else None."""


class WorkFailure(NamedTuple):
    """A verdict its evidence does not support: the audit fails at ``position``."""

    position: int
    message: str


@dataclass
class WorkLedger:
    """What the replay collected, and the statuses ``check_work`` gave them."""

    jobs: list[JobWork] = field(default_factory=list)
    attestations: list[AttestationWork] = field(default_factory=list)
    proven: set[tuple[str, int]] = field(default_factory=set)
    """(job id, attempt) of decisions proven wrong by a fraud proof or a canary."""
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    _submitted_at: dict[str, int] = field(default_factory=dict)
    _reports: dict[tuple[str, str], tuple[bytes, bytes, tuple[int, ...]]] = field(
        default_factory=dict
    )

    @property
    def reverified(self) -> int:
        return self.statuses[REVERIFIED]

    def observe(
        self,
        record: Record,
        kind: str,
        event: Any,
        aggregates: dict[str, Any],
        policy_at: Callable[[int], LedgerPolicy | None],
    ) -> None:
        """Collect from one record, before it is applied (``aggregates`` hold the state
        just before it). ``kind`` is the command that caused it."""
        key = (record.stream_type, record.event_type)
        if key == JOB_SUBMITTED:
            self._submitted_at[record.stream_id] = record.position
        elif key == ATTESTATION_SUBMITTED:
            report = (event.inventory_digest, event.commitment, tuple(event.timings_ns))
            self._reports[(record.stream_id, event.nonce)] = report
        elif key == FRAUD_PROVEN_EVENT:
            decision = aggregates[record.stream_id]
            self.proven.add((decision.job_id, decision.attempt))
        elif key in JOB_DECISIONS:
            job = aggregates[record.stream_id]
            submitted = self._submitted_at.get(job.id)
            policy = None if submitted is None else policy_at(submitted)
            self.jobs.append(
                JobWork(
                    position=record.position,
                    job_id=job.id,
                    attempt=job.attempt,
                    node_id=job.node_id,
                    kind=job.workload.kind,
                    params=dict(job.workload.params),
                    result=job.result,
                    openings_seed=job.openings_seed,
                    insecure_setups_allowed=policy is not None and policy.insecure_setups_allowed,
                    passed=JOB_DECISIONS[key],
                    decided_ns=datetime_to_ns(event.timestamp),
                    retention_ns=compute_artifact_retention_ns(policy_at(record.position)),
                )
            )
        elif key in ATTESTATION_DECISIONS:
            retention_ns = compute_artifact_retention_ns(policy_at(record.position))
            self._observe_attestation(
                record, kind, event, aggregates[record.stream_id], retention_ns
            )

    def _observe_attestation(
        self, record: Record, kind: str, event: Any, node: Any, retention_ns: int
    ) -> None:
        challenge = node.challenge
        if challenge is None:
            return  # nothing was asked: no verdict to re-run
        status = None
        if kind == OPERATOR_DECIDE_KIND:
            status = OPERATOR_DECIDED
        elif challenge.is_timed:
            status = TIMED_PROBE
        self.attestations.append(
            AttestationWork(
                position=record.position,
                node_id=node.id,
                nonce=challenge.nonce,
                seed=challenge.seed,
                size=challenge.size,
                report=self._reports.get((node.id, challenge.nonce)),
                passed=ATTESTATION_DECISIONS[(record.stream_type, record.event_type)],
                decided_ns=datetime_to_ns(event.timestamp),
                retention_ns=retention_ns,
                status=status,
            )
        )

    def summary(self) -> dict[str, int]:
        """Items by status, and how many the check covered."""
        return {"items": len(self.jobs) + len(self.attestations), **self.statuses}


class Verifiers(NamedTuple):
    """The validator's verifiers: ``verify_result`` and ``verify_attestation`` (keywords as
    in ``adapters.compute``), each returning ``"ok"`` or a reason code."""

    verify_result: Callable[..., str]
    verify_attestation: Callable[..., str]


@dataclass(frozen=True)
class WorkCheck:
    """Where the evidence is and the auditor's clock (``now_ns``: retention is judged on it)."""

    artifacts: ArtifactSource
    now_ns: int
    verifiers: Verifiers | None = None
    """None: the validator's own (``load_verifiers``)."""


def is_verifier_installed() -> bool:
    """Whether the verifiers' extra is installed (torch is found; nothing is imported)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def load_verifiers() -> Verifiers:
    """The validator's verifiers (imports torch: the ``validator`` extra)."""
    from adapters.compute.attestation import verify_attestation
    from adapters.compute.results import verify_result

    return Verifiers(verify_result=verify_result, verify_attestation=verify_attestation)


def is_private_job(params: dict[str, Any]) -> bool:
    """Whether a job's data is private (sealed to its parties, issue 17: ``encrypted`` in its
    params). The auditor holds no data key of any (the ledger records keys only wrapped to
    the job's parties), so each counts ``private_no_key``."""
    return is_private_params(params)


def get_input_digests(kind: str, params: dict[str, Any]) -> dict[str, str]:
    """A public data job's input objects (issue 17: the consumer's own data, named by digest
    in its params), which its verifier re-runs on; {} for a seeded job, or params that do
    not parse (the verifier names those itself)."""
    try:
        return input_digests(parse_params(kind, params))
    except WorkloadParamsError:
        return {}


async def check_work(ledger: WorkLedger, check: WorkCheck) -> WorkFailure | None:
    """Re-run the verifier of every collected item in position order; count each under its
    status and return the first verdict its evidence does not support (None: all hold).
    Errors reading the store other than a missing object propagate (operating errors)."""
    verifiers = check.verifiers or load_verifiers()
    items: list[JobWork | AttestationWork] = [*ledger.jobs, *ledger.attestations]
    for item in sorted(items, key=lambda work: work.position):
        if isinstance(item, JobWork):
            outcome = await _check_job(item, ledger, check, verifiers)
        else:
            outcome = await _check_attestation(item, check, verifiers)
        if isinstance(outcome, WorkFailure):
            return outcome
        ledger.statuses[outcome] += 1
    return None


async def _check_job(
    job: JobWork, ledger: WorkLedger, check: WorkCheck, verifiers: Verifiers
) -> str | WorkFailure:
    if is_private_job(job.params):
        return PRIVATE_NO_KEY
    digests = [job.result.artifact_digest.hex(), job.result.proof_digest.hex()]
    zkey = job.params.get("zkey")
    if job.kind == "zk-prove" and isinstance(zkey, str):
        digests.append(zkey)
    fetched = await _fetch(check.artifacts, digests)
    if isinstance(fetched, str):
        return _missing(job, fetched, check.now_ns, "result")
    named = get_input_digests(job.kind, job.params)
    inputs = await _fetch(check.artifacts, list(named.values()))
    if isinstance(inputs, str):
        return _missing(job, inputs, check.now_ns, "input")
    extra = {"inputs": dict(zip(named, inputs, strict=True))} if named else {}
    code = await asyncio.to_thread(
        verifiers.verify_result,
        job_id=job.job_id,
        node_id=job.node_id,
        kind=job.kind,
        raw_params=job.params,
        commitment=job.result.commitment,
        artifact_digest=job.result.artifact_digest,
        proof_digest=job.result.proof_digest,
        artifact=fetched[0],
        proof=fetched[1],
        openings_seed=job.openings_seed,
        zkey_bytes=fetched[2] if len(fetched) > 2 else None,
        insecure_setups_allowed=job.insecure_setups_allowed,
        **extra,
    )
    passes = code == VERIFIED_OK
    if passes == job.passed:
        return REVERIFIED
    if job.passed and (job.job_id, job.attempt) in ledger.proven:
        return FRAUD_PROVEN
    if job.passed:
        return WorkFailure(
            job.position,
            f"job {job.job_id} (attempt {job.attempt}) was verified, but its artifacts fail "
            f"the verifier: {code}",
        )
    return WorkFailure(
        job.position,
        f"job {job.job_id} (attempt {job.attempt}) was rejected, but its artifacts pass the "
        "verifier",
    )


async def _check_attestation(
    item: AttestationWork, check: WorkCheck, verifiers: Verifiers
) -> str | WorkFailure:
    if item.status is not None:
        return item.status
    if item.report is None:
        # A report challenge decided by validators without a report: they could only fail it.
        return UNAVAILABLE_REJECTED if not item.passed else _no_report(item)
    inventory_digest, commitment, timings_ns = item.report
    fetched = await _fetch(check.artifacts, [inventory_digest.hex()])
    if isinstance(fetched, str):
        return _missing(item, fetched, check.now_ns, "report")
    code = await asyncio.to_thread(
        verifiers.verify_attestation,
        fetched[0],
        node_id=item.node_id,
        nonce=item.nonce,
        seed=item.seed,
        size=item.size,
        inventory_digest=inventory_digest,
        commitment=commitment,
        timings_ns=list(timings_ns),
    )
    if (code == VERIFIED_OK) == item.passed:
        return REVERIFIED
    verdict = "passed" if item.passed else "rejected"
    found = code if item.passed else "passes the verifier"
    return WorkFailure(
        item.position,
        f"the attestation of {item.node_id} (nonce {item.nonce}) was {verdict}, but its "
        f"report {'fails the verifier: ' if item.passed else ''}{found}",
    )


def _no_report(item: AttestationWork) -> WorkFailure:
    return WorkFailure(
        item.position,
        f"the attestation of {item.node_id} (nonce {item.nonce}) was passed by validators "
        "with no report submitted",
    )


def _missing(
    item: JobWork | AttestationWork, digest: str, now_ns: int, what: str
) -> str | WorkFailure:
    """Objects gone: past retention, a rejection (what its validators saw), or a failure
    (a pass whose evidence the store had to keep)."""
    if now_ns - item.decided_ns > item.retention_ns:
        return PAST_RETENTION
    if not item.passed:
        return UNAVAILABLE_REJECTED
    return WorkFailure(
        item.position,
        f"the {what} object {digest} of a passed verdict is missing from the object store "
        f"within its retention ({item.retention_ns // SECOND_NS:,} s after the decision)",
    )


async def _fetch(artifacts: ArtifactSource, digests: list[str]) -> list[bytes] | str:
    """The objects' bytes in order, or the digest of the first one the store cannot give."""
    found: list[bytes] = []
    for digest in digests:
        try:
            found.append(await artifacts.get(digest))
        except _ARTIFACT_MISSING:
            return digest
    return found


class StoredObjects:
    """The artifact bucket of a NATS server, read by the audit (``open_objects``)."""

    def __init__(self, nc: Client, store: ArtifactStore, url: str) -> None:
        self.nc, self.store, self.url = nc, store, url

    async def get(self, digest: str) -> bytes:
        return await self.store.get(digest)

    async def close(self) -> None:
        await close_nats(self.nc)


async def open_objects(url: str) -> StoredObjects:
    """Connect to the object store at ``url`` (``nats://``); OperatingError when it cannot."""
    nc = await connect_nats(url, name="flopledger-audit-objects", allow_reconnect=False)
    try:
        store = await ArtifactStore.open(nc)
    except OperatingError:
        await close_nats(nc)
        raise
    return StoredObjects(nc, store, url)

"""The part of the ledger's state a validator needs, rebuilt from verified records with the
domain's own event classes, and the duties it implies for one validator at a given time.

Followed streams: every node (attestation votes), every job until it settles or is
refunded, every completion until it is aborted, cleared or decided (issue 18: a sampled one's
round; its duties' ``kind`` is ``completion``, ``subject_id`` its stream ``completion:<id>``),
the registered models (the dtype a completion is checked in), and the network's rules (the
policy the checks follow, e.g. whether zk-prove ``setup_seed`` keys are accepted). Duties,
per verdict round this validator sits in: *commit* while the commit window is open and
nothing was committed; *reveal* once the commit phase is over; *crank* (``job.expire`` /
``node.attestation.expire`` / ``completion.expire``) once the reveal window has closed
without a quorum, so absent validators get replaced. The beacon
(``domain.beacon``) is followed too: *contribute* to an open epoch whose snapshot names this
validator, and *close* an epoch past its deadline (any validator may; the first one's close
is recorded, the others are refused as stale), so that waiting draws are never stuck.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.beacon import BEACON_STREAM_TYPE, Beacon
from domain.completions import FINISHED_STATES as COMPLETION_FINISHED_STATES
from domain.completions import Completion
from domain.events import decode_event
from domain.invariants import InvariantBroken
from domain.job import FINISHED_STATES, Job
from domain.liveness import LIVENESS_STREAM_TYPE, LivenessEpoch
from domain.models import MODEL_STREAM_TYPE, RegisteredModel
from domain.network import NETWORK_STREAM_TYPE, NetworkRules
from domain.node import Node
from domain.objects import OBJECT_STREAM_TYPE, StoredObject
from domain.policy import LedgerPolicy
from domain.records import Record
from domain.validators import Validator
from domain.verdicts import VerdictRound

FOLLOWED_TYPES = frozenset(
    {
        Job.STREAM_TYPE,
        Completion.STREAM_TYPE,  # issue 18: a sampled completion's round
        Node.STREAM_TYPE,
        BEACON_STREAM_TYPE,
        Validator.STREAM_TYPE,
        LIVENESS_STREAM_TYPE,
    }
)
LIVENESS_EPOCHS_KEPT = 4
"""Liveness epochs the view keeps (the current one, the two being closed, one of slack)."""
COMMIT = "commit"
REVEAL = "reveal"
CRANK = "crank"
CONTRIBUTE = "contribute"
CLOSE = "close"
SUBJECT_BEACON = "beacon"
"""The duty kind of beacon duties (``subject_id`` is the epoch number)."""


@dataclass(frozen=True)
class Duty:
    """One thing to do: ``action`` on ``kind`` (job | attestation) ``subject_id``."""

    action: str
    kind: str
    subject_id: str
    subject: str
    commitment: bytes
    round_key: tuple[int, int]
    nonce: str = ""
    """The attestation challenge's nonce ("" for a job)."""

    @property
    def key(self) -> tuple[str, str, str, tuple[int, int]]:
        return (self.action, self.kind, self.subject_id, self.round_key)


@dataclass(frozen=True)
class AttestationAnswer:
    inventory_digest: bytes
    timings_ns: tuple[int, ...]


class LedgerView:
    """Jobs and nodes rebuilt from records; ``apply`` returns streams that finished."""

    def __init__(self) -> None:
        self.aggregates: dict[str, Job | Node | Completion] = {}
        self.models: dict[str, RegisteredModel] = {}
        """Registered models by model id (what a completion's model was registered as)."""
        self.answers: dict[str, AttestationAnswer] = {}
        self.beacon: Beacon | None = None
        self.rules = NetworkRules()
        self.submitted_at: dict[str, int] = {}
        """Each followed job's ``JobSubmitted`` position: the rules it was accepted under."""
        self.validator_set: dict[str, Validator] = {}
        self.liveness: dict[int, LivenessEpoch] = {}
        self.stored_objects: set[tuple[bytes, str]] = set()
        """(digest, uploader) of every object-stored record (issue 16, item 6)."""

    def is_result_stored(self, job: Job) -> bool:
        """Whether the job's node recorded its artifact and proof as stored (rules v4: their
        loss from the store is then not the node's fault)."""
        result = job.result
        return result is not None and all(
            (digest, job.node_id) in self.stored_objects
            for digest in (result.artifact_digest, result.proof_digest)
        )

    def is_bundle_stored(self, completion: Completion) -> bool:
        """Whether the completion's node recorded its bundle as stored (its loss from the
        store is then not the node's fault, as a job's artifacts)."""
        usage = completion.usage
        return usage is not None and (usage.proof_digest, completion.node_id) in self.stored_objects

    def apply(self, record: Record) -> bool:
        """Apply one record; True when its stream is followed (keep the record)."""
        if record.stream_type == NETWORK_STREAM_TYPE:
            self.rules.add(record)
            return True
        if record.stream_type == MODEL_STREAM_TYPE:
            model = decode_event(record).mutate(None)
            if not isinstance(model, RegisteredModel):
                raise InvariantBroken(f"{record.stream_id} is no registered model")
            self.models[model.model_id] = model
            return True
        if record.stream_type == OBJECT_STREAM_TYPE:
            stored = decode_event(record)
            if isinstance(stored, StoredObject.ObjectStored):
                self.stored_objects.add((stored.digest, stored.uploader))
            return True
        if record.stream_type not in FOLLOWED_TYPES:
            return False
        event = decode_event(record)
        if record.stream_type == Validator.STREAM_TYPE:
            validator = event.mutate(self.validator_set.get(record.stream_id))
            if not isinstance(validator, Validator):
                raise InvariantBroken(f"{record.stream_id} is no validator")
            self.validator_set[record.stream_id] = validator
            return True
        if record.stream_type == LIVENESS_STREAM_TYPE:
            epoch = event.mutate(self.liveness.get(_epoch_number(record.stream_id)))
            if not isinstance(epoch, LivenessEpoch):
                raise InvariantBroken(f"{record.stream_id} is no liveness epoch")
            self.liveness[epoch.epoch] = epoch
            for old in [e for e in self.liveness if e <= epoch.epoch - LIVENESS_EPOCHS_KEPT]:
                del self.liveness[old]
            return True
        if record.stream_type == BEACON_STREAM_TYPE:
            beacon = event.mutate(self.beacon)
            if not isinstance(beacon, Beacon):
                raise InvariantBroken(f"{record.stream_id} is no beacon")
            self.beacon = beacon
            return True
        aggregate = event.mutate(self.aggregates.get(record.stream_id))
        if not isinstance(aggregate, Job | Node | Completion):
            raise InvariantBroken(f"{record.stream_id} is no job, node or completion")
        self.aggregates[record.stream_id] = aggregate
        if isinstance(event, Job.JobSubmitted):
            self.submitted_at[record.stream_id] = record.position
        if isinstance(event, Node.AttestationSubmitted):
            self.answers[record.stream_id] = AttestationAnswer(
                inventory_digest=event.inventory_digest, timings_ns=tuple(event.timings_ns)
            )
        return True

    @property
    def nodes(self) -> list[Node]:
        """Every followed node (``validator.node_watch``)."""
        return [agg for agg in self.aggregates.values() if isinstance(agg, Node)]

    @property
    def validators(self) -> list[Validator]:
        return list(self.validator_set.values())

    def get_liveness_epoch(self, epoch: int) -> LivenessEpoch | None:
        return self.liveness.get(epoch)

    def current_policy(self) -> LedgerPolicy:
        """The rules in force now (the defaults before a genesis was seen)."""
        return self.rules.current if self.rules.has_genesis else LedgerPolicy()

    def is_insecure_setup_allowed(self, job_id: str) -> bool:
        """Whether the policy ``job_id`` was submitted under accepts zk-prove ``setup_seed``
        keys (a ledger must have refused the job otherwise; a later policy change does not
        turn an honest proof into a slashable one). False without a genesis or a known
        submission: the secure default."""
        position = self.submitted_at.get(job_id)
        if not self.rules.has_genesis or position is None:
            return False
        return self.rules.at(position).insecure_setups_allowed

    def finished_streams(self) -> set[str]:
        """Jobs that settled or were refunded, completions aborted, cleared or decided:
        nothing more to vote on."""
        done = {
            sid
            for sid, agg in self.aggregates.items()
            if (isinstance(agg, Job) and agg.state in FINISHED_STATES)
            or (isinstance(agg, Completion) and agg.state in COMPLETION_FINISHED_STATES)
        }
        for sid in done:
            del self.aggregates[sid]
            self.submitted_at.pop(sid, None)
        return done

    def compute_duties(self, validator_id: str, now_ns: int, slack_ns: int) -> list[Duty]:
        """What ``validator_id`` owes now, in every round it sits in (jobs and attestations
        alike: each aggregate says which round is open and what it binds)."""
        duties: list[Duty] = []
        for sid, agg in self.aggregates.items():
            verdict_round = agg.get_open_round()
            if verdict_round is None:
                continue
            action = _action(verdict_round, validator_id, now_ns, slack_ns)
            if action:
                duties.append(
                    Duty(
                        action=action,
                        kind=agg.SUBJECT_KIND,
                        subject_id=sid,
                        subject=agg.round_subject(),
                        commitment=agg.round_commitment(),
                        round_key=(verdict_round.replacements, verdict_round.reveal_deadline_ns),
                        nonce=agg.round_nonce(),
                    )
                )
        return duties

    def compute_beacon_duties(self, validator_id: str, now_ns: int, slack_ns: int) -> list[Duty]:
        """Contribute to the open epoch if its snapshot names ``validator_id`` and it has not
        contributed; close the epoch once its deadline passed (by ``slack_ns``)."""
        epoch = self.beacon.open_epoch if self.beacon is not None else None
        if epoch is None:
            return []
        duty = {
            "kind": SUBJECT_BEACON,
            "subject_id": str(epoch.number),
            "subject": f"beacon:{epoch.number}",
            "commitment": epoch.previous_value,
            "round_key": (epoch.number, epoch.deadline_ns),
        }
        if now_ns - slack_ns > epoch.deadline_ns:
            return [Duty(action=CLOSE, **duty)]  # type: ignore[arg-type]
        snapshot = {p.validator_id for p in epoch.participants}
        if validator_id in snapshot and validator_id not in epoch.contributions:
            return [Duty(action=CONTRIBUTE, **duty)]  # type: ignore[arg-type]
        return []


def _epoch_number(stream_id: str) -> int:
    """``liveness:<epoch>`` -> epoch (``LivenessEpoch.stream_id``)."""
    return int(stream_id.rsplit(":", 1)[-1])


def _action(verdict_round: VerdictRound, me: str, now_ns: int, slack_ns: int) -> str | None:
    if me not in verdict_round.validators:
        return None
    if verdict_round.is_over(now_ns - slack_ns):
        return CRANK
    if me not in verdict_round.commits:
        return None if verdict_round.is_commit_phase_over(now_ns) else COMMIT
    if me in verdict_round.verdicts:
        return None
    if verdict_round.is_commit_phase_over(now_ns - slack_ns) or all(
        v in verdict_round.commits for v in verdict_round.validators
    ):
        return REVEAL
    return None

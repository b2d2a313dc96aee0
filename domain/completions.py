"""The Completion aggregate (issue 18; rules v5): one LLM completion of the OpenAI endpoint.

A completion is the job kind of the endpoint, but not a Job: it is routed to one node that
holds its model warm and streamed from there, so there is no market, claim or reassignment.
opened -> committed -> cleared | verified | rejected, or opened -> aborted.

*Opened* by a completion signer (the API; ``LedgerPolicy.completion_signers``) under a
consumer's delegation (``domain.api_keys``): an escrow of the prompt's token bound plus
``max_tokens`` at the model's prices is held from the consumer and reserved on the key at once.
*Committed* by the serving node with the token counts and its TOPLOC commitment: settled
optimistically in the same command (the usage charged, the provider paid, the rest back).
The beacon epoch that closes after the commit decides whether it is *sampled*
(``is_sampled``): if not, it is *cleared*; if so, drawn validators judge it in a verdict round
(``domain.verdict_subject``): *verified* moves nothing, *rejected* slashes the node for the
charges of its challenge window (``domain.services.completion_rounds``). *Aborted* (a node
failing mid-stream, or a completion nobody committed in time): the escrow goes back whole.
"""

from __future__ import annotations

import hashlib
import struct
from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, datetime_to_ns, ns_to_datetime
from domain.invariants import present
from domain.policy import BPS, PPM, REASON_CHARS_MAX, LedgerPolicy
from domain.settlement import Payout, compute_settlement
from domain.verdict_subject import RoundEvents, VotedAggregate
from domain.verdicts import SUBJECT_COMPLETION, Verdict, VerdictRound, completion_subject

COMPLETION_STREAM_TYPE = "completion"
COMPLETION_ID_PREFIX = "cmpl-"
COMPLETION_ID_HEX_CHARS = 24
COMPLETION_ID_PATTERN = "^cmpl-[0-9a-f]{24}$"
PROMPT_TOKENS_MAX = 1 << 20
COMPLETION_TOKENS_MAX = 4096  # proofs.llm_request.MAX_TOKENS_MAX
WARM_MODELS_MAX = 16
WARM_CAPACITY_MAX = 64
LLM_ENDPOINT_CHARS_MAX = 256
LLM_ENDPOINT_PATTERN = r"^https?://[^\s/?#]+(/[^\s]*)?$"
SAMPLE_TAG = b"flopledger/completion-sample/v1\x00"
CHARGE_BUCKET_NS = 60 * 1_000_000_000
"""The node's completion charges are tallied per minute (``Node.completion_charges``): a
slash covers the window rounded out to whole minutes, and the tally stays small."""

COMPLETION_CHECKS_ACCOUNT = "pool:completion-checks"
"""Where the validators' share of every completion's charge goes: the fees of the sampled
checks are paid from it (``compute_check_fee``), since only a few completions are checked."""
CHECKS_ROLE = "checks"

OPENED = "opened"
COMMITTED = "committed"
ABORTED = "aborted"
CLEARED = "cleared"
VERIFIED = "verified"
REJECTED = "rejected"
FINISHED_STATES = frozenset({ABORTED, CLEARED, VERIFIED, REJECTED})
STATE_CODES: dict[str, RejectionCode] = {
    OPENED: RejectionCode.COMPLETION_OPENED,
    COMMITTED: RejectionCode.COMPLETION_COMMITTED,
    ABORTED: RejectionCode.COMPLETION_ABORTED,
    CLEARED: RejectionCode.COMPLETION_CLEARED,
    VERIFIED: RejectionCode.COMPLETION_VERIFIED,
    REJECTED: RejectionCode.COMPLETION_REJECTED,
}
"""The code of a command refused because the completion is in that state."""
CLEARED_UNSAMPLED = "not sampled"
CLEARED_NO_VALIDATOR = "no eligible validator"
CLEARED_NO_QUORUM = "no verdict quorum"
CLEARED_NO_CHECKER = "no validator checks its model"
"""Validators may judge it, but none declared its model (``validator.declare_models``)."""


class WarmModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A registered model a node holds loaded, and how many completions it serves at once."""

    model_id: str
    capacity: int


def compute_completion_id(command_id: str) -> str:
    """A completion's id derives from the opening command, so a retried open names it again."""
    return (
        COMPLETION_ID_PREFIX
        + hashlib.sha256(command_id.encode()).hexdigest()[:COMPLETION_ID_HEX_CHARS]
    )


def compute_completion_stream_id(completion_id: str) -> str:
    """One stream per completion."""
    return f"{COMPLETION_STREAM_TYPE}:{completion_id}"


def compute_charge_bucket(at_ns: int) -> int:
    return at_ns // CHARGE_BUCKET_NS


def is_sampled(randomness: bytes, completion_id: str, rate_ppm: int) -> bool:
    """Whether drawn validators check the completion: the first 8 bytes of
    SHA-256(tag || randomness || id), as a fraction of 2^64, below ``rate_ppm`` / 10^6. The
    randomness is a beacon epoch's that closed after the commit, so the node cannot know it."""
    digest = hashlib.sha256(SAMPLE_TAG + randomness + completion_id.encode()).digest()
    (value,) = struct.unpack(">Q", digest[:8])
    return value * PPM < rate_ppm * 2**64


def compute_window_slash(window_charges: int, slashable: int, policy: LedgerPolicy) -> int:
    """What a rejected check takes: the window's charges times the multiple, capped by what
    the node has at stake (bonded and unbonding)."""
    return min(window_charges * policy.completion_slash_multiple, slashable)


def compute_completion_settlement(
    *,
    charge: int,
    escrow: int,
    provider_account: str,
    consumer_account: str,
    treasury_account: str,
    policy: LedgerPolicy,
) -> tuple[Payout, ...]:
    """Split a committed completion's escrow as a job's (``domain.settlement``): the
    provider the charge less the fees, the validators' fee to the checks pool, the
    treasury its fee, the consumer the rest. Nothing to split for a charge of 0."""
    if charge == 0:
        return ()
    payouts = compute_settlement(
        price=charge,
        max_price=escrow,
        provider_account=provider_account,
        validator_accounts=(COMPLETION_CHECKS_ACCOUNT,),
        consumer_account=consumer_account,
        treasury_account=treasury_account,
        policy=policy,
    )
    return tuple(
        Payout(p.account, p.amount, CHECKS_ROLE) if p.role == "validator" else p for p in payouts
    )


def compute_check_fee(charge: int, signers: int, policy: LedgerPolicy) -> int:
    """What each signer of a sampled check earns: the validators' share of the charge scaled
    by 1 / the sample rate (the pool collects that share from every completion and pays it
    out for one in 1 / rate of them, so it neither grows nor drains in expectation)."""
    if signers <= 0 or policy.completion_sample_rate_ppm <= 0:
        return 0
    share = charge * policy.validator_fee_bps // BPS
    return share * PPM // policy.completion_sample_rate_ppm // signers


class Completion(VotedAggregate):
    """One completion, from its opening to its settlement and (if sampled) its check."""

    STREAM_TYPE: ClassVar[str] = COMPLETION_STREAM_TYPE
    SUBJECT_KIND: ClassVar[str] = SUBJECT_COMPLETION

    class CompletionOpened(FlopAggregate.Created):
        completion_id: str
        consumer: str
        key_id: str
        model_id: str
        node_id: str
        provider: str
        request_digest: bytes
        prompt_tokens_max: int
        max_tokens: int
        greedy: bool
        escrow: int
        escrow_hold_id: str
        commit_due_ns: int
        opened_by: str

        def apply(self, completion: Completion) -> None:
            for name in (
                "completion_id",
                "consumer",
                "key_id",
                "model_id",
                "node_id",
                "provider",
                "request_digest",
                "prompt_tokens_max",
                "max_tokens",
                "greedy",
                "escrow",
                "escrow_hold_id",
                "commit_due_ns",
            ):
                setattr(completion, name, getattr(self, name))
            completion.state = OPENED
            completion.opened_at_ns = datetime_to_ns(self.timestamp)
            completion.usage = None
            completion.charge, completion.committed_at_ns = 0, 0
            completion.payouts, completion.fees = (), ()
            completion.round, completion.certificate = None, b""
            completion.outcome = ""

    class CompletionCommitted(FlopAggregate.Event):
        node_id: str
        prompt_tokens: int
        completion_tokens: int
        commitment: bytes
        proof_digest: bytes
        charge: int
        payouts: tuple[Payout, ...]

        def apply(self, completion: Completion) -> None:
            completion.state = COMMITTED
            completion.usage = CompletionUsage(
                self.prompt_tokens, self.completion_tokens, self.commitment, self.proof_digest
            )
            completion.charge, completion.payouts = self.charge, self.payouts
            completion.committed_at_ns = datetime_to_ns(self.timestamp)

    class CompletionAborted(FlopAggregate.Event):
        reason: str
        aborted_by: str
        amount: int

        def apply(self, completion: Completion) -> None:
            completion.state, completion.outcome = ABORTED, self.reason

    class CompletionCleared(FlopAggregate.Event):
        """Settled for good without a check: not sampled (``randomness`` says so), nobody
        to draw, or a round without quorum."""

        reason: str
        randomness: bytes = b""
        beacon_epoch: int = 0

        def apply(self, completion: Completion) -> None:
            completion.state, completion.outcome = CLEARED, self.reason

    class CompletionValidatorsAssigned(FlopAggregate.Event):
        validators: tuple[str, ...]
        weights: tuple[int, ...]
        log_position: int
        log_hash: bytes
        commit_deadline_ns: int
        reveal_deadline_ns: int
        randomness: bytes = b""
        beacon_epoch: int = 0

        def apply(self, completion: Completion) -> None:
            completion.round = VerdictRound(
                validators=self.validators,
                weights=self.weights,
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )

    class CompletionVerdictCommitted(FlopAggregate.Event):
        validator_id: str
        verdict_hash: bytes

        def apply(self, completion: Completion) -> None:
            present(completion.round, "a commit needs a round").commits[self.validator_id] = (
                self.verdict_hash
            )

    class CompletionVerdictRecorded(FlopAggregate.Event):
        validator_id: str
        verdict: Verdict
        salt: bytes

        def apply(self, completion: Completion) -> None:
            present(completion.round, "a verdict needs a round").verdicts[self.validator_id] = (
                self.verdict
            )

    class CompletionValidatorsReplaced(FlopAggregate.Event):
        absent: tuple[str, ...]
        replacements: tuple[str, ...]
        weights: tuple[int, ...]
        log_position: int
        log_hash: bytes
        commit_deadline_ns: int
        reveal_deadline_ns: int
        randomness: bytes = b""
        beacon_epoch: int = 0

        def apply(self, completion: Completion) -> None:
            completion.round = present(completion.round, "a replacement needs a round").replaced(
                absent=self.absent,
                replacements=self.replacements,
                weights=self.weights,
                commit_deadline_ns=self.commit_deadline_ns,
                reveal_deadline_ns=self.reveal_deadline_ns,
            )

    class CompletionVerified(FlopAggregate.Event):
        """The sampled check passed: the settlement stands; ``fees`` paid its signers."""

        certificate: bytes
        fees: tuple[Payout, ...] = ()

        def apply(self, completion: Completion) -> None:
            completion.state, completion.certificate = VERIFIED, self.certificate
            completion.fees = self.fees

    class CompletionRejected(FlopAggregate.Event):
        """The sampled check failed: the node was slashed ``slash`` (the window's charges
        ``window_charges`` times the multiple, capped by its stake), the consumer got
        ``refund`` back and the signers ``fees``, out of the slash."""

        certificate: bytes
        reason: str
        window_charges: int = 0
        slash: int = 0
        refund: int = 0
        fees: tuple[Payout, ...] = ()

        def apply(self, completion: Completion) -> None:
            completion.state, completion.certificate = REJECTED, self.certificate
            completion.outcome, completion.fees = self.reason, self.fees

    ROUND_EVENTS: ClassVar[RoundEvents] = RoundEvents(
        assigned=CompletionValidatorsAssigned,
        committed=CompletionVerdictCommitted,
        recorded=CompletionVerdictRecorded,
        replaced=CompletionValidatorsReplaced,
    )

    completion_id: str
    consumer: str
    key_id: str
    model_id: str
    node_id: str
    provider: str
    request_digest: bytes
    prompt_tokens_max: int
    max_tokens: int
    greedy: bool
    escrow: int
    escrow_hold_id: str
    commit_due_ns: int
    state: str
    opened_at_ns: int
    usage: CompletionUsage | None
    charge: int
    committed_at_ns: int
    payouts: tuple[Payout, ...]
    fees: tuple[Payout, ...]
    round: VerdictRound | None
    certificate: bytes
    outcome: str

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def open(
        cls,
        completion_id: str,
        *,
        consumer: str,
        key_id: str,
        model_id: str,
        node_id: str,
        provider: str,
        request_digest: bytes,
        prompt_tokens_max: int,
        max_tokens: int,
        greedy: bool,
        escrow: int,
        opened_by: str,
        policy: LedgerPolicy,
        now_ns: int,
    ) -> Completion:
        stream_id = compute_completion_stream_id(completion_id)
        return cls._create(
            cls.CompletionOpened,
            id=stream_id,
            completion_id=completion_id,
            consumer=consumer,
            key_id=key_id,
            model_id=model_id,
            node_id=node_id,
            provider=provider,
            request_digest=request_digest,
            prompt_tokens_max=prompt_tokens_max,
            max_tokens=max_tokens,
            greedy=greedy,
            escrow=escrow,
            escrow_hold_id=f"escrow:{stream_id}",
            commit_due_ns=now_ns + policy.completion_commit_window_ns,
            opened_by=opened_by,
            timestamp=ns_to_datetime(now_ns),
        )

    def check_commit(self, *, node_id: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Raise unless ``node_id`` may commit these counts now, in this order: the
        completion is open, the signer is its node, the counts are within the bounds it
        was opened (and escrowed) for. A node may commit after the window while nobody has
        aborted: the window bounds how long an escrow is held, not how long a node works."""
        self._require_state({OPENED}, "commit")
        if node_id != self.node_id:
            raise Unauthorized(
                f"completion {self.completion_id} is served by {self.node_id}, not {node_id}",
                code=RejectionCode.NOT_THE_COMPLETION_NODE,
            )
        if prompt_tokens > self.prompt_tokens_max:
            raise Rejection(
                f"{prompt_tokens} prompt tokens exceed the opened bound {self.prompt_tokens_max}",
                code=RejectionCode.COMPLETION_PROMPT_TOKENS_ABOVE_BOUND,
            )
        if completion_tokens > self.max_tokens:
            raise Rejection(
                f"{completion_tokens} completion tokens exceed max_tokens {self.max_tokens}",
                code=RejectionCode.COMPLETION_TOKENS_ABOVE_MAX,
            )

    def commit(
        self,
        *,
        node_id: str,
        usage: CompletionUsage,
        charge: int,
        payouts: tuple[Payout, ...],
        now_ns: int,
    ) -> None:
        """Record the delivered usage and its settlement (the handler moved the money)."""
        self.check_commit(
            node_id=node_id,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        if not 0 <= charge <= self.escrow:
            raise AssertionError(f"charge {charge} outside the escrow {self.escrow}")
        self._trigger(
            self.CompletionCommitted,
            now_ns,
            node_id=node_id,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            commitment=usage.commitment,
            proof_digest=usage.proof_digest,
            charge=charge,
            payouts=payouts,
        )

    def check_abort(self, *, actor: str, is_signer: bool, now_ns: int) -> None:
        """Raise unless ``actor`` may abort now: the completion is open (uncommitted), and
        the actor is a completion signer, or the commit window has passed."""
        self._require_state({OPENED}, "abort")
        if not is_signer and now_ns <= self.commit_due_ns:
            raise Rejection(
                f"only a completion signer aborts {self.completion_id} before {self.commit_due_ns}",
                code=RejectionCode.COMPLETION_COMMIT_WINDOW_OPEN,
            )

    def abort(self, *, actor: str, is_signer: bool, reason: str, amount: int, now_ns: int) -> None:
        """Void the completion (the handler voided the escrow hold, ``amount``)."""
        self.check_abort(actor=actor, is_signer=is_signer, now_ns=now_ns)
        self._trigger(
            self.CompletionAborted, now_ns, reason=reason, aborted_by=actor, amount=amount
        )

    def clear(self, *, reason: str, now_ns: int, randomness: bytes = b"", epoch: int = 0) -> None:
        """Settled for good without a check (see ``CompletionCleared``)."""
        self._require_state({COMMITTED}, "clear")
        self._trigger(
            self.CompletionCleared,
            now_ns,
            reason=reason,
            randomness=randomness,
            beacon_epoch=epoch,
        )

    def record_verified(self, *, certificate: bytes, fees: tuple[Payout, ...], now_ns: int) -> None:
        """The decided pass (``decide_round``), with the fees its signers were paid."""
        self._require_state({COMMITTED}, "verify")
        self._trigger(self.CompletionVerified, now_ns, certificate=certificate, fees=fees)

    def record_rejected(
        self,
        *,
        certificate: bytes,
        window_charges: int,
        slash: int,
        refund: int,
        fees: tuple[Payout, ...],
        now_ns: int,
    ) -> None:
        """The decided fail (``decide_round``), with what the node's slash paid."""
        self._require_state({COMMITTED}, "reject")
        reasons = sorted({v.reason for v in self.verdicts.values() if not v.passed})
        self._trigger(
            self.CompletionRejected,
            now_ns,
            certificate=certificate,
            reason="; ".join(reasons)[:REASON_CHARS_MAX],
            window_charges=window_charges,
            slash=slash,
            refund=refund,
            fees=fees,
        )

    def view(self) -> dict[str, object]:
        usage = self.usage
        return {
            "id": self.completion_id,
            "consumer": self.consumer,
            "key_id": self.key_id,
            "model_id": self.model_id,
            "node_id": self.node_id,
            "provider": self.provider,
            "request_digest": self.request_digest.hex(),
            "prompt_tokens_max": self.prompt_tokens_max,
            "max_tokens": self.max_tokens,
            "greedy": self.greedy,
            "escrow": self.escrow,
            "state": self.state,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "charge": self.charge,
            "commitment": usage.commitment.hex() if usage else "",
            "proof_digest": usage.proof_digest.hex() if usage else "",
            "committed_at_ns": self.committed_at_ns,
            "opened_at_ns": self.opened_at_ns,
            "commit_due_ns": self.commit_due_ns,
            "payouts": [msgspec.structs.asdict(p) for p in self.payouts],
            "fees": [msgspec.structs.asdict(p) for p in self.fees],
            "validators": list(self.validators),
            "verdicts": {k: v.passed for k, v in self.verdicts.items()},
            "outcome": self.outcome,
            "version": self.version,
        }

    # -- the verdict round (``domain.verdict_subject``) --------------------------------

    @property
    def current_round(self) -> VerdictRound | None:
        return self.round

    def round_subject(self) -> str:
        """``completion:<completion id>``: what a verdict commitment on it binds."""
        return completion_subject(self.completion_id)

    def round_commitment(self) -> bytes:
        return present(self.usage, "a completion under a vote is committed").commitment

    def round_seed(self) -> str:
        return self.id

    def require_revealable(self, nonce: str | None) -> None:
        if self.usage is None:
            raise Rejection(
                f"completion {self.completion_id} is not committed",
                code=RejectionCode.NO_RESULT_COMMITTED,
            )

    def _require_round_state(self, action: str, nonce: str | None) -> None:
        self._require_state({COMMITTED}, action)

    def _require_round_can_open(self) -> None:
        self._require_state({COMMITTED}, "assign_validators")

    def _on_round_decided(
        self, *, passed: bool, certificate: bytes, reason: str, policy: LedgerPolicy, now_ns: int
    ) -> None:
        """Nothing yet: a decision moves money first (``domain.services.completion_rounds``),
        which then records it with what it paid (``record_verified``, ``record_rejected``)."""

    def _on_round_abandoned(self, *, policy: LedgerPolicy, now_ns: int) -> None:
        self.clear(reason=CLEARED_NO_QUORUM, now_ns=now_ns)

    def _require_state(self, allowed: set[str], action: str) -> None:
        if self.state not in allowed:
            raise InvalidTransition(
                f"completion {self.completion_id} is {self.state}; {action} needs one of "
                f"{sorted(allowed)}",
                code=STATE_CODES[self.state],
            )


class CompletionUsage(msgspec.Struct, frozen=True):
    """What the node delivered: token counts, its TOPLOC commitment, the bundle's digest."""

    prompt_tokens: int
    completion_tokens: int
    commitment: bytes
    proof_digest: bytes

"""The audit replay: every record from genesis, every check, in a fixed order.

``Replayer.feed`` takes records in position order and checks each one, in this order: the hash
chain and stream versions; the command that caused it (its Ed25519 envelope signature, that its
id derives from actor and nonce, that it was not replayed); the network's rules (the genesis
and every rule change match what their operators signed; ``domain.network``); that its actor
was allowed to cause the event under the rules in force at its position
(``validator.audit_rules``: operator-only kinds by an operator then in force; tree heads by the
log key and deposits by the deposit authority the rules name,
``validator.audit_operator_keys``); verdicts and quorum certificates; signed tree heads, their
roots and witness co-signatures, anchors against tree heads; then it rebuilds the aggregate
(accounts with the audit's own state machine, ``validator.audit_accounts``; the rest through
the domain's aggregates) and, at each command's end, the ledger invariants (money conserved, no
account but the boundary below zero; claims covered by stake and forfeited bonds paid to
consumers, ``validator.audit_claims``). The first failure stops the replay: ``AuditFailed``
names its position and check. The replay is synchronous and does no IO (``validator.audit_run``
feeds it from a store or NATS and does the chain and read-model checks that need IO).

The rules come from the log alone, never from settings. A store written before rules were
recorded has its genesis later (it declares the operators that governed the records before
it): operator-only commands before it are checked when the genesis arrives, and a history
without any genesis fails ``network_rules`` (``check_genesis``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from domain.api_keys import ApiKey, compute_api_key_stream_id
from domain.beacon import BEACON_STREAM_ID, Beacon
from domain.commands import Command, OpenCompletion, decode_command
from domain.directory import Directory
from domain.errors import FlopError
from domain.events import FlopAggregate, decode_event
from domain.job import Job, is_insecure_setup
from domain.ledger import BOUNDARY_ACCOUNT, Account
from domain.log import compute_witness_message
from domain.models import compute_model_stream_id
from domain.network import NETWORK_STREAM_TYPE, NetworkRules, strip_operators
from domain.policy import RULES_V1, RULES_V3, LedgerPolicy
from domain.records import GENESIS_HASH, Head, Record, compute_record_hash
from domain.services.ledger_service import CommandMetadata, compute_command_id
from domain.services.rounds import ROUND_KINDS
from domain.validators import Validator
from domain.verdict_subject import VotedAggregate
from proofs import bls
from proofs.envelope import FRESHNESS_WINDOW_NS
from proofs.identity import IdentityError, decode_actor_id
from proofs.quorum import decode_qc, signer_indices, verify_qc
from proofs.tree_head import SignedTreeHead, verify_tree_head
from validator.audit_accounts import AccountState, apply_account_event
from validator.audit_attestation import (
    AttestationAudit,
    CommandFacts,
    is_attestation_rule_in_force,
)
from validator.audit_beacon import (
    CONTRIBUTED,
    DRAW_EVENTS,
    EPOCH_CLOSED,
    EPOCH_OPENED,
    ClosedEpoch,
    compute_snapshot,
    find_closing_violation,
    find_contribution_violation,
    find_draw_violation,
    find_opening_violation,
    is_beacon_rule_in_force,
)
from validator.audit_chain import CHAIN_MONEY, ChainMoneyView
from validator.audit_claims import CLAIM_RULES_VERSION, ClaimAudit
from validator.audit_envelopes import OperatorOverride, find_network_problem, find_override
from validator.audit_fraud import (
    DECISION_RECORDED,
    FRAUD_PROVEN,
    Decided,
    compute_certificate_signers,
    find_decision_violation,
    find_fraud_slash_violation,
    find_fraud_violation,
)
from validator.audit_history import (
    COSIGNERS,
    TRUSTED_HEAD,
    HistoryAudit,
    HistoryRequirements,
)
from validator.audit_log import AnchorClaim, LogView
from validator.audit_operator_keys import find_operator_key_violation
from validator.audit_quorum import (
    find_redundancy_violation,
    find_threshold_violation,
    get_owners,
    is_quorum_rule_in_force,
)
from validator.audit_reexec import Divergence, Reexecution
from validator.audit_reputation import ReputationAudit, compute_probers_snapshot
from validator.audit_rules import (
    OPERATOR_KINDS,
    OWNER_KINDS,
    find_delegation_violation,
    find_violation,
)
from validator.audit_signatures import find_envelope_problem
from validator.audit_stake import (
    STAKE_BONDED_EVENTS,
    VALIDATOR_SLASHED,
    find_bond_violation,
    find_slash_violation,
)
from validator.audit_work import WORK, WorkLedger

HASH_CHAIN = "hash_chain"
COMMAND_SIGNATURE = "command_signature"
COMMAND_REPLAY = "command_replay"
NETWORK_RULES = "network_rules"
AUTHORIZATION = "authorization"
VERDICT = "verdict"
QUORUM_CERTIFICATE = "quorum_certificate"
BEACON = "beacon"
TREE_HEAD = "tree_head"
WITNESS = "witness_cosignature"
ANCHOR = "anchor"
AGGREGATE_REPLAY = "aggregate_replay"
LEDGER_INVARIANTS = "ledger_invariants"
READ_MODEL = "read_model"
STORED_PROOFS = "stored_proofs"
FRAUD_PROOF = "fraud_proof"
REPUTATION = "reputation"
REEXECUTION = "reexecution"
CHECKS = (
    HASH_CHAIN,
    COMMAND_SIGNATURE,
    COMMAND_REPLAY,
    NETWORK_RULES,
    AUTHORIZATION,
    VERDICT,
    QUORUM_CERTIFICATE,
    BEACON,
    TREE_HEAD,
    WITNESS,
    ANCHOR,
    TRUSTED_HEAD,
    COSIGNERS,
    AGGREGATE_REPLAY,
    LEDGER_INVARIANTS,
    READ_MODEL,
    STORED_PROOFS,
    FRAUD_PROOF,
    REPUTATION,
    WORK,  # issue 16, item 2: --verify-work (validator.audit_work)
    CHAIN_MONEY,  # issue 16, item 3: money against the chain (validator.audit_chain)
    REEXECUTION,
)
SIGNATURE_CHECKS = frozenset({COMMAND_SIGNATURE, VERDICT, QUORUM_CERTIFICATE, WITNESS})
CERTIFICATE_SIGNERS_MIN = 1
_METADATA = msgspec.json.Decoder(CommandMetadata)
_JSON = msgspec.json.Decoder()
ACCOUNT_STREAM_TYPE = Account.STREAM_TYPE
HOLD_CLOSINGS = frozenset({"HoldPosted", "HoldVoided"})
VERDICT_EVENTS = frozenset(
    {
        ("job", "VerdictRecorded"),
        ("node", "AttestationVerdictRecorded"),
        ("completion", "CompletionVerdictRecorded"),  # issue 18
    }
)
DECISION_EVENTS: dict[tuple[str, str], bool] = {
    ("job", "JobVerified"): True,
    ("job", "JobRejected"): False,
    ("node", "AttestationVerified"): True,
    ("node", "AttestationRejected"): False,
    ("completion", "CompletionVerified"): True,  # issue 18: a sampled completion's check
    ("completion", "CompletionRejected"): False,
}
"""Events that record a round's decision, with the verdict their certificate covers."""
JOB_SUBMITTED = ("job", "JobSubmitted")
GENESIS_KIND = "network.genesis"
QUORUM_DECIDED_KINDS = frozenset(
    {"job.record_verdict", "node.attestation.record_verdict", "completion.record_verdict"}
)


class AuditFailed(Exception):
    """A check failed at a position: the audit stops there."""

    def __init__(self, position: int, check: str, message: str) -> None:
        super().__init__(f"position {position}: {check}: {message}")
        self.position = position
        self.check = check
        self.message = message


@dataclass(frozen=True)
class AuditOptions:
    """What to verify. ``trusted_operators``, when given, are the keys the auditor trusts to
    have created the ledger: its genesis must be signed by one of them (without them the
    genesis is taken as the log records it, and the report names its signer). ``history``:
    trusted heads and co-signers the log must agree with (``validator.audit_history``)."""

    verify_signatures: bool = True
    verify_proofs: bool = False
    trusted_operators: frozenset[str] = frozenset()
    at_position: int | None = None
    history: HistoryRequirements = field(default_factory=HistoryRequirements)
    verify_work: bool = False
    """Issue 16, item 2: collect every decision's evidence to re-run its verifier after the
    replay (``validator.audit_work``; ``run_audit`` needs a ``WorkCheck`` then)."""
    treasury: str = ""
    """Issue 16, item 3: the treasury's Solana address, for the checks against the chain
    (default: the chain reader's own, as the devnet's and LiteSVM's know it)."""
    reexecute: bool = True
    """Run every command again through the rules and require its records byte for byte
    (``validator.audit_reexec``); False leaves the cheap checks alone (the fast path)."""


@dataclass
class _Command:
    command_id: str
    position: int
    metadata: bytes
    signed: CommandMetadata
    kind: str
    actor: str
    body: Command
    principals: frozenset[str]
    issued_at_ns: int
    touched_accounts: set[str] = field(default_factory=set)
    claims: ClaimAudit = field(default_factory=ClaimAudit)
    attestation: AttestationAudit = field(default_factory=AttestationAudit)  # issue 15
    # Issue 14, attack 5 (validator.audit_fraud): what the command credited, by account; the
    # rounds it decided (job -> passed, signers); fraud evidence keys it proved -> voters.
    credits: dict[str, int] = field(default_factory=dict)
    decided: dict[str, Decided] = field(default_factory=dict)
    recorded_decisions: set[str] = field(default_factory=set)
    proven: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Issue 14, attack 2 (validator.audit_beacon): the epoch this command closed, whose
    # value and snapshot its draws must come from.
    closed_epoch: ClosedEpoch | None = None
    records: list[Record] = field(default_factory=list)  # issue 16: re-executed at its end


class Replayer:
    """Checks records one by one and rebuilds every aggregate (see the module docstring)."""

    def __init__(self, options: AuditOptions) -> None:
        self.options = options
        self.head_position = 0
        self.head_hash = GENESIS_HASH
        self.aggregates: dict[str, FlopAggregate | AccountState] = {}
        self.stream_types: dict[str, str] = {}
        self.last_positions: dict[str, int] = {}
        self.balance_history: dict[str, list[tuple[int, int, int, int]]] = {}
        self.commands = 0
        self.counts: dict[str, int] = dict.fromkeys(CHECKS, 0)
        self.log = LogView(keep_hashes=options.verify_proofs)
        self.rules = NetworkRules()
        self.genesis_signer = ""
        # Operator-only commands before a late genesis: actor -> (first position, kind).
        self._deferred_operators: dict[str, tuple[int, str]] = {}
        self._seen: set[str] = set()
        # Whether a bond naming its funder was replayed: owner-signed bonds are in force.
        self._is_owner_bond_rule_in_force = False
        self._command: _Command | None = None
        self._money = 0
        # Issue 15 (validator.audit_reputation): every node's observations, across commands.
        self.reputation = ReputationAudit()
        # Issue 16, item 5 (validator.audit_envelopes): operator overrides, with reasons.
        self.overrides: list[OperatorOverride] = []
        # Issue 16, item 4 (validator.audit_history): trusted heads, co-signers per head.
        self.history = HistoryAudit(options.history)
        self._trusted_sizes = self.history.trusted_sizes
        # Issue 16, item 2 (validator.audit_work): the evidence of every decision.
        self.work = WorkLedger() if options.verify_work else None
        # Issue 16, item 3 (validator.audit_chain): credits across the boundary, payouts.
        self.chain_money = ChainMoneyView()
        # Issue 16: every command run again on the records before it.
        self.reexecution = Reexecution() if options.reexecute else None
        # Issue 19: envelope verdicts of the batch being fed (validator.audit_signatures),
        # by command metadata; one missing here is checked inline.
        self.envelope_problems: dict[bytes, str] = {}
        self._policy_key = (0, -1)  # (position, rules version) of _policy_found
        self._policy_found: tuple[LedgerPolicy, frozenset[str]] | None = None

    @property
    def head(self) -> Head:
        """The last record replayed (position 0 and the genesis hash before any)."""
        return Head(position=self.head_position, hash=self.head_hash)

    def feed(self, record: Record) -> None:
        """Check one record and apply it; raises AuditFailed at the first failed check."""
        self._check_chain(record)
        if self._command is None or record.command_id != self._command.command_id:
            self.end_command()
            self._command = self._begin_command(record)
        elif record.metadata != self._command.metadata:
            self._fail(record, COMMAND_SIGNATURE, "metadata differs within one command")
        command = self._command
        command.records.append(record)
        try:
            data: dict[str, Any] = _JSON.decode(record.data)
            if not isinstance(data, dict):
                raise TypeError("event data is not a JSON object")
            # Account events are applied from ``data`` (validator.audit_accounts).
            event = (
                None
                if record.stream_type == ACCOUNT_STREAM_TYPE
                else decode_event(record, dict(data))  # a copy: decode_event changes it
            )
        except (ValueError, TypeError, msgspec.MsgspecError) as exc:
            self._fail(record, AGGREGATE_REPLAY, f"event does not decode: {exc}")
        self._check_event(record, command, event, data)
        money_violation = self.chain_money.observe(
            record,
            command.kind,
            command.body,
            data,
            command.actor,
            self._policy_at(record.position),
        )
        if money_violation is not None:
            self._fail(record, CHAIN_MONEY, money_violation)
        self._check_reputation(record, command, event, data)
        if self.work is not None and event is not None:
            self.work.observe(record, command.kind, event, self.aggregates, self._policy_at)
        if event is None:
            self._apply_account(record, command, data)
        else:
            self._apply(record, event)
        self.log.add_leaf(record.hash)
        if record.position in self._trusted_sizes:
            violation = self.history.check_trusted(record.position, self.log.peek_root)
            if violation is not None:
                self._fail(record, TRUSTED_HEAD, violation)
            self.counts[TRUSTED_HEAD] += 1

    def check_history(self) -> None:
        """After the replay: no trusted head past the log's end, every sealed head but the
        newest co-signed enough (``validator.audit_history``); with ``verify_proofs`` a
        consistency proof from each trusted head to the newest head verifies."""
        violation = self.history.find_final_violation(self.head_position, self.options.at_position)
        if violation is not None:
            raise AuditFailed(violation.position, violation.check, violation.message)
        self.counts[COSIGNERS] = self.history.heads_quorate
        newest = self.history.newest_head
        if newest is None or not self.options.verify_proofs:
            return
        for trusted in self.options.history.trusted_heads:
            if trusted.size >= newest.size:
                continue
            reason = self.log.check_consistency(
                trusted.size, trusted.root, newest.size, newest.root
            )
            if reason is not None:
                raise AuditFailed(trusted.size, STORED_PROOFS, reason)
            self.counts[STORED_PROOFS] += 1

    def end_command(self, *, complete: bool = True) -> None:
        """At a command's end: its re-execution (unless ``complete`` is False: the replay
        stopped inside it), then the ledger invariants: money conserved, no account below
        zero."""
        command = self._command
        if command is None:
            return
        self._reexecute(command, complete=complete)
        missing = sorted(set(command.decided) - command.recorded_decisions)
        if missing and self._is_fraud_rule_in_force(command.position):
            raise AuditFailed(
                command.position,
                LEDGER_INVARIANTS,
                f"{command.kind} decided {missing[0]} and recorded no decision paying its signers",
            )
        if self._money != 0:
            raise AuditFailed(
                command.position, LEDGER_INVARIANTS, f"{command.kind} created {self._money}"
            )
        violation = command.claims.end_command(self.aggregates)
        policy = self._policy_at(command.position)
        if violation is None and is_attestation_rule_in_force(policy):
            assert policy is not None  # is_attestation_rule_in_force
            violation = command.attestation.end_command(self.aggregates, policy)
        if violation is not None:
            raise AuditFailed(command.position, LEDGER_INVARIANTS, violation)
        for account_id in command.touched_accounts:
            account = self.aggregates[account_id]
            assert isinstance(account, AccountState)
            if account.balance < 0 and account_id != BOUNDARY_ACCOUNT:
                raise AuditFailed(
                    command.position,
                    LEDGER_INVARIANTS,
                    f"{command.kind} took {account_id} to {account.balance}",
                )
        violation = self.reputation.end_command()  # issue 15: released claims' outcomes
        if violation is not None:
            raise AuditFailed(command.position, REPUTATION, violation)
        self.counts[LEDGER_INVARIANTS] += 1
        self._command = None

    def _reexecute(self, command: _Command, *, complete: bool) -> None:
        if self.reexecution is None:
            return
        if not complete or not (self.rules.has_genesis or command.kind == GENESIS_KIND):
            # Stopped inside it, or before a late genesis: its rules came from the settings of
            # the release that wrote it, not from the log, so it cannot be run again.
            self.reexecution.skip(command.records)
            return
        try:
            self.reexecution.check(
                command.records, command.signed, self._policy_at(command.position)
            )
        except Divergence as exc:
            raise AuditFailed(exc.position, REEXECUTION, f"{command.kind}: {exc.message}") from exc
        self.counts[REEXECUTION] = self.reexecution.reexecuted

    def _check_chain(self, record: Record) -> None:
        expected = self.head_position + 1
        if record.position != expected:
            if record.position > expected:
                raise AuditFailed(
                    expected,
                    HASH_CHAIN,
                    f"record {expected} is missing (the next stored one is {record.position})",
                )
            self._fail(record, HASH_CHAIN, f"position goes back, {expected} was expected")
        if record.prev_hash != self.head_hash:
            self._fail(record, HASH_CHAIN, "prev_hash is not the hash of the record before")
        if compute_record_hash(record.prev_hash, record.body()) != record.hash:
            self._fail(record, HASH_CHAIN, "hash does not match the record's content")
        aggregate = self.aggregates.get(record.stream_id)
        version = 1 if aggregate is None else aggregate.version + 1
        if record.version != version:
            self._fail(
                record,
                HASH_CHAIN,
                f"stream {record.stream_id} goes to version {record.version}, not {version}",
            )
        known_type = self.stream_types.setdefault(record.stream_id, record.stream_type)
        if known_type != record.stream_type:
            self._fail(record, HASH_CHAIN, f"{record.stream_id} changes type to {known_type}")
        self.head_position, self.head_hash = record.position, record.hash
        self.counts[HASH_CHAIN] += 1

    def check_genesis(self) -> None:
        """After the replay: a history of any length has a genesis declaring its rules."""
        if self.head_position > 0 and not self.rules.has_genesis:
            raise AuditFailed(
                1,
                NETWORK_RULES,
                f"no genesis record up to position {self.head_position} declares the "
                "operators and policy (a store written before rules were recorded: declare "
                "them with `flopledger db genesis`)",
            )

    def _begin_command(self, record: Record) -> _Command:
        try:
            metadata = _METADATA.decode(record.metadata)
        except msgspec.MsgspecError as exc:
            self._fail(record, COMMAND_SIGNATURE, f"metadata is not a signed command: {exc}")
        envelope = metadata.envelope
        if compute_command_id(envelope.actor, envelope.nonce) != record.command_id:
            self._fail(record, COMMAND_SIGNATURE, "command id is not sha256(actor, nonce)")
        if self.options.verify_signatures:
            # Checked ahead in worker processes when the replay runs through audit_run.
            problem = self.envelope_problems.get(record.metadata)
            if problem is None:
                problem = find_envelope_problem(metadata)
            if problem:
                self._fail(record, COMMAND_SIGNATURE, problem)
        self.counts[COMMAND_SIGNATURE] += 1
        if record.command_id in self._seen:
            self._fail(
                record,
                COMMAND_REPLAY,
                f"{envelope.kind} by {envelope.actor} (nonce {envelope.nonce!r}) ran before",
            )
        self._seen.add(record.command_id)
        self.counts[COMMAND_REPLAY] += 1
        try:
            body = decode_command(envelope.kind, envelope.body)
        except FlopError as exc:
            self._fail(record, AUTHORIZATION, exc.message)
        network_problem = find_network_problem(envelope, body, self.rules)  # issue 16, item 9
        if network_problem is not None:
            self._fail(record, NETWORK_RULES, network_problem)
        override = find_override(record.position, envelope, body, self.rules)  # issue 16, 5
        if override is not None:
            self.overrides.append(override)
        self.commands += 1
        principals = self._principals(envelope.kind, envelope.actor, body)
        if isinstance(body, OpenCompletion):  # issue 18: it spends under a delegation
            principals |= self._check_delegation(record, body, metadata)
        return _Command(
            command_id=record.command_id,
            position=record.position,
            metadata=record.metadata,
            signed=metadata,
            kind=envelope.kind,
            actor=envelope.actor,
            body=body,
            principals=principals,
            issued_at_ns=envelope.issued_at_ns,
        )

    def _check_delegation(
        self, record: Record, body: OpenCompletion, metadata: CommandMetadata
    ) -> frozenset[str]:
        """A completion signer holds the key's consumer's money only as far as the consumer
        delegated it (``audit_rules.find_delegation_violation``, at the command's clock):
        the consumer whose account the escrow comes from, when it does."""
        key = self.aggregates.get(compute_api_key_stream_id(body.key_id))
        model = self.aggregates.get(compute_model_stream_id(body.model_id))
        now_ns = metadata.now_ns if metadata.now_ns is not None else metadata.envelope.issued_at_ns
        violation = find_delegation_violation(
            body,
            metadata.envelope.actor,
            key=key,
            model=model,
            policy=self._policy_at(record.position),
            now_ns=now_ns,
        )
        if violation is not None:
            self._fail(record, AUTHORIZATION, violation)
        assert isinstance(key, ApiKey)  # find_delegation_violation
        return frozenset({key.consumer})

    def _principals(self, kind: str, actor: str, body: Command) -> frozenset[str]:
        field_name = OWNER_KINDS.get(kind)
        if field_name is None:
            return frozenset({actor})
        target = self.aggregates.get(getattr(body, field_name))
        owner = getattr(target, "owner", None)
        if target is None or actor not in (owner, target.id):
            return frozenset({actor, "\0not-owner"})
        return frozenset({actor, owner or actor})

    def _check_event(
        self, record: Record, command: _Command, event: Any, data: dict[str, Any]
    ) -> None:
        if abs(data.get("at_us", 0) * 1000 - command.issued_at_ns) > FRESHNESS_WINDOW_NS:
            self._fail(record, COMMAND_SIGNATURE, "executed outside the envelope's time window")
        if "\0not-owner" in command.principals:
            self._fail(record, AUTHORIZATION, f"{command.actor} does not own its {command.kind}")
        operators = None
        entry = self._policy_entry(command.position)
        if entry is not None:
            operators = entry[1]
        elif command.kind in OPERATOR_KINDS:
            self._deferred_operators.setdefault(command.actor, (command.position, command.kind))
        violation = find_violation(
            command.kind,
            command.actor,
            record.stream_type,
            record.stream_id,
            record.event_type,
            data,
            operators=operators,
            principals=command.principals,
        )
        if violation is None:  # issue 16, item 5: the log key seals, the authority mints
            violation = find_operator_key_violation(
                self._policy_at(command.position),
                command.kind,
                command.actor,
                record.stream_type,
                record.stream_id,
                record.event_type,
                data,
            )
        if violation is not None:
            self._fail(record, AUTHORIZATION, violation)
        self._check_amounts(record, command, data)
        self.counts[AUTHORIZATION] += 1
        self._check_claims(record, command, event, data)
        if record.stream_type == "node" and event is not None:
            self._check_attestation(record, command, event)
        if record.stream_type == ACCOUNT_STREAM_TYPE:
            if record.event_type in HOLD_CLOSINGS:
                account = self.aggregates.get(record.stream_id)
                transfer_id = data.get("transfer_id")
                if transfer_id in getattr(account, "closed_holds", ()):
                    self._fail(record, LEDGER_INVARIANTS, f"hold {transfer_id} closed twice")
            return
        key = (record.stream_type, record.event_type)
        if key in DRAW_EVENTS or record.stream_type == Beacon.STREAM_TYPE:
            self._check_beacon(record, command, event, data)
        if key in VERDICT_EVENTS:
            self._check_verdict(record, command, event)
        elif key in DECISION_EVENTS and _is_quorum_decision(record, command):
            self._check_certificate(record, command, event, passed=DECISION_EVENTS[key])
            if record.stream_type == "job":
                subject = self._voted_subject(record, QUORUM_CERTIFICATE)
                signers = compute_certificate_signers(event.certificate, subject.validators)
                pass_votes = tuple(
                    (v, subject.verdicts[v].signature)
                    for v in subject.validators
                    if v in subject.verdicts and subject.verdicts[v].passed
                )
                command.decided[record.stream_id] = Decided(
                    DECISION_EVENTS[key], signers, pass_votes, getattr(subject, "price", 0)
                )
        elif key == JOB_SUBMITTED:
            self._check_submission(record, command, event)
        elif key in (DECISION_RECORDED, FRAUD_PROVEN):
            self._check_fraud_rules(record, command, event)
        elif record.stream_type == "log":
            self._check_log_event(record, command, event)
        elif record.stream_type == NETWORK_STREAM_TYPE:
            self._check_network_event(record, command, event)
        elif key == ("node", "NodeSlashed") and not event.evidence:
            self._fail(record, LEDGER_INVARIANTS, "a slash cites no evidence")
        elif key in STAKE_BONDED_EVENTS:
            self._check_bond(record, command, event)
        elif key == VALIDATOR_SLASHED:
            violation = find_slash_violation(
                self.aggregates.get(record.stream_id), event.evidence_key
            )
            if violation is None and self._is_fraud_rule_in_force(record.position):
                violation = find_fraud_slash_violation(
                    record.stream_id, event.evidence_key, command.proven
                )
            if violation is not None:
                self._fail(record, LEDGER_INVARIANTS, violation)
        elif key == ("validator", "Registered") and self.options.verify_proofs:
            if not bls.pop_verify(event.bls_public_key, event.proof_of_possession):
                self._fail(record, STORED_PROOFS, "proof of possession does not verify")
            self.counts[STORED_PROOFS] += 1

    def _check_beacon(
        self, record: Record, command: _Command, event: Any, data: dict[str, Any]
    ) -> None:
        """Rules v2: epochs, contributions, closings and every draw as the beacon's rules
        give them (``validator.audit_beacon``)."""
        policy = self._policy_at(command.position)
        if not is_beacon_rule_in_force(policy):
            return
        assert policy is not None  # is_beacon_rule_in_force
        key = (record.stream_type, record.event_type)
        found = self.aggregates.get(BEACON_STREAM_ID)
        beacon = found if isinstance(found, Beacon) else None
        at_ns = data.get("at_us", 0) * 1000
        violation = None
        if key == EPOCH_OPENED:
            members = self.aggregates.get(Directory.stream_id("validators"))
            expected = compute_snapshot(
                list(getattr(members, "members", ())), self.aggregates, policy
            )
            violation = find_opening_violation(
                event, beacon=beacon, expected=expected, at_ns=at_ns, policy=policy
            )
        elif key == CONTRIBUTED:
            validator = self.aggregates.get(event.validator_id)
            violation = find_contribution_violation(
                event,
                beacon=beacon,
                bls_key=getattr(validator, "bls_public_key", b""),
                verify_signatures=self.options.verify_signatures,
            )
        elif key == EPOCH_CLOSED:
            violation = find_closing_violation(event, beacon=beacon, at_ns=at_ns)
            if violation is None and beacon is not None and beacon.open_epoch is not None:
                command.closed_epoch = ClosedEpoch(beacon.open_epoch, event.value)
        elif key in DRAW_EVENTS:
            subject = self.aggregates.get(record.stream_id)
            violation = find_draw_violation(
                event,
                subject=subject if isinstance(subject, VotedAggregate) else None,
                purpose=DRAW_EVENTS[key],
                closed=command.closed_epoch,
                aggregates=self.aggregates,
            )
        else:
            return
        if violation is not None:
            self._fail(record, BEACON, violation)
        self.counts[BEACON] += 1

    def _check_claims(
        self, record: Record, command: _Command, event: Any, data: dict[str, Any]
    ) -> None:
        """Claims, unbonds and stake takes under the rules of issue 14 (``audit_claims``)."""
        policy = self._policy_at(command.position)
        if policy is None or policy.rules_version < CLAIM_RULES_VERSION:
            return
        if event is None:
            if record.event_type == "Credited":
                command.claims.note_credit(record.stream_id, data)
            return
        violation = command.claims.check_event(
            (record.stream_type, record.event_type),
            self.aggregates.get(record.stream_id),
            event,
            self.aggregates,
            policy,
        )
        if violation is not None:
            self._fail(record, LEDGER_INVARIANTS, violation)

    def _check_reputation(
        self, record: Record, command: _Command, event: Any, data: dict[str, Any]
    ) -> None:
        """Rules v3: liveness epochs, released claims' outcomes, reputation and the claim
        order it gives (``validator.audit_reputation``)."""
        policy = self._policy_at(command.position)
        probers: tuple[Any, ...] = ()
        if record.event_type == "LivenessEpochOpened" and policy:
            members = self.aggregates.get(Directory.stream_id("validators"))
            probers = compute_probers_snapshot(
                list(getattr(members, "members", ())), self.aggregates, policy
            )
        violation = self.reputation.check_event(
            record,
            event,
            data,
            kind=command.kind,
            aggregates=self.aggregates,
            policy=policy,
            expected_probers=probers,
        )
        if violation is not None:
            self._fail(record, REPUTATION, violation)
        if policy is not None and policy.rules_version >= RULES_V3:
            self.counts[REPUTATION] += 1

    def _check_attestation(self, record: Record, command: _Command, event: Any) -> None:
        """Rules v3: hardware attestation (``validator.audit_attestation``)."""
        policy = self._policy_at(command.position)
        if not is_attestation_rule_in_force(policy):
            return
        assert policy is not None  # is_attestation_rule_in_force
        facts = CommandFacts(command.kind, command.actor, command.body, policy)
        violation = command.attestation.check_event(
            record.event_type, self.aggregates.get(record.stream_id), event, facts, self.aggregates
        )
        if violation is not None:
            self._fail(record, LEDGER_INVARIANTS, violation)

    def _is_fraud_rule_in_force(self, position: int) -> bool:
        policy = self._policy_at(position)
        return policy is not None and policy.rules_version > RULES_V1

    def _check_fraud_rules(self, record: Record, command: _Command, event: Any) -> None:
        """Validators paid for every decided job; fraud proofs that hold (audit_fraud)."""
        if not self._is_fraud_rule_in_force(record.position):
            return
        if record.event_type == "DecisionRecorded":
            command.recorded_decisions.add(event.job_id)
            owners = {v: str(getattr(self.aggregates.get(v), "owner", "")) for v in event.signers}
            violation = find_decision_violation(
                event,
                decided=command.decided,
                owners=owners,
                credits=command.credits,
                policy=self.rules.at(record.position),
            )
            if violation is not None:
                self._fail(record, LEDGER_INVARIANTS, violation)
            return
        decision = self.aggregates.get(record.stream_id)
        job = self.aggregates.get(getattr(decision, "job_id", ""))
        violation = find_fraud_violation(
            event, decision=decision, job=job, kind=command.kind, actor=command.actor
        )
        if violation is not None:
            self._fail(record, FRAUD_PROOF, violation)
        voters = tuple(v.validator_id for v in getattr(decision, "pass_votes", ()))
        command.proven[getattr(decision, "evidence_key", "")] = voters
        self.counts[FRAUD_PROOF] += 1

    def _check_bond(self, record: Record, command: _Command, event: Any) -> None:
        violation = find_bond_violation(
            command.actor,
            self.aggregates.get(record.stream_id),
            event.funded_by,
            is_owner_rule_in_force=self._is_owner_bond_rule_in_force,
            kind=command.kind,
        )
        if violation is not None:
            self._fail(record, AUTHORIZATION, violation)
        self._is_owner_bond_rule_in_force |= bool(event.funded_by)

    def _check_amounts(self, record: Record, command: _Command, data: dict[str, Any]) -> None:
        if record.stream_id != BOUNDARY_ACCOUNT or record.event_type not in ("Debited", "Credited"):
            return
        expected = getattr(command.body, "amount", None)
        if data.get("amount") != expected:
            self._fail(
                record,
                AUTHORIZATION,
                f"{record.event_type} {data.get('amount')} but the signed {command.kind} "
                f"says {expected}",
            )

    def _check_verdict(self, record: Record, command: _Command, event: Any) -> None:
        subject = self._voted_subject(record, VERDICT)
        if command.actor not in subject.validators:
            self._fail(record, VERDICT, f"{command.actor} is not assigned to {record.stream_id}")
        body = command.body
        verdict = event.verdict
        signed = (getattr(body, "passed", None), getattr(body, "reason", None))
        if (verdict.passed, verdict.reason) != signed or verdict.signature != getattr(
            body, "signature", None
        ):
            self._fail(record, VERDICT, "the recorded verdict is not the one the validator signed")
        if self.options.verify_signatures:
            validator = self.aggregates.get(command.actor)
            key = getattr(validator, "bls_public_key", b"")
            if not bls.verify(key, _verdict_message(subject, verdict.passed), verdict.signature):
                self._fail(record, VERDICT, "the verdict's BLS signature does not verify")
        self.counts[VERDICT] += 1

    def _check_certificate(
        self, record: Record, command: _Command, event: Any, *, passed: bool
    ) -> None:
        subject = self._voted_subject(record, QUORUM_CERTIFICATE)
        try:
            qc = decode_qc(event.certificate)
        except msgspec.MsgspecError as exc:
            self._fail(record, QUORUM_CERTIFICATE, f"certificate does not decode: {exc}")
        if qc.message != _verdict_message(subject, passed):
            self._fail(record, QUORUM_CERTIFICATE, "certificate is over another verdict")
        if self.options.verify_signatures:
            validators = subject.validators
            keys = [getattr(self.aggregates.get(v), "bls_public_key", b"") for v in validators]
            # The signers are assigned validators and really signed; whether they are a
            # quorum is checked below (rules v2) from the round's recorded weights.
            if not verify_qc(keys, qc, CERTIFICATE_SIGNERS_MIN):
                self._fail(record, QUORUM_CERTIFICATE, "certificate does not verify")
        self._check_thresholds(record, command, subject, qc)
        self.counts[QUORUM_CERTIFICATE] += 1

    def _check_thresholds(
        self, record: Record, command: _Command, subject: VotedAggregate, qc: Any
    ) -> None:
        """Rules v2: the signers hold 2/3 of the drawn stake, are enough, and none is owned
        by the job's provider (``validator.audit_quorum``)."""
        policy = self._policy_at(command.position)
        verdict_round = subject.current_round
        if not is_quorum_rule_in_force(policy) or verdict_round is None:
            return
        assert policy is not None  # is_quorum_rule_in_force
        signers = signer_indices(qc, len(verdict_round.validators))
        if signers is None:
            raise AuditFailed(
                record.position, QUORUM_CERTIFICATE, "the certificate's signer bitmap is malformed"
            )
        violation = find_threshold_violation(
            policy,
            verdict_round,
            signers,
            owners=get_owners(self.aggregates, verdict_round.validators),
            provider=subject.provider if isinstance(subject, Job) else "",
        )
        if violation is not None:
            self._fail(record, QUORUM_CERTIFICATE, violation)

    def _check_submission(self, record: Record, command: _Command, event: Any) -> None:
        """Rules v2: the redundancy minimum (a quorum threshold) and no zk-prove job on
        ``setup_seed`` keys unless the policy allows them (an unauthorized submission)."""
        policy = self._policy_at(command.position)
        if not is_quorum_rule_in_force(policy):
            return
        assert policy is not None  # is_quorum_rule_in_force
        violation = find_redundancy_violation(policy, event.redundancy)
        if violation is not None:
            self._fail(record, QUORUM_CERTIFICATE, violation)
        if is_insecure_setup(event.workload) and not policy.insecure_setups_allowed:
            self._fail(
                record,
                AUTHORIZATION,
                "a zk-prove job on setup_seed keys under a policy without insecure_setups_allowed",
            )

    def _policy_at(self, position: int) -> LedgerPolicy | None:
        """The policy governing ``position``; None before a late genesis (a store written
        before rules were recorded, so before issue 14's rules)."""
        found = self._policy_entry(position)
        return None if found is None else found[0]

    def _policy_entry(self, position: int) -> tuple[LedgerPolicy, frozenset[str]] | None:
        # Asked several times for every record, mostly at one command's position: kept until
        # the position or the rules (their version) change.
        if not self.rules.has_genesis:
            return None
        key = (position, self.rules.version)
        if self._policy_key != key:
            policy = self.rules.at(position)
            self._policy_key, self._policy_found = key, (policy, frozenset(policy.operators))
        return self._policy_found

    def _voted_subject(self, record: Record, check: str) -> VotedAggregate:
        """The job or node whose open verdict round ``record`` acts in."""
        subject = self.aggregates.get(record.stream_id)
        if isinstance(subject, VotedAggregate) and subject.get_open_round() is not None:
            return subject
        return self._fail(record, check, f"no verdict round is open on {record.stream_id}")

    def _check_log_event(self, record: Record, command: _Command, event: Any) -> None:
        if record.event_type == "TreeHeadSigned":
            self._check_tree_head(record, command, event)
            return
        if record.event_type not in ("WitnessCosigned", "LogAnchored"):
            return
        check = WITNESS if record.event_type == "WitnessCosigned" else ANCHOR
        if self.log.heads.get(event.size) != event.root:
            self._fail(record, check, f"no signed tree head of size {event.size} with this root")
        if check == ANCHOR:
            self.log.anchors.append(
                AnchorClaim(
                    record.position, event.size, event.root, event.chain_signature, event.slot
                )
            )
        else:
            validator = self.aggregates.get(event.validator_id)
            key = getattr(validator, "bls_public_key", b"")
            if self.options.verify_signatures and not bls.verify(
                key, compute_witness_message(event.size, event.root), event.signature
            ):
                self._fail(record, WITNESS, f"co-signature of {event.validator_id} is invalid")
            policy = self._policy_at(record.position) or LedgerPolicy()
            is_staked = isinstance(validator, Validator) and validator.is_active(policy)
            self.history.note_cosignature(event.size, key, is_staked=is_staked)
        self.log.cosignatures += check == WITNESS
        self.counts[check] += 1

    def _check_network_event(self, record: Record, command: _Command, event: Any) -> None:
        """A rules record says what its operator signed; the genesis comes once, names its
        signer, and is the store's next record; the rules then govern from their position."""
        body: Any = command.body
        if record.event_type == "GenesisDeclared":
            self._check_genesis_record(record, command, event)
        elif record.event_type == "PolicyChanged":
            if event.policy != strip_operators(body.policy) or body.policy.operators:
                self._fail(record, NETWORK_RULES, "the recorded policy is not the signed one")
        elif record.event_type == "OperatorsChanged" and list(event.operators) != list(
            body.operators
        ):
            self._fail(record, NETWORK_RULES, "the recorded operators are not the signed ones")
        try:
            self.rules.add(record)
        except (ValueError, TypeError) as exc:
            self._fail(record, NETWORK_RULES, f"the rules do not apply: {exc}")
        self.counts[NETWORK_RULES] += 1

    def _check_genesis_record(self, record: Record, command: _Command, event: Any) -> None:
        body: Any = command.body
        if self.rules.has_genesis:
            self._fail(
                record,
                NETWORK_RULES,
                f"a second genesis (first at {self.rules.genesis_position})",
            )
        if event.prior_records != record.position - 1:
            self._fail(
                record,
                NETWORK_RULES,
                f"the genesis declares {event.prior_records} prior records at position "
                f"{record.position}",
            )
        if (
            list(event.operators) != list(body.operators)
            or event.policy != strip_operators(body.policy)
            or body.policy.operators
            or event.prior_records != body.prior_records
        ):
            self._fail(record, NETWORK_RULES, "the recorded genesis is not the signed one")
        if command.actor not in event.operators:
            self._fail(record, NETWORK_RULES, f"the genesis signer {command.actor} is no operator")
        trusted = self.options.trusted_operators
        if trusted and command.actor not in trusted:
            self._fail(
                record, NETWORK_RULES, f"the genesis signer {command.actor} is not a trusted key"
            )
        self.genesis_signer = command.actor
        for actor, (position, kind) in sorted(
            self._deferred_operators.items(), key=lambda item: item[1][0]
        ):
            if actor not in event.operators:
                raise AuditFailed(
                    position,
                    AUTHORIZATION,
                    f"{kind} is operator-only and {actor} is not an operator declared by the "
                    f"genesis at position {record.position}",
                )
        self._deferred_operators.clear()

    def _check_tree_head(self, record: Record, command: _Command, event: Any) -> None:
        size = event.size
        if not self.log.last_size < size < record.position:
            self._fail(
                record, TREE_HEAD, f"size {size} after {self.log.last_size} at {record.position}"
            )
        root = self.log.root_at(size)
        if root != event.root:
            self._fail(record, TREE_HEAD, f"root of the first {size} records is {root.hex()}")
        if self.options.verify_signatures:
            try:
                signer = decode_actor_id(command.actor)
            except IdentityError:
                signer = b""
            head = SignedTreeHead(
                size, event.root, event.tree_timestamp_ns, event.signer, event.signature
            )
            if event.signer != signer or not verify_tree_head(head, signer):
                self._fail(record, TREE_HEAD, "tree head signature is not the sealer's")
        reason = self.log.check_proofs(self.log.last_size, size, root)
        if reason is not None:
            self._fail(record, STORED_PROOFS, reason)
        self.log.heads[size] = root
        self.log.last_size = size
        self.history.note_head(size, root, record.position)
        self.counts[TREE_HEAD] += 1

    def _apply(self, record: Record, event: Any) -> None:
        previous = self.aggregates.get(record.stream_id)
        try:
            aggregate = event.mutate(previous)
        except (KeyError, ValueError, TypeError, AttributeError, AssertionError) as exc:
            self._fail(record, AGGREGATE_REPLAY, f"{record.event_type} does not apply: {exc!r}")
        self.aggregates[record.stream_id] = aggregate
        self.last_positions[record.stream_id] = record.position
        self.counts[AGGREGATE_REPLAY] += 1

    def _apply_account(self, record: Record, command: _Command, data: dict[str, Any]) -> None:
        stream_id = record.stream_id
        previous = self.aggregates.get(stream_id)
        assert previous is None or isinstance(previous, AccountState)  # stream types are fixed
        before = previous.balance if previous is not None else 0
        try:
            account = apply_account_event(
                previous, stream_id, record.version, record.event_type, data
            )
        except (KeyError, ValueError, TypeError) as exc:
            self._fail(record, AGGREGATE_REPLAY, f"{record.event_type} does not apply: {exc!r}")
        self.aggregates[stream_id] = account
        self.last_positions[stream_id] = record.position
        balance = account.credits_posted - account.debits_posted
        self._money += balance - before
        command.touched_accounts.add(stream_id)
        if record.event_type == "Credited":
            command.credits[stream_id] = command.credits.get(stream_id, 0) + data.get("amount", 0)
        history = self.balance_history.get(stream_id)
        if history is None:
            history = self.balance_history[stream_id] = []
        history.append((record.position, balance, account.debits_pending, account.credits_pending))
        self.counts[AGGREGATE_REPLAY] += 1

    def _fail(self, record: Record, check: str, message: str) -> Any:
        raise AuditFailed(record.position, check, message)


def _verdict_message(subject: VotedAggregate, passed: bool) -> bytes:
    """What a verdict (and a quorum certificate) on ``subject``'s current round signs."""
    kind = ROUND_KINDS[subject.SUBJECT_KIND]
    return kind.compute_message(
        subject.id, subject.round_nonce(), subject.round_commitment(), passed
    )


def _is_quorum_decision(record: Record, command: _Command) -> bool:
    """A job is only ever decided by its validators; an attestation may also be decided by
    an operator (``node.attestation.decide``) or given up without a quorum, with no
    certificate to check."""
    return record.stream_type == "job" or command.kind in QUORUM_DECIDED_KINDS

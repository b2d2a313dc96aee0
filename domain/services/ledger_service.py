"""The command bus: verify a signed envelope, run its handler, append, retry on conflict.

Idempotent by command id: the id is derived from (actor, nonce), so a repeated envelope
returns the first outcome and writes nothing, and a *different* envelope that reuses a nonce
is rejected. The full envelope is stored as metadata with the events it caused, so the audit
tool can re-check who authorised every change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from domain import commands as c
from domain.errors import Rejection, RejectionCode, VersionConflict
from domain.network import NETWORK_STREAM_ID, NetworkRules
from domain.policy import LedgerPolicy
from domain.ports import EventStore
from domain.services import door, equivocation, fraud, rounds
from domain.services import handlers_api_keys as api_keys
from domain.services import handlers_beacon as beacon
from domain.services import handlers_completions as completions
from domain.services import handlers_jobs as jobs
from domain.services import handlers_keys as keys
from domain.services import handlers_liveness as liveness
from domain.services import handlers_log as log
from domain.services import handlers_models as models
from domain.services import handlers_network as network
from domain.services import handlers_nodes as nodes
from domain.services import handlers_objects as objects
from domain.services.context import CommandContext
from domain.services.envelope_rules import check_envelope_network
from domain.services.network_rules import RulesCache
from domain.services.unit_of_work import UnitOfWork
from proofs.encoding import encode_canonical
from proofs.envelope import CommandEnvelope, verify_envelope

COMMAND_RETRIES_MAX = 16

Handler = Callable[[UnitOfWork, Any, CommandContext], Awaitable[str]]

HANDLERS: dict[type[c.Command], Handler] = {
    c.RegisterNode: nodes.handle_register_node,
    c.BondStake: nodes.handle_bond_stake,
    c.RequestUnbond: nodes.handle_request_unbond,
    c.WithdrawStake: nodes.handle_withdraw_stake,
    c.RequestAttestationChallenge: nodes.handle_request_challenge,
    c.SubmitAttestation: nodes.handle_submit_attestation,
    c.DecideAttestation: nodes.handle_decide_attestation,
    c.RechallengeNode: nodes.handle_rechallenge,
    c.UpdateInventory: nodes.handle_update_inventory,
    c.UnjailNode: nodes.handle_unjail,
    c.DeregisterNode: nodes.handle_deregister,
    c.RegisterValidator: nodes.handle_register_validator,
    c.Deposit: jobs.handle_deposit,
    c.Withdraw: jobs.handle_withdraw,
    c.SubmitJob: jobs.handle_submit_job,
    c.ClaimJob: jobs.handle_claim_job,
    c.CommitResult: jobs.handle_commit_result,
    c.CommitVerdict: rounds.handle_commit_verdict,
    c.RecordVerdict: rounds.handle_record_verdict,
    c.CommitAttestationVerdict: rounds.handle_commit_verdict,
    c.RecordAttestationVerdict: rounds.handle_record_verdict,
    c.ExpireAttestation: rounds.handle_expire_attestation,
    c.ReportEquivocation: equivocation.handle_report_equivocation,
    c.ExpireJob: jobs.handle_expire_job,
    c.CancelJob: door.handle_cancel_job,
    c.ReleaseJob: jobs.handle_release_job,
    c.SealTreeHead: log.handle_seal,
    c.CosignTreeHead: log.handle_cosign,
    c.AnchorTreeHead: log.handle_anchor,
    c.RecordWithdrawalSubmitted: log.handle_withdrawal_submit,
    c.ConfirmWithdrawal: log.handle_withdrawal_confirm,
    c.VoidWithdrawal: log.handle_withdrawal_void,
    c.DeclareGenesis: network.handle_declare_genesis,
    c.ChangePolicy: network.handle_change_policy,
    c.ChangeOperators: network.handle_change_operators,
    c.ProveFraud: fraud.handle_prove_fraud,
    c.SealCanary: fraud.handle_seal_canary,
    c.RevealCanary: fraud.handle_reveal_canary,
    c.ContributeBeacon: beacon.handle_contribute_beacon,
    c.CloseBeacon: beacon.handle_close_beacon,
    # issue 15: liveness epochs
    c.ReportLiveness: liveness.handle_report_liveness,
    c.CloseLiveness: liveness.handle_close_liveness,
    # issue 16, item 6: object-stored records
    c.RecordObjectStored: objects.handle_record_object_stored,
    # issue 17, item 2: encryption keys and job key releases
    c.RegisterEncryptionKey: keys.handle_register_encryption_key,
    c.ReleaseJobKey: keys.handle_release_job_key,
    # issue 18, item 2: registered language models
    c.RegisterModel: models.handle_register_model,
    # issue 18, item 1: delegated API keys
    c.CreateApiKey: api_keys.handle_create_api_key,
    c.RevokeApiKey: api_keys.handle_revoke_api_key,
    # issue 18, items 3-4: LLM completions
    c.AdvertiseModels: completions.handle_advertise_models,
    c.DeclareCheckModels: completions.handle_declare_check_models,
    c.OpenCompletion: completions.handle_open_completion,
    c.CommitCompletion: completions.handle_commit_completion,
    c.AbortCompletion: completions.handle_abort_completion,
    c.CommitCompletionVerdict: rounds.handle_commit_verdict,
    c.RecordCompletionVerdict: rounds.handle_record_verdict,
    c.ExpireCompletion: completions.handle_expire_completion,
}


class CommandResult(msgspec.Struct, frozen=True):
    """What a command did: the aggregate it concerned and the log positions it wrote."""

    command_id: str
    kind: str
    subject: str
    first_position: int
    last_position: int
    replayed: bool = False


class CommandMetadata(msgspec.Struct, frozen=True):
    """What the store keeps beside a command's events: the signed envelope, its digest, the
    aggregate it concerned and the clock it was decided at (``now_ns``; None in records written
    before issue 16), so the audit can run the command again exactly as it ran
    (``validator.audit_reexec``)."""

    envelope: CommandEnvelope
    digest: str
    subject: str
    now_ns: int | None = None


def compute_command_id(actor: str, nonce: str) -> str:
    return hashlib.sha256(f"{actor}\n{nonce}".encode()).hexdigest()


class LedgerService:
    """Executes signed commands against an EventStore, under the rules its log records.

    The operators and policy come from the store's network stream (``domain.network``),
    never from settings: before the genesis record only ``network.genesis`` runs
    (``genesis_missing``), and each command runs under the rules in force when it runs.
    """

    def __init__(self, store: EventStore, *, retries_max: int = COMMAND_RETRIES_MAX) -> None:
        self.store = store
        self.retries_max = retries_max
        self.rules = RulesCache(store)
        # Directory streams seen to exist (``UnitOfWork.add_to_directory``): a handful.
        self._known_directories: set[str] = set()

    async def get_rules(self) -> NetworkRules:
        """The network's rules as the log holds them now."""
        return await self.rules.get()

    async def get_policy(self) -> LedgerPolicy:
        """The policy in force now (with its operators); Rejection before the genesis."""
        return (await self.rules.get()).current

    async def get_network_id(self) -> str:
        """The network id envelopes are signed for (issue 16, item 9); ``""`` while the
        ledger has no genesis or names no network."""
        rules = await self.rules.get()
        return rules.current.network_id if rules.has_genesis else ""

    async def execute(
        self,
        envelope: CommandEnvelope,
        *,
        now_ns: int,
        admit: Callable[[CommandEnvelope], Awaitable[None]] | None = None,
    ) -> CommandResult:
        """Run one envelope. Raises EnvelopeError, Rejection or StoreError; on any of them
        nothing was written.

        The envelope is verified here and nowhere else. ``admit`` (the API's route checks)
        is called with it once its signature verified, before anything is read: it refuses
        by raising, so an unauthenticated request is never looked at further."""
        verify_envelope(envelope, now_ns=now_ns)
        if admit is not None:
            await admit(envelope)
        return await self.execute_verified(envelope, now_ns=now_ns)

    async def execute_verified(self, envelope: CommandEnvelope, *, now_ns: int) -> CommandResult:
        """Run an envelope whose signature and freshness the caller has checked: ``execute``
        after ``verify_envelope``, and the audit's re-execution of a recorded command at its
        recorded clock (``validator.audit_reexec``), so both run the one code path."""
        command = c.decode_command(envelope.kind, envelope.body)
        rules = await self.rules.get()
        check_envelope_network(envelope, command, rules)
        command_id = compute_command_id(envelope.actor, envelope.nonce)
        previous = await self._find_previous(command_id, envelope)
        if previous is not None:
            return previous
        handler = HANDLERS[type(command)]
        for attempt in range(self.retries_max):
            if attempt:
                # The first attempt decides on the rules just read (the commit checks that
                # the network stream is still at their version); a retry reads them again.
                rules = await self.rules.get()
            ctx = CommandContext(
                actor=envelope.actor,
                command_id=command_id,
                now_ns=now_ns,
                policy=select_policy(rules, command),
            )
            uow = UnitOfWork(
                self.store,
                now_ns=now_ns,
                read_versions={NETWORK_STREAM_ID: rules.version},
                known_directories=self._known_directories,
            )
            try:
                subject = await handler(uow, command, ctx)
            except Rejection:
                # Streams are read one by one: a command that committed in between can leave
                # this one with a torn view (e.g. a job not yet settled, its hold already
                # posted). Reject on reads that still stand, or on the last attempt (never
                # turn a rejection into contention); else decide again.
                if attempt + 1 < self.retries_max and await uow.has_changed_since_read():
                    continue
                raise
            metadata = encode_canonical(
                CommandMetadata(
                    envelope=envelope,
                    digest=envelope.digest().hex(),
                    subject=subject,
                    now_ns=now_ns,
                )
            )
            try:
                outcome = await uow.commit(command_id=command_id, metadata=metadata)
            except VersionConflict:
                continue
            if outcome is None:
                raise AssertionError(f"handler for {envelope.kind} decided nothing")
            return CommandResult(
                command_id=command_id,
                kind=envelope.kind,
                subject=subject,
                first_position=outcome.first_position,
                last_position=outcome.last_position,
            )
        raise Rejection(
            f"{envelope.kind} conflicted {self.retries_max} times with concurrent "
            "commands; retry later",
            code=RejectionCode.TOO_MUCH_CONTENTION,
        )

    async def _find_previous(
        self, command_id: str, envelope: CommandEnvelope
    ) -> CommandResult | None:
        outcome = await self.store.find_command(command_id)
        if outcome is None:
            return None
        first = (await self.store.read_all(outcome.first_position, 1))[0]
        metadata = msgspec.json.decode(first.metadata, type=CommandMetadata)
        if metadata.digest != envelope.digest().hex():
            raise Rejection(
                f"nonce {envelope.nonce!r} was already used by another command of "
                f"{envelope.actor}; sign with a fresh nonce",
                code=RejectionCode.NONCE_ALREADY_USED,
            )
        return CommandResult(
            command_id=command_id,
            kind=envelope.kind,
            subject=metadata.subject,
            first_position=outcome.first_position,
            last_position=outcome.last_position,
            replayed=True,
        )


def select_policy(rules: NetworkRules, command: c.Command) -> LedgerPolicy:
    """The policy ``command`` runs under: the one in force, or none yet for the genesis."""
    if isinstance(command, c.DeclareGenesis) and not rules.has_genesis:
        return LedgerPolicy()  # nothing is in force yet; the handler checks the genesis
    return rules.current

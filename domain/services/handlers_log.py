"""Handlers for the transparency log and the bridge's records (Solana deposits, payouts).

``log.seal`` (an operator, the sealer), ``log.cosign`` (a registered validator, as witness),
``log.anchor`` (an operator, the bridge); ``withdrawal.submit``, ``withdrawal.confirm`` and
``withdrawal.void`` (an operator, the bridge's withdrawal processor).
"""

from __future__ import annotations

import msgspec

from domain import commands as c
from domain.errors import NotFound, Rejection, RejectionCode
from domain.invariants import InvariantBroken
from domain.ledger import BOUNDARY_ACCOUNT, transfer, user_account
from domain.log import LOG_STREAM_ID, Log, compute_witness_message
from domain.operator_powers import check_log_key
from domain.services.context import CommandContext
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator
from domain.withdrawal import Withdrawal, withdrawal_stream_id
from proofs import bls
from proofs.envelope import CommandEnvelope
from proofs.identity import decode_actor_id
from proofs.tree_head import SignedTreeHead, verify_tree_head

WITHDRAW_KIND = "account.withdraw"


class _StoredCommand(msgspec.Struct, frozen=True):
    envelope: CommandEnvelope


async def handle_seal(uow: UnitOfWork, cmd: c.SealTreeHead, ctx: CommandContext) -> str:
    ctx.require_operator()
    check_log_key(ctx.policy, ctx.actor)  # issue 16, item 5
    signer = decode_actor_id(ctx.actor)
    head = SignedTreeHead(
        size=cmd.size,
        root=cmd.root,
        timestamp_ns=cmd.tree_timestamp_ns,
        signer=signer,
        signature=cmd.signature,
    )
    if not verify_tree_head(head, signer):
        raise Rejection(
            "the tree head signature does not verify for the actor's key",
            code=RejectionCode.TREE_HEAD_SIGNATURE_INVALID,
        )
    log_head = await uow.store.head()
    if cmd.size > log_head.position:
        raise Rejection(
            f"tree size {cmd.size} is beyond the log's {log_head.position} records",
            code=RejectionCode.TREE_SIZE_BEYOND_LOG,
        )
    log = await _log(uow)
    log.sign_head(
        size=cmd.size,
        root=cmd.root,
        tree_timestamp_ns=cmd.tree_timestamp_ns,
        signer=signer,
        signature=cmd.signature,
        now_ns=ctx.now_ns,
    )
    return log.id


async def handle_cosign(uow: UnitOfWork, cmd: c.CosignTreeHead, ctx: CommandContext) -> str:
    validator = await uow.get(Validator, ctx.actor)
    if validator is None:
        raise NotFound(
            f"{ctx.actor} is not a registered validator", code=RejectionCode.VALIDATOR_NOT_FOUND
        )
    log = await uow.require(Log, LOG_STREAM_ID)
    head = log.require_head(cmd.size)
    message = compute_witness_message(head.size, head.root)
    if not bls.verify(validator.bls_public_key, message, cmd.signature):
        raise Rejection(
            "the witness co-signature does not verify for the validator's BLS key",
            code=RejectionCode.COSIGNATURE_INVALID,
        )
    log.cosign(size=cmd.size, validator_id=validator.id, signature=cmd.signature, now_ns=ctx.now_ns)
    return log.id


async def handle_anchor(uow: UnitOfWork, cmd: c.AnchorTreeHead, ctx: CommandContext) -> str:
    ctx.require_operator()
    log = await uow.require(Log, LOG_STREAM_ID)
    log.anchor(size=cmd.size, chain_signature=cmd.chain_signature, slot=cmd.slot, now_ns=ctx.now_ns)
    return log.id


async def handle_withdrawal_submit(
    uow: UnitOfWork, cmd: c.RecordWithdrawalSubmitted, ctx: CommandContext
) -> str:
    ctx.require_operator()
    withdrawal = await uow.get(Withdrawal, withdrawal_stream_id(cmd.withdrawal_id))
    if withdrawal is None:
        envelope = await _withdraw_envelope(uow, cmd.withdrawal_id)
        body = c.decode_command(envelope.kind, envelope.body)
        if not isinstance(body, c.Withdraw):
            raise InvariantBroken(f"{cmd.withdrawal_id} names a {envelope.kind}, not a withdrawal")
        withdrawal = Withdrawal.request(
            cmd.withdrawal_id,
            account_owner=envelope.actor,
            destination=body.destination or envelope.actor,
            amount=body.amount,
            now_ns=ctx.now_ns,
        )
        uow.add(withdrawal)
    withdrawal.submit(
        chain_signature=cmd.chain_signature,
        last_valid_block_height=cmd.last_valid_block_height,
        transaction=cmd.transaction,
        now_ns=ctx.now_ns,
    )
    return withdrawal.id


async def handle_withdrawal_confirm(
    uow: UnitOfWork, cmd: c.ConfirmWithdrawal, ctx: CommandContext
) -> str:
    ctx.require_operator()
    withdrawal = await uow.require(Withdrawal, withdrawal_stream_id(cmd.withdrawal_id))
    withdrawal.confirm(chain_signature=cmd.chain_signature, slot=cmd.slot, now_ns=ctx.now_ns)
    return withdrawal.id


async def handle_withdrawal_void(
    uow: UnitOfWork, cmd: c.VoidWithdrawal, ctx: CommandContext
) -> str:
    """Close a payout the chain refused for good and refund its owner (issue 16, item 7).
    The bridge voids only once every recorded attempt has expired unlanded; the audit checks
    on chain that none of them landed."""
    ctx.require_operator()
    withdrawal = await uow.require(Withdrawal, withdrawal_stream_id(cmd.withdrawal_id))
    withdrawal.void(reason=cmd.reason, now_ns=ctx.now_ns)
    transfer(
        await uow.account(BOUNDARY_ACCOUNT),
        await uow.account(user_account(withdrawal.account_owner)),
        transfer_id=f"{ctx.command_id}:void",
        amount=withdrawal.amount,
        reason=f"withdrawal {cmd.withdrawal_id} voided: {cmd.reason}",
        now_ns=ctx.now_ns,
    )
    return withdrawal.id


async def _log(uow: UnitOfWork) -> Log:
    log = await uow.get(Log, LOG_STREAM_ID)
    if log is None:
        log = Log.start(now_ns=uow.now_ns)
        uow.add(log)
    return log


async def _withdraw_envelope(uow: UnitOfWork, withdrawal_id: str) -> CommandEnvelope:
    """The signed ``account.withdraw`` envelope behind a withdrawal id (its command id)."""
    outcome = await uow.store.find_command(withdrawal_id)
    if outcome is None:
        raise NotFound(f"no command {withdrawal_id}", code=RejectionCode.WITHDRAWAL_NOT_FOUND)
    first = (await uow.store.read_all(outcome.first_position, 1))[0]
    envelope = msgspec.json.decode(first.metadata, type=_StoredCommand).envelope
    if envelope.kind != WITHDRAW_KIND:
        raise NotFound(
            f"command {withdrawal_id} is a {envelope.kind}, not a withdrawal",
            code=RejectionCode.WITHDRAWAL_NOT_FOUND,
        )
    return envelope

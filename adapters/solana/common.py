"""What both Solana adapters share: transaction building, memo and transfer parsing, errors."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams

from domain.errors import ChainRefused, OperatingError
from domain.ports import ChainTransaction, ChainTransferLeg, IncomingTransfer

SYSTEM_TRANSFER_TAG = 2  # SystemInstruction::Transfer, little-endian u32
MEMO_BYTES_MAX = 566  # what fits in one transaction next to a transfer
MEMO_LOG_MARKER = "Program log: Memo (len "


TRANSIENT_ERROR_MARKERS = (
    "BlockhashNotFound",  # expired: signed anew
    "AccountNotFound",  # the fee payer (the treasury) holds nothing yet
    "InsufficientFundsForFee",
    "Custom(1)",  # the system program's ResultWithNegativeLamports: the treasury is short
    "AccountInUse",
    "WouldExceed",
    "ClusterMaintenance",
)
"""Transaction errors that say nothing about the payout itself (the treasury is short, the
blockhash expired, the cluster is busy): retried. Any other refusal is permanent."""


class ChainError(OperatingError):
    """The chain refused or could not be reached."""

    code = "chain_error"


def get_send_error(signature: str, error: str) -> OperatingError:
    """The error for a transaction the chain did not take: ``ChainRefused`` when it would
    refuse it again whatever happens (a payout below an unfunded address's rent), else
    ``ChainError`` (worth a retry)."""
    message = f"transaction {signature} failed: {error}"
    if any(marker in error for marker in TRANSIENT_ERROR_MARKERS):
        return ChainError(message)
    return ChainRefused(message)


def build_transaction(
    payer: Keypair, blockhash: Hash, memo: str, destination: Pubkey | None = None, amount: int = 0
) -> Transaction:
    """A signed transaction: an optional system transfer, then a memo signed by the payer."""
    encoded = memo.encode()
    if len(encoded) > MEMO_BYTES_MAX:
        raise ValueError(f"memo is {len(encoded)} bytes, the limit is {MEMO_BYTES_MAX}")
    instructions: list[Instruction] = []
    if destination is not None:
        instructions.append(
            transfer(
                TransferParams(from_pubkey=payer.pubkey(), to_pubkey=destination, lamports=amount)
            )
        )
    instructions.append(
        create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=payer.pubkey(), message=encoded))
    )
    message = Message.new_with_blockhash(instructions, payer.pubkey(), blockhash)
    return Transaction([payer], message, blockhash)


def parse_transaction(
    tx: Transaction | VersionedTransaction,
    slot: int,
    treasury: Pubkey,
    loaded: Sequence[Pubkey] = (),
) -> tuple[str, IncomingTransfer | None]:
    """The memo a transaction carries, and the transfer to ``treasury`` in it (if any).

    A v0 transaction's instructions may name accounts loaded from address lookup tables:
    ``loaded`` are those (the meta's writable then readonly addresses), after the static
    keys. An index past them all (a table the caller did not resolve) is skipped, never a
    crash."""
    keys = [*tx.message.account_keys, *loaded]
    memo, source, amount = "", "", 0
    for instruction in tx.message.instructions:
        accounts = list(instruction.accounts)
        if any(index >= len(keys) for index in (instruction.program_id_index, *accounts)):
            continue
        program = keys[instruction.program_id_index]
        data = bytes(instruction.data)
        if program == MEMO_PROGRAM_ID:
            memo = data.decode("utf-8", errors="replace")
        elif program == SYSTEM_PROGRAM_ID and len(data) == 12 and len(accounts) >= 2:
            (tag,) = struct.unpack_from("<I", data)
            if tag == SYSTEM_TRANSFER_TAG and keys[accounts[1]] == treasury:
                source = str(keys[accounts[0]])
                amount += struct.unpack_from("<Q", data, 4)[0]
    signature = str(tx.signatures[0])
    if not amount:
        return memo, None
    return memo, IncomingTransfer(
        signature=signature, slot=slot, source=source, amount=amount, memo=memo
    )


def decode_chain_transaction(
    tx: Transaction | VersionedTransaction,
    slot: int,
    loaded: Sequence[Pubkey] = (),
    *,
    finalized: bool = True,
    succeeded: bool = True,
) -> ChainTransaction:
    """The audit's view of a landed transaction: fee payer, memo and every system transfer
    (lookup-table accounts from ``loaded``; an index it cannot resolve is skipped)."""
    keys = [*tx.message.account_keys, *loaded]
    memo, legs = "", []
    for instruction in tx.message.instructions:
        accounts = list(instruction.accounts)
        if any(index >= len(keys) for index in (instruction.program_id_index, *accounts)):
            continue
        program, data = keys[instruction.program_id_index], bytes(instruction.data)
        if program == MEMO_PROGRAM_ID:
            memo = data.decode("utf-8", errors="replace")
        elif program == SYSTEM_PROGRAM_ID and len(data) == 12 and len(accounts) >= 2:
            (tag,) = struct.unpack_from("<I", data)
            if tag == SYSTEM_TRANSFER_TAG:
                (amount,) = struct.unpack_from("<Q", data, 4)
                legs.append(
                    ChainTransferLeg(str(keys[accounts[0]]), str(keys[accounts[1]]), amount)
                )
    return ChainTransaction(
        signature=str(tx.signatures[0]),
        slot=slot,
        fee_payer=str(keys[0]) if keys else "",
        memo=memo,
        transfers=tuple(legs),
        finalized=finalized,
        succeeded=succeeded,
    )


def memo_from_logs(logs: list[str]) -> str | None:
    """The memo text from a transaction's logs (the line after ``Memo (len N)``)."""
    for index, line in enumerate(logs):
        if not line.startswith(MEMO_LOG_MARKER):
            continue
        _, quoted, rest = line.partition('): "')
        if quoted:  # the memo program's own format: Memo (len N): "text"
            return rest.removesuffix('"')
        if index + 1 < len(logs):  # LiteSVM's: the text on the next line
            return logs[index + 1].removeprefix("Program log: ")
    return None

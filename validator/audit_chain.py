"""Money and anchors against the chain (issue 16, items 3 and 4's anchor scan).

During the replay (``ChainMoneyView.observe``, no IO): every credit across the boundary is
noted with the Solana transaction it names; under rules v4 a deposit without one, a
withdrawal below the minimum, a chain transaction credited twice, or a void that refunds
anything but the withdrawal's amount to its owner fails at its position. After the replay,
with a chain history (``check_money_on_chain``): each deposit's transaction must be on the
chain, final and successful, pay the credited amount to the treasury, and carry the memo
naming the credited account (else an unbacked mint); each confirmed payout must be on the
chain, from the treasury, pay the withdrawal's signed amount to its signed destination, with
its memo (else a diverted payout); no attempt of a voided withdrawal may have landed (paid and
refunded). ``scan_anchors`` reads the treasury's own memo history: every tree head anchored
there by the treasury must be a head of this log with the same root (else the log was
rewritten or truncated), and recorded in the log unless it is the newest (else its anchor
record was dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from domain.commands import Command, Deposit, VoidWithdrawal, Withdraw
from domain.ledger import BOUNDARY_ACCOUNT, user_account
from domain.log import ANCHOR_MEMO_PREFIX, decode_anchor_memo
from domain.policy import RULES_V4, LedgerPolicy
from domain.ports import ChainTransaction
from domain.records import Record
from domain.services.bridge_service import DEPOSIT_MEMO_PREFIX, WITHDRAWAL_MEMO_PREFIX
from validator.audit_log import LogView

CHAIN_MONEY = "chain_money"
ANCHOR = "anchor"


@runtime_checkable
class ChainHistory(Protocol):
    """What the audit reads of a chain: transactions by signature, an address's history."""

    async def get_transaction(self, signature: str) -> ChainTransaction | None: ...

    async def list_signatures(self, address: str) -> list[str]: ...


class ChainCheckFailed(Exception):
    """A record the chain contradicts (``validator.audit.AuditFailed`` is raised from it)."""

    def __init__(self, position: int, check: str, message: str) -> None:
        super().__init__(message)
        self.position, self.check, self.message = position, check, message


@dataclass(frozen=True)
class DepositClaim:
    position: int
    chain_reference: str
    owner: str
    amount: int


@dataclass
class WithdrawalFacts:
    """A withdrawal as its signed command made it, and what its payout records say."""

    position: int
    owner: str
    destination: str
    amount: int
    attempts: list[str] = field(default_factory=list)
    sent: tuple[str, int] | None = None
    voided_position: int = 0


@dataclass
class ChainMoneyView:
    """Every credit across the boundary and every payout, as the log records them."""

    deposits: list[DepositClaim] = field(default_factory=list)
    withdrawals: dict[str, WithdrawalFacts] = field(default_factory=dict)
    _references: dict[str, int] = field(default_factory=dict)

    def observe(
        self,
        record: Record,
        kind: str,
        body: Command,
        data: dict[str, Any],
        actor: str,
        policy: LedgerPolicy | None,
    ) -> str | None:
        """Note one record; why it breaks a money rule of its rules version, or None."""
        is_v4 = policy is not None and policy.rules_version >= RULES_V4
        amount = data.get("amount")
        if record.stream_type == "withdrawal":
            return self._observe_payout(record, data)
        if record.stream_id != BOUNDARY_ACCOUNT or type(amount) is not int:
            return self._observe_refund(record, kind, body, amount)
        if isinstance(body, Deposit) and record.event_type == "Debited":
            return self._observe_deposit(record, body, amount, is_v4=is_v4)
        if isinstance(body, Withdraw) and record.event_type == "Credited":
            if is_v4 and policy is not None and amount < policy.withdrawal_min:
                return f"a withdrawal of {amount} is below the minimum {policy.withdrawal_min}"
            destination = body.destination or actor
            self.withdrawals[record.command_id] = WithdrawalFacts(
                record.position, actor, destination, amount
            )
        return self._observe_refund(record, kind, body, amount)

    def _observe_deposit(
        self, record: Record, body: Deposit, amount: int, *, is_v4: bool
    ) -> str | None:
        reference = body.chain_reference
        if not reference:
            return "a deposit names no Solana transaction (rules v4)" if is_v4 else None
        first = self._references.setdefault(reference, record.position)
        if first != record.position:
            return f"chain transaction {reference} was credited already at position {first}"
        self.deposits.append(DepositClaim(record.position, reference, body.account_owner, amount))
        return None

    def _observe_payout(self, record: Record, data: dict[str, Any]) -> str | None:
        withdrawal_id = record.stream_id.removeprefix("withdrawal:")
        facts = self.withdrawals.get(withdrawal_id)
        if facts is None:
            return f"{record.stream_id} names no recorded account.withdraw"
        if record.event_type == "WithdrawalSubmitted":
            facts.attempts.append(str(data.get("chain_signature")))
        elif record.event_type == "WithdrawalSent":
            facts.sent = (str(data.get("chain_signature")), record.position)
        elif record.event_type == "WithdrawalVoided":
            facts.voided_position = record.position
        return None

    def _observe_refund(self, record: Record, kind: str, body: Command, amount: Any) -> str | None:
        if not isinstance(body, VoidWithdrawal) or record.stream_type != "account":
            return None
        if record.event_type not in ("Credited", "Debited"):
            return None
        facts = self.withdrawals.get(body.withdrawal_id)
        if facts is None:
            return f"{kind} refunds {body.withdrawal_id}, which is no recorded withdrawal"
        expected = BOUNDARY_ACCOUNT if record.event_type == "Debited" else user_account(facts.owner)
        if record.stream_id != expected or amount != facts.amount:
            return (
                f"the void of {body.withdrawal_id} moves {amount} on {record.stream_id}; it "
                f"refunds {facts.amount} to {user_account(facts.owner)}"
            )
        return None


async def check_money_on_chain(
    view: ChainMoneyView, chain: ChainHistory, treasury: str, warnings: list[str]
) -> int:
    """Every deposit and payout against the chain; the number checked. Raises
    ``ChainCheckFailed`` at the first the chain contradicts."""
    checked = 0
    for deposit in view.deposits:
        tx = await _require(chain, deposit.chain_reference, deposit.position, "deposit")
        problem = None
        if not tx.finalized:
            problem = "is not final"
        elif tx.get_amount(destination=treasury) != deposit.amount:
            problem = f"pays {tx.get_amount(destination=treasury)} to the treasury"
        elif tx.memo != DEPOSIT_MEMO_PREFIX + deposit.owner:
            problem = f"carries the memo {tx.memo!r}"
        if problem is not None:
            raise ChainCheckFailed(
                deposit.position,
                CHAIN_MONEY,
                f"unbacked mint: deposit {deposit.chain_reference} {problem}; the log credits "
                f"{deposit.amount} to {deposit.owner}",
            )
        checked += 1
    unpaid = 0
    for withdrawal_id, facts in view.withdrawals.items():
        if facts.sent is not None:
            checked += await _check_payout(chain, treasury, withdrawal_id, facts, warnings)
        elif facts.voided_position:
            for signature in facts.attempts:
                landed = await chain.get_transaction(signature)
                if landed is not None and landed.succeeded:
                    raise ChainCheckFailed(
                        facts.voided_position,
                        CHAIN_MONEY,
                        f"withdrawal {withdrawal_id} was refunded but its payout {signature} "
                        "landed: paid twice",
                    )
            checked += 1
        else:
            unpaid += 1
    if unpaid:
        warnings.append(f"{unpaid} withdrawals not paid yet (pending payouts)")
    return checked


async def _check_payout(
    chain: ChainHistory,
    treasury: str,
    withdrawal_id: str,
    facts: WithdrawalFacts,
    warnings: list[str],
) -> int:
    assert facts.sent is not None  # the caller's condition
    signature, position = facts.sent
    tx = await _require(chain, signature, position, "payout")
    paid = tx.get_amount(source=treasury, destination=facts.destination)
    if (
        not tx.succeeded
        or paid != facts.amount
        or tx.memo != WITHDRAWAL_MEMO_PREFIX + withdrawal_id
    ):
        raise ChainCheckFailed(
            position,
            CHAIN_MONEY,
            f"payout {signature} of withdrawal {withdrawal_id} pays {paid} from the treasury "
            f"to {facts.destination} with memo {tx.memo!r}; the signed withdrawal asks "
            f"{facts.amount} to {facts.destination}",
        )
    if not tx.finalized:
        warnings.append(f"payout {signature} is not final yet")
    return 1


async def scan_anchors(log: LogView, chain: ChainHistory, treasury: str) -> int:
    """Every tree head the treasury anchored on chain against the log; the number found."""
    recorded = {claim.size for claim in log.anchors}
    newest_recorded = max(recorded, default=0)
    found = 0
    for signature in await chain.list_signatures(treasury):
        tx = await chain.get_transaction(signature)
        if tx is None or not tx.succeeded or tx.fee_payer != treasury:
            continue
        if not tx.memo.startswith(ANCHOR_MEMO_PREFIX):
            continue
        anchored = decode_anchor_memo(tx.memo)
        if anchored is None:
            continue
        size, root = anchored
        position = min(size, log.size) or 1
        head = log.heads.get(size)
        if head is None or head != root:
            what = "has no head of that size" if head is None else f"has root {head.hex()}"
            raise ChainCheckFailed(
                position,
                ANCHOR,
                f"the chain anchors size {size} root {root.hex()} ({signature}, slot {tx.slot}) "
                f"and the log {what}: the log was rewritten or truncated",
            )
        if size not in recorded and size < newest_recorded:
            raise ChainCheckFailed(
                position,
                ANCHOR,
                f"the head of size {size} is anchored on chain ({signature}) and the log "
                "holds no anchor record of it: the record was dropped",
            )
        found += 1
    return found


async def _require(
    chain: ChainHistory, signature: str, position: int, what: str
) -> ChainTransaction:
    tx = await chain.get_transaction(signature)
    if tx is None or not tx.succeeded:
        raise ChainCheckFailed(
            position,
            CHAIN_MONEY,
            f"{what} {signature} is not on the chain"
            + (": an unbacked mint" if what == "deposit" else ""),
        )
    return tx

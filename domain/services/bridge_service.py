"""The bridge over the Solana gateway port: credit deposits once, pay withdrawals once, anchor
heads.

Deposits: every transfer to the treasury whose memo is ``flopledger:deposit:<actor id>`` is
credited by ``account.deposit`` signed by the bridge's operator key, with the Solana
signature as ``chain_reference`` and a nonce derived from it: the command id is then a
function of the signature, so a second credit of the same transfer is refused
(``nonce_already_used``) or returns the first outcome; never two credits.

Withdrawals (an outbox): ``account.withdraw`` has debited the ledger. For each one the
processor signs a payout, records its signature and bytes (``withdrawal.submit``) and only
then sends it; after a crash it sends the recorded bytes again (same signature: it cannot pay
twice) unless they landed (``withdrawal.confirm``) or expired unlanded, and only then signs a
new payout. A payout the chain refuses for good (``ChainRefused``) is voided once its last
attempt has expired, and the amount refunded (``withdrawal.void``, with the chain's reason);
the others proceed. Anchors: a memo ``flopledger:sth:<size>:<root>`` per signed tree head, recorded
with ``log.anchor`` (``anchor_latest_head``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from domain.errors import ChainRefused, OperatingError, Rejection, RejectionCode, StoreError
from domain.invariants import present
from domain.ledger import BOUNDARY_ACCOUNT
from domain.log import LOG_STREAM_ID, Log, encode_anchor_memo
from domain.policy import REASON_CHARS_MAX
from domain.ports import READ_ALL_LIMIT_MAX, EventStore, PreparedTransfer, SolanaGateway
from domain.services.ledger_service import CommandMetadata, CommandResult, LedgerService
from domain.services.queries import get_aggregate
from domain.withdrawal import ATTEMPTS_MAX, Withdrawal, withdrawal_stream_id
from proofs.envelope import sign_command
from proofs.identity import Identity, is_actor_id

DEPOSIT_MEMO_PREFIX = "flopledger:deposit:"
WITHDRAWAL_MEMO_PREFIX = "flopledger:withdrawal:"
DEPOSIT_NONCE_PREFIX = "sol-"
ANCHOR_NONCE_PREFIX = "anc-"
NONCE_HASH_CHARS = 56


@dataclass(frozen=True)
class DepositOutcome:
    credited: int
    skipped: int


@dataclass
class PayoutOutcome:
    """What one ``pay_withdrawals`` did: landed signatures, voided withdrawals, ones the
    chain refused (voided once expired), ones sent and not landed, and failures by code."""

    paid: list[str] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _derived_nonce(prefix: str, key: str) -> str:
    """An envelope nonce that is a function of ``key`` (a Solana signature, a withdrawal id):
    the command id follows, so the same fact can never be recorded twice."""
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:NONCE_HASH_CHARS]


class BridgeService:
    """Drives the Solana gateway as the operator ``identity`` (in the policy's operators)."""

    def __init__(
        self,
        store: EventStore,
        gateway: SolanaGateway,
        identity: Identity,
        service: LedgerService,
        clock_ns: Callable[[], int],
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.identity = identity
        self.service = service
        self.clock_ns = clock_ns
        self._settled: set[str] = set()
        """Signatures this instance already credited or found credited: not tried again (a
        new instance tries each once more; the ledger's nonce check is what makes it safe)."""
        self._scanned_position = 0
        self._unpaid: list[str] = []
        self._refused: dict[str, str] = {}
        """Withdrawals whose payout the chain refused for good, with its reason: voided
        once their last attempt has expired (a restarted bridge finds out again)."""

    async def credit_deposits(self) -> DepositOutcome:
        """Credit every deposit not credited yet (exactly once per Solana signature)."""
        credited = skipped = 0
        for transfer in await self.gateway.list_incoming():
            if transfer.signature in self._settled:
                continue
            owner = transfer.memo.removeprefix(DEPOSIT_MEMO_PREFIX)
            if not transfer.memo.startswith(DEPOSIT_MEMO_PREFIX) or not is_actor_id(owner):
                skipped += 1
                continue
            body = {
                "account_owner": owner,
                "amount": transfer.amount,
                "chain_reference": transfer.signature,
            }
            nonce = _derived_nonce(DEPOSIT_NONCE_PREFIX, transfer.signature)
            try:
                result = await self._run("account.deposit", body, nonce=nonce)
            except Rejection as exc:
                if exc.code != RejectionCode.NONCE_ALREADY_USED:
                    raise
                result = None
            if result is None or result.replayed:
                skipped += 1
            else:
                credited += 1
            self._settled.add(transfer.signature)
        return DepositOutcome(credited=credited, skipped=skipped)

    async def pending_withdrawals(self) -> list[str]:
        """Ids (command ids) of withdrawals whose payout has not landed. The log is scanned
        once per instance: later calls read only the records appended since."""
        position = self._scanned_position + 1
        while batch := await self.store.read_all(position, READ_ALL_LIMIT_MAX):
            for record in batch:
                if record.stream_id == BOUNDARY_ACCOUNT and record.event_type == "Credited":
                    kind = msgspec.json.decode(record.metadata, type=CommandMetadata).envelope.kind
                    if kind == "account.withdraw":
                        self._unpaid.append(record.command_id)
            position = batch[-1].position + 1
        self._scanned_position = position - 1
        result = []
        for withdrawal_id in self._unpaid:
            found = await get_aggregate(self.store, Withdrawal, withdrawal_stream_id(withdrawal_id))
            if found is None or not (found.is_sent or found.is_voided):
                result.append(withdrawal_id)
        self._unpaid = result
        return list(result)

    async def pay_withdrawal(
        self, withdrawal_id: str, *, destination: str, amount: int
    ) -> str | None:
        """Pay one withdrawal at most once; returns the landed Solana signature, or None when
        it was voided (its payout refused for good: ``ChainRefused`` the first time, raised
        here; once every attempt has expired unlanded, the amount goes back to its owner).
        A payout sent but not landed yet raises ``payout_pending``."""
        found = await get_aggregate(self.store, Withdrawal, withdrawal_stream_id(withdrawal_id))
        if found is not None and found.is_sent:
            return found.sent_signature
        if found is not None and found.is_voided:
            return None
        attempts = found.attempts if found is not None else []
        for attempt in reversed(attempts):
            landed = await self.gateway.get_landed(attempt.chain_signature)
            if landed is not None:
                await self._confirm(withdrawal_id, landed.signature, landed.slot)
                return landed.signature
        latest = attempts[-1] if attempts else None
        height = await self.gateway.block_height()
        is_live = (
            latest is not None
            and bool(latest.transaction)
            and height <= latest.last_valid_block_height
        )
        refused = self._refused.get(withdrawal_id)
        if refused is not None and is_live:  # sending it again would be refused again
            raise Rejection(
                f"payout of {withdrawal_id} was refused; voided once it expires",
                code=RejectionCode.PAYOUT_PENDING,
            )
        if not is_live and (refused is not None or len(attempts) >= ATTEMPTS_MAX):
            # Every attempt expired unlanded: none can land any more, so refunding cannot
            # pay twice (the signed bytes are in the log, anyone could have sent them).
            await self._void(withdrawal_id, refused or f"{ATTEMPTS_MAX} payouts expired unlanded")
            return None
        if is_live and latest is not None:  # a live attempt is the latest one
            prepared = PreparedTransfer(
                latest.chain_signature, latest.last_valid_block_height, latest.transaction
            )
        else:
            prepared = await self.gateway.prepare_transfer(
                destination, amount, WITHDRAWAL_MEMO_PREFIX + withdrawal_id
            )
            await self._run(
                "withdrawal.submit",
                {
                    "withdrawal_id": withdrawal_id,
                    "chain_signature": prepared.signature,
                    "last_valid_block_height": prepared.last_valid_block_height,
                    "transaction": prepared.transaction,
                },
                nonce=_derived_nonce("ws-", prepared.signature),
            )
        await self.gateway.send_prepared(prepared)
        signature = prepared.signature
        landed = await self.gateway.get_landed(signature)
        if landed is None:
            raise Rejection(
                f"payout {signature} has not landed yet", code=RejectionCode.PAYOUT_PENDING
            )
        await self._confirm(withdrawal_id, landed.signature, landed.slot)
        return landed.signature

    async def pay_withdrawals(self) -> PayoutOutcome:
        """Pay every pending withdrawal, each on its own: one that fails never holds up the
        next (issue 16, item 7). A payout sent but not landed yet (``payout_pending``) is
        left for the next call; one the chain refused is voided once it has expired; a
        rejection or chain error of one is reported and the others proceed. A store error
        ends the pass (nothing else could be recorded either)."""
        outcome = PayoutOutcome()
        for withdrawal_id in await self.pending_withdrawals():
            destination, amount = await self._withdraw_terms(withdrawal_id)
            try:
                signature = await self.pay_withdrawal(
                    withdrawal_id, destination=destination, amount=amount
                )
            except ChainRefused as exc:
                self._refused[withdrawal_id] = exc.message[:REASON_CHARS_MAX]
                outcome.refused.append(withdrawal_id)
                continue
            except Rejection as exc:
                if exc.code == RejectionCode.PAYOUT_PENDING:
                    outcome.pending.append(withdrawal_id)
                else:
                    outcome.failed[withdrawal_id] = exc.code
                continue
            except StoreError:
                raise
            except OperatingError as exc:
                outcome.failed[withdrawal_id] = exc.code
                continue
            if signature is None:
                outcome.voided.append(withdrawal_id)
            else:
                outcome.paid.append(signature)
        return outcome

    async def anchor(self, size: int, root: bytes) -> tuple[str, int]:
        """Put a tree head on chain; (signature, slot)."""
        receipt = await self.gateway.send_memo(encode_anchor_memo(size, root))
        return receipt.signature, receipt.slot

    async def anchor_latest_head(self) -> tuple[int, str] | None:
        """Anchor the latest signed tree head unless it is anchored already and record where
        (``log.anchor``); (size, Solana signature), or None when there was nothing to do."""
        log = await get_aggregate(self.store, Log, LOG_STREAM_ID)
        head = log.latest if log is not None else None
        if head is None or head.anchor_signature:
            return None
        signature, slot = await self.anchor(head.size, head.root)
        body = {"size": head.size, "chain_signature": signature, "slot": slot}
        nonce = _derived_nonce(ANCHOR_NONCE_PREFIX, signature)
        await self._run("log.anchor", body, nonce=nonce)
        return head.size, signature

    async def _withdraw_terms(self, withdrawal_id: str) -> tuple[str, int]:
        outcome = present(
            await self.store.find_command(withdrawal_id), "a recorded withdrawal has its command"
        )
        first = (await self.store.read_all(outcome.first_position, 1))[0]
        envelope = msgspec.json.decode(first.metadata, type=CommandMetadata).envelope
        return envelope.body.get("destination") or envelope.actor, int(envelope.body["amount"])

    async def _confirm(self, withdrawal_id: str, signature: str, slot: int) -> None:
        body = {"withdrawal_id": withdrawal_id, "chain_signature": signature, "slot": slot}
        await self._run("withdrawal.confirm", body, nonce=_derived_nonce("wc-", withdrawal_id))

    async def _void(self, withdrawal_id: str, reason: str) -> None:
        body: dict[str, object] = {"withdrawal_id": withdrawal_id, "reason": reason}
        await self._run("withdrawal.void", body, nonce=_derived_nonce("wv-", withdrawal_id))
        self._refused.pop(withdrawal_id, None)

    async def _run(self, kind: str, body: dict[str, object], *, nonce: str) -> CommandResult:
        now_ns = self.clock_ns()
        network = await self.service.get_network_id()
        envelope = sign_command(
            self.identity, kind, body, nonce=nonce, issued_at_ns=now_ns, network=network
        )
        return await self.service.execute(envelope, now_ns=now_ns)

"""The Solana gateway on LiteSVM: an in-process chain (the embedded default and the tests).

LiteSVM keeps transaction metadata, not transactions, and has no address index, so this
adapter keeps every transaction it sends or is handed (``submit``) with the slot it landed in,
and indexes transfers to the treasury. The slot advances by one per landed transaction; the
"block height" is the slot, and a prepared transfer may land until ``BLOCKHASH_VALID_SLOTS``
slots later (``expire`` moves past that, as time would). Every landed transaction is kept in
its chain log (``chain_log``: signature, slot, wire bytes), which is the history the audit
reads (``get_transaction``, ``list_signatures``; issue 16, item 3) and the devnet operator
serves on its loopback RPC endpoint. Everything here is final at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata

from adapters.solana.common import (
    ChainError,
    build_transaction,
    decode_chain_transaction,
    get_send_error,
    parse_transaction,
)
from domain.ports import (
    ChainMemo,
    ChainReceipt,
    ChainTransaction,
    IncomingTransfer,
    PreparedTransfer,
)

BLOCKHASH_VALID_SLOTS = 150
ALREADY_PROCESSED = "AlreadyProcessed"


@dataclass
class _Landed:
    slot: int
    memo: str


@dataclass(frozen=True)
class ChainLogEntry:
    """One landed transaction: where, and its bytes (a legacy transaction)."""

    signature: str
    slot: int
    transaction: bytes
    accounts: frozenset[str]


class LiteSvmGateway:
    """The SolanaGateway port on one LiteSVM instance; ``treasury_key`` pays and receives."""

    def __init__(self, svm: LiteSVM, treasury_key: Keypair) -> None:
        self.svm = svm
        self.treasury_key = treasury_key
        self.treasury = str(treasury_key.pubkey())
        self._landed: dict[str, _Landed] = {}
        self._incoming: list[IncomingTransfer] = []
        self.chain_log: list[ChainLogEntry] = []
        self._logged: dict[str, ChainLogEntry] = {}

    @classmethod
    def create(cls, treasury_key: Keypair | None = None, lamports: int = 10**12) -> LiteSvmGateway:
        svm = LiteSVM()
        key = treasury_key or Keypair()
        svm.airdrop(key.pubkey(), lamports)
        return cls(svm, key)

    def submit(self, tx: Transaction) -> ChainReceipt:
        """Send any signed transaction (a consumer's deposit, in tests) and index it."""
        signature = str(tx.signatures[0])
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            if ALREADY_PROCESSED in str(result.err()) and signature in self._landed:
                return ChainReceipt(signature, self._landed[signature].slot)
            raise get_send_error(signature, str(result.err()))
        slot = self.svm.get_clock().slot
        memo, incoming = parse_transaction(tx, slot, self.treasury_key.pubkey())
        self._landed[signature] = _Landed(slot=slot, memo=memo)
        entry = ChainLogEntry(
            signature, slot, bytes(tx), frozenset(str(key) for key in tx.message.account_keys)
        )
        self.chain_log.append(entry)
        self._logged[signature] = entry
        if incoming is not None:
            self._incoming.append(incoming)
        self.svm.warp_to_slot(slot + 1)
        return ChainReceipt(signature, slot)

    def expire(self) -> None:
        """Let every prepared transaction's blockhash expire (time passing, in tests)."""
        self.svm.warp_to_slot(self.svm.get_clock().slot + BLOCKHASH_VALID_SLOTS + 1)
        self.svm.expire_blockhash()

    def balance(self, address: str) -> int:
        return self.svm.get_balance(Pubkey.from_string(address)) or 0

    async def list_incoming(self) -> list[IncomingTransfer]:
        return list(self._incoming)

    async def prepare_transfer(self, destination: str, amount: int, memo: str) -> PreparedTransfer:
        tx = build_transaction(
            self.treasury_key,
            self.svm.latest_blockhash(),
            memo,
            Pubkey.from_string(destination),
            amount,
        )
        return PreparedTransfer(
            signature=str(tx.signatures[0]),
            last_valid_block_height=self.svm.get_clock().slot + BLOCKHASH_VALID_SLOTS,
            transaction=bytes(tx),
        )

    async def send_prepared(self, prepared: PreparedTransfer) -> None:
        if prepared.last_valid_block_height < self.svm.get_clock().slot:
            raise ChainError(f"transaction {prepared.signature} expired before it was sent")
        self.submit(Transaction.from_bytes(prepared.transaction))

    async def get_landed(self, signature: str) -> ChainReceipt | None:
        landed = self._landed.get(signature)
        if landed is None or self.svm.get_transaction(Signature.from_string(signature)) is None:
            return None
        return ChainReceipt(signature, landed.slot)

    async def block_height(self) -> int:
        return int(self.svm.get_clock().slot)

    async def send_memo(self, memo: str) -> ChainReceipt:
        return self.submit(build_transaction(self.treasury_key, self.svm.latest_blockhash(), memo))

    async def get_memo(self, signature: str) -> ChainMemo | None:
        landed = self._landed.get(signature)
        return None if landed is None else ChainMemo(memo=landed.memo, slot=landed.slot)

    async def get_transaction(self, signature: str) -> ChainTransaction | None:
        """A landed transaction read back from the chain log (the audit's view)."""
        entry = self._logged.get(signature)
        if entry is None:
            return None
        return decode_chain_transaction(Transaction.from_bytes(entry.transaction), entry.slot)

    def get_logged(self, signature: str) -> ChainLogEntry | None:
        return self._logged.get(signature)

    async def list_signatures(self, address: str) -> list[str]:
        """Every landed transaction naming ``address``, oldest first."""
        return [entry.signature for entry in self.chain_log if address in entry.accounts]

    async def close(self) -> None:
        """Nothing to release: the chain lives as long as this object."""

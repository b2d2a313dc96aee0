"""The Solana gateway over JSON-RPC (solana-py ``AsyncClient``): devnet or mainnet by URL.

Incoming transfers are found with ``getSignaturesForAddress`` on the treasury, paged back
(``before``) through every signature since the newest one already read (``until``: the
checkpoint), not only the newest page, and read back with ``getTransaction`` (decoded with
solders and parsed like LiteSVM's; a v0 transaction's lookup-table accounts come from its
meta). Everything is read and awaited at ``finalized`` commitment: a deposit is credited,
and a payout confirmed, only once it can no longer be rolled back;
payouts are sent as raw bytes (``sendRawTransaction``), their landing checked with
``getSignatureStatuses``; memos are read from the transaction's log lines. RPC failures are
translated into ``ChainError``. Not exercised by the test suite (no cluster is reachable from
CI); the LiteSVM adapter implements the same port and carries the tests.
"""

from __future__ import annotations

from typing import Any

from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Finalized
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction_status import TransactionConfirmationStatus

from adapters.solana.common import (
    ChainError,
    build_transaction,
    get_send_error,
    memo_from_logs,
    parse_transaction,
)
from domain.ports import ChainMemo, ChainReceipt, IncomingTransfer, PreparedTransfer

SIGNATURES_PAGE_MAX = 1000
SIGNATURE_PAGES_MAX = 100_000
"""Pages one listing reads at most (10**8 signatures): past it the treasury's history is
not what this gateway can follow, and it says so instead of looping."""
TRANSACTION_VERSION_MAX = 0


class RpcGateway:
    """The SolanaGateway port on a JSON-RPC endpoint; ``treasury_key`` may be None to read
    only (the audit's anchor checks)."""

    def __init__(self, client: AsyncClient, treasury_key: Keypair | None) -> None:
        self.client = client
        self.treasury_key = treasury_key
        self.treasury = str(treasury_key.pubkey()) if treasury_key is not None else ""
        self._incoming: list[IncomingTransfer] = []
        self._checkpoint: Signature | None = None
        """The newest treasury signature already read: later listings stop there."""

    @classmethod
    def connect(cls, url: str, treasury_key: Keypair | None = None) -> RpcGateway:
        return cls(AsyncClient(url, commitment=Finalized), treasury_key)

    async def list_incoming(self) -> list[IncomingTransfer]:
        """Every finalized transfer to the treasury, oldest first: the ones read before,
        then those since the checkpoint (all pages of them)."""
        treasury = Pubkey.from_string(self.treasury)
        try:
            statuses = await self._signatures_since(treasury)
            for status in reversed(statuses):
                if status.err is not None:
                    continue
                tx = await self._transaction(status.signature)
                if tx is None:
                    continue
                _memo, incoming = parse_transaction(*tx[:2], treasury, tx[2])
                if incoming is not None:
                    self._incoming.append(incoming)
        except SolanaRpcException as exc:
            raise ChainError(f"listing transfers to {self.treasury} failed: {exc}") from exc
        if statuses:
            self._checkpoint = statuses[0].signature
        return list(self._incoming)

    async def _signatures_since(self, address: Pubkey) -> list[Any]:
        """Signatures of ``address`` newer than the checkpoint, newest first, every page."""
        found: list[Any] = []
        before: Signature | None = None
        for _ in range(SIGNATURE_PAGES_MAX):
            page = await self.client.get_signatures_for_address(
                address,
                before=before,
                until=self._checkpoint,
                limit=SIGNATURES_PAGE_MAX,
                commitment=Finalized,
            )
            found.extend(page.value)
            if len(page.value) < SIGNATURES_PAGE_MAX:
                return found
            before = page.value[-1].signature
        raise ChainError(f"{address} has more than {SIGNATURE_PAGES_MAX} pages of signatures")

    async def prepare_transfer(self, destination: str, amount: int, memo: str) -> PreparedTransfer:
        key = self._key()
        try:
            latest = (await self.client.get_latest_blockhash()).value
        except SolanaRpcException as exc:
            raise ChainError(f"getLatestBlockhash failed: {exc}") from exc
        tx = build_transaction(key, latest.blockhash, memo, Pubkey.from_string(destination), amount)
        return PreparedTransfer(str(tx.signatures[0]), latest.last_valid_block_height, bytes(tx))

    async def send_prepared(self, prepared: PreparedTransfer) -> None:
        try:
            await self.client.send_raw_transaction(
                prepared.transaction, opts=TxOpts(skip_preflight=False)
            )
        except SolanaRpcException as exc:
            if await self.get_landed(prepared.signature) is None:
                raise ChainError(f"sending {prepared.signature} failed: {exc}") from exc
        except RPCException as exc:  # the node refused it (preflight): permanent or not
            if await self.get_landed(prepared.signature) is None:
                raise get_send_error(prepared.signature, str(exc)) from exc

    async def get_landed(self, signature: str) -> ChainReceipt | None:
        try:
            statuses = await self.client.get_signature_statuses(
                [Signature.from_string(signature)], search_transaction_history=True
            )
        except SolanaRpcException as exc:
            raise ChainError(f"getSignatureStatuses failed: {exc}") from exc
        status = statuses.value[0]
        if status is None or status.err is not None:
            return None
        if status.confirmation_status != TransactionConfirmationStatus.Finalized:
            return None  # landed, but a fork could still drop it: asked again next pass
        return ChainReceipt(signature, status.slot)

    async def block_height(self) -> int:
        try:
            return int((await self.client.get_block_height()).value)
        except SolanaRpcException as exc:
            raise ChainError(f"getBlockHeight failed: {exc}") from exc

    async def send_memo(self, memo: str) -> ChainReceipt:
        key = self._key()
        try:
            latest = (await self.client.get_latest_blockhash()).value
            tx = build_transaction(key, latest.blockhash, memo)
            await self.client.send_raw_transaction(bytes(tx))
            await self.client.confirm_transaction(tx.signatures[0], commitment=Finalized)
        except SolanaRpcException as exc:
            raise ChainError(f"sending memo failed: {exc}") from exc
        landed = await self.get_landed(str(tx.signatures[0]))
        if landed is None:
            raise ChainError(f"memo {tx.signatures[0]} did not land")
        return landed

    async def get_memo(self, signature: str) -> ChainMemo | None:
        try:
            resp = await self.client.get_transaction(
                Signature.from_string(signature),
                max_supported_transaction_version=TRANSACTION_VERSION_MAX,
            )
        except SolanaRpcException as exc:
            raise ChainError(f"getTransaction {signature} failed: {exc}") from exc
        found = resp.value
        if found is None or found.transaction.meta is None:
            return None
        memo = memo_from_logs(list(found.transaction.meta.log_messages or []))
        return None if memo is None else ChainMemo(memo=memo, slot=found.slot)

    async def close(self) -> None:
        await self.client.close()

    async def _transaction(self, signature: Signature) -> tuple[Any, int, list[Pubkey]] | None:
        """A finalized transaction, its slot and the addresses its lookup tables loaded."""
        resp = await self.client.get_transaction(
            signature,
            encoding="base64",
            commitment=Finalized,
            max_supported_transaction_version=TRANSACTION_VERSION_MAX,
        )
        found = resp.value
        if found is None:
            return None
        meta = found.transaction.meta
        loaded = meta.loaded_addresses if meta is not None else None
        addresses = (
            []
            if loaded is None
            else [Pubkey.from_string(str(key)) for key in (*loaded.writable, *loaded.readonly)]
        )
        return found.transaction.transaction, found.slot, addresses

    def _key(self) -> Keypair:
        if self.treasury_key is None:
            raise ChainError("this gateway has no treasury key: it can only read")
        return self.treasury_key

"""The log sealer: an RFC 6962 tree over record hashes and a signed tree head every N records
or T seconds, recorded as ``TreeHeadSigned`` through the ``log.seal`` command.

Leaf ``i`` is the hash of the record at position ``i + 1`` (as ``api.transparency`` serves
proofs). The sealer reads the log from position 1 into an ``IncrementalMerkleTree``, so its
state is O(log n) hashes; it notes which accounts the records after the last sealed head
touched and, after each seal, loads those accounts (from their snapshots,
``domain.services.loading``) and writes their balances as balance rows (``domain.balances``, a
read table the audit re-checks), so that its memory does not grow with the number of
accounts. Its own log records do not make a new head due, so an idle log is not sealed again
and again. With an ``anchor`` callback (the Solana gateway) each head's size and root go on
chain in a memo and the signature and slot are recorded (``log.anchor``). One sealer runs at a
time (leader lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from domain.balances import encode_balance_snapshot
from domain.ledger import Account
from domain.log import LOG_STREAM_ID, Log
from domain.ports import READ_ALL_LIMIT_MAX, EventStore
from domain.records import Snapshot
from domain.services.ledger_service import CommandResult, LedgerService
from domain.services.queries import get_aggregate
from proofs.envelope import sign_command
from proofs.identity import Identity
from proofs.merkle_incremental import IncrementalMerkleTree
from proofs.tree_head import sign_tree_head

SEAL_EVERY_RECORDS = 1000
SEAL_EVERY_S = 10.0
SEAL_POLL_INTERVAL_S = 0.5
NONCE_RANDOM_BYTES = 8

_log = structlog.get_logger("flopledger.sealer")


@dataclass(frozen=True)
class AnchorReceipt:
    chain_signature: str
    slot: int


Anchor = Callable[[int, bytes], Awaitable[AnchorReceipt]]


@dataclass(frozen=True)
class SealResult:
    size: int
    root: bytes
    position: int
    anchor: AnchorReceipt | None = None


class Sealer:
    """Seals the log as an operator (``identity`` must be an operator in the log's rules)."""

    def __init__(
        self,
        store: EventStore,
        identity: Identity,
        *,
        clock_ns: Callable[[], int],
        every_records: int = SEAL_EVERY_RECORDS,
        every_s: float = SEAL_EVERY_S,
        anchor: Anchor | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.service = LedgerService(store)
        self.clock_ns = clock_ns
        self.every_records = every_records
        self.every_s = every_s
        self.anchor = anchor
        self.tree = IncrementalMerkleTree()
        self.sealed_size = 0
        self._substantive = 0
        self._touched: set[str] = set()
        self._last_seal_ns = 0
        self._nonce = 0

    async def catch_up(self) -> int:
        """Read every new record into the tree; returns the tree size."""
        if self.tree.size == 0 and self.sealed_size == 0:
            log = await get_aggregate(self.store, Log, LOG_STREAM_ID)
            self.sealed_size = log.last_size if log is not None else 0
        while batch := await self.store.read_all(self.tree.size + 1, READ_ALL_LIMIT_MAX):
            for record in batch:
                self.tree.append_leaf_hash(record.hash)
                if record.position > self.sealed_size and record.stream_type != Log.STREAM_TYPE:
                    self._substantive += 1
                if record.stream_type == Account.STREAM_TYPE and record.position > self.sealed_size:
                    self._touched.add(record.stream_id)
            if len(batch) < READ_ALL_LIMIT_MAX:
                break
        return self.tree.size

    def is_due(self, now_ns: int) -> bool:
        if self._substantive == 0:
            return False
        waited_s = (now_ns - self._last_seal_ns) / 1e9
        return self._substantive >= self.every_records or waited_s >= self.every_s

    async def seal_once(self, *, force: bool = False) -> SealResult | None:
        """Catch up and, when a head is due (or ``force`` and there is news), sign one."""
        await self.catch_up()
        now_ns = self.clock_ns()
        if not (self.is_due(now_ns) or (force and self.tree.size > self.sealed_size)):
            return None
        size, root = self.tree.size, self.tree.root()
        head = sign_tree_head(self.identity.private_key, size, root, now_ns)
        result = await self._run(
            "log.seal",
            {
                "size": size,
                "root": root,
                "tree_timestamp_ns": now_ns,
                "signature": head.signature,
            },
            now_ns,
        )
        self.sealed_size, self._substantive, self._last_seal_ns = size, 0, now_ns
        await self._save_balances()
        _log.info("tree_head_signed", size=size, root=root.hex(), position=result.last_position)
        receipt = await self._anchor(size, root) if self.anchor is not None else None
        return SealResult(size=size, root=root, position=result.last_position, anchor=receipt)

    async def run(self, stop: asyncio.Event, poll_interval_s: float = SEAL_POLL_INTERVAL_S) -> None:
        """Seal whenever a head is due until ``stop`` is set."""
        while not stop.is_set():
            await self.seal_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval_s)

    async def _anchor(self, size: int, root: bytes) -> AnchorReceipt:
        assert self.anchor is not None
        receipt = await self.anchor(size, root)
        await self._run(
            "log.anchor",
            {"size": size, "chain_signature": receipt.chain_signature, "slot": receipt.slot},
            self.clock_ns(),
        )
        _log.info("log_anchored", size=size, signature=receipt.chain_signature, slot=receipt.slot)
        return receipt

    async def _save_balances(self) -> None:
        for account_id in sorted(self._touched):
            account = await get_aggregate(self.store, Account, account_id)
            if account is None:
                raise AssertionError(f"the log names account {account_id}, the store has none")
            await self.store.save_snapshot(
                Snapshot(
                    stream_id=account_id,
                    version=account.version,
                    state=encode_balance_snapshot(account),
                )
            )
        self._touched.clear()

    async def _run(self, kind: str, body: dict[str, object], now_ns: int) -> CommandResult:
        self._nonce += 1
        envelope = sign_command(
            self.identity,
            kind,
            body,
            nonce=f"sealer-{now_ns}-{self._nonce}-{os.urandom(NONCE_RANDOM_BYTES).hex()}",
            issued_at_ns=now_ns,
            network=await self.service.get_network_id(),
        )
        return await self.service.execute(envelope, now_ns=now_ns)

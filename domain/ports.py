"""Ports: the Protocols that adapters implement. The domain and the services see only these."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

import msgspec

from domain.objects import StoredObjectInfo
from domain.records import AppendOutcome, Head, Record, Snapshot, StreamAppend

READ_ALL_LIMIT_MAX = 10_000


@runtime_checkable
class EventStore(Protocol):
    """The append-only, hash-chained global log (DESIGN.md, "Event store").

    ``append`` commits every StreamAppend or none. A stale expected version raises
    ``VersionConflict``; a repeated ``command_id`` returns the first outcome and writes nothing.
    """

    async def append(
        self,
        appends: Sequence[StreamAppend],
        *,
        command_id: str,
        metadata: bytes = b"",
    ) -> AppendOutcome: ...

    async def find_command(self, command_id: str) -> AppendOutcome | None:
        """The outcome of an already committed command, or None."""
        ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]: ...

    async def get_stream_version(self, stream_id: str) -> int:
        """The stream's last version (0 when it has no records), read from an index: its cost
        does not grow with the stream or the log, so "does X exist" is one bounded lookup."""
        ...

    async def read_all(self, from_position: int = 1, limit: int = 1000) -> list[Record]: ...

    def subscribe(self, from_position: int = 1) -> AsyncIterator[Record]:
        """Yield every record from ``from_position`` on, waiting for new commits forever."""
        ...

    async def head(self) -> Head: ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def get_snapshot(self, stream_id: str) -> Snapshot | None: ...

    async def close(self) -> None: ...


class ObjectStore(Protocol):
    """Content-addressed objects, streamed (``adapters.nats.objects.ArtifactStore``; issue
    17). Errors are the adapter's: an object too large, absent or not matching its digest."""

    async def put_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        encrypted: bool = False,
        size_limit_bytes: int | None = None,
    ) -> StoredObjectInfo:
        """Store the bytes ``chunks`` yields under their SHA-256, never whole in memory."""
        ...

    def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        """The stored bytes, chunk by chunk, checked against ``digest`` before the last."""
        ...

    async def info(self, digest: str) -> StoredObjectInfo | None:
        """Size and ciphertext mark, or None when absent."""
        ...

    async def mark_uploader(self, digest: str, actor: str) -> None:
        """Note that ``actor`` proved it holds the bytes of ``digest`` (it sent them)."""
        ...

    async def has_uploader(self, digest: str, actor: str) -> bool:
        """Whether ``actor`` was noted as a sender of the bytes of ``digest``."""
        ...


IDEMPOTENCY_KEY_TTL_S = 86_400.0
"""How long an Idempotency-Key stays bound to its first body (a retry comes within it)."""


class IdempotencyKeys(Protocol):
    """Which request body each Idempotency-Key was first used with, shared by every API
    process of one store (``adapters.store.idempotency``). The ledger's own idempotency
    (actor, nonce) makes a retried command answer its first result; this only lets a key
    reused with another body be refused."""

    async def claim(self, key: str, digest: bytes) -> bool:
        """Bind ``key`` to ``digest`` unless it is bound (and not expired): True when the key
        is bound to ``digest`` now, False when it is bound to another. Concurrent claims of
        one key agree on one winner."""
        ...


class IncomingTransfer(msgspec.Struct, frozen=True):
    """A transfer to the treasury seen on chain, with the memo that names the ledger account."""

    signature: str
    slot: int
    source: str
    amount: int
    memo: str


class ChainReceipt(msgspec.Struct, frozen=True):
    """Where a transaction landed: its signature and slot."""

    signature: str
    slot: int


class PreparedTransfer(msgspec.Struct, frozen=True):
    """A signed payout not yet sent: its signature, the block height after which it can no
    longer land, and its wire bytes (sending them again can never pay twice)."""

    signature: str
    last_valid_block_height: int
    transaction: bytes


class ChainMemo(msgspec.Struct, frozen=True):
    memo: str
    slot: int


class ChainTransferLeg(msgspec.Struct, frozen=True):
    """One system transfer inside a transaction."""

    source: str
    destination: str
    amount: int


class ChainTransaction(msgspec.Struct, frozen=True):
    """A landed transaction as the audit reads it back from the chain (issue 16, item 3):
    who paid its fee, its memo, its transfers, and whether it is final (finalized
    commitment: it can no longer be rolled back)."""

    signature: str
    slot: int
    fee_payer: str
    memo: str
    transfers: tuple[ChainTransferLeg, ...]
    finalized: bool = True
    succeeded: bool = True

    def get_amount(self, *, source: str | None = None, destination: str) -> int:
        """What the transaction moved to ``destination`` (from ``source`` when given)."""
        return sum(
            leg.amount
            for leg in self.transfers
            if leg.destination == destination and source in (None, leg.source)
        )


@runtime_checkable
class SolanaGateway(Protocol):
    """Deposits, payouts and anchors on Solana (adapters: LiteSVM in-process, RPC)."""

    treasury: str

    async def list_incoming(self) -> list[IncomingTransfer]:
        """Transfers to the treasury that carry a memo, oldest first."""
        ...

    async def prepare_transfer(
        self, destination: str, amount: int, memo: str
    ) -> PreparedTransfer: ...

    async def send_prepared(self, prepared: PreparedTransfer) -> None:
        """Send (or send again) a prepared transfer; a repeat of a landed one is no error."""
        ...

    async def get_landed(self, signature: str) -> ChainReceipt | None:
        """The slot a transaction landed in, or None when it has not (yet)."""
        ...

    async def block_height(self) -> int: ...

    async def send_memo(self, memo: str) -> ChainReceipt: ...

    async def get_memo(self, signature: str) -> ChainMemo | None:
        """The memo a transaction carries and its slot, or None when it is not on chain."""
        ...

    async def close(self) -> None: ...

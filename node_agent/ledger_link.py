"""The ledger as the agent sees it: typed reads and ``send(command)`` over the HTTP API client.

The client is synchronous (httpx); each call runs in a worker thread. Transport failures and
503 answers become ``LedgerUnavailable`` (an operating error the agent retries with
backoff); every other problem stays an ``ApiProblem`` carrying the ledger's stable code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx

from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem, Unavailable
from adapters.ledger_api.objects_client import put_object_bytes
from adapters.ledger_api.wire import JobView, NodeView
from domain.commands import Command
from domain.errors import RejectionCode

T = TypeVar("T")


class LedgerUnavailable(Exception):
    """The API cannot be reached (or answered 503); worth retrying later."""


class CommitRefused(Exception):
    """The ledger refused a completion's commit (its stable rejection code in ``code``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class CompletionRecord:
    """What the completion server checks of a completion's ledger record before it serves."""

    completion_id: str
    node_id: str
    model_id: str
    state: str
    request_digest: bytes
    prompt_tokens_max: int
    max_tokens: int
    greedy: bool
    commitment: bytes = b""
    """What was committed (empty while open)."""


@dataclass(frozen=True)
class CompletionCommit:
    """A served completion's usage and commitment (``completion.commit``)."""

    completion_id: str
    prompt_tokens: int
    completion_tokens: int
    commitment: bytes
    proof_digest: bytes


class CompletionLedger(Protocol):
    """What the completion server needs of the ledger (``ApiLedger``; tests pass fakes)."""

    async def get_completion_record(self, completion_id: str) -> CompletionRecord | None: ...
    async def put_object(self, data: bytes) -> str:
        """Store ``data`` through the objects API; its hex SHA-256 (``CommitRefused``: the
        API refused the object)."""
        ...

    async def commit_completion(self, commit: CompletionCommit) -> None:
        """``completion.commit``; ``CommitRefused`` when the ledger refuses it."""
        ...

    async def advertise_models(
        self, node_id: str, models: Sequence[tuple[str, int]], endpoint: str
    ) -> None:
        """``node.advertise_models`` (an unchanged advertisement is fine, not an error)."""
        ...

    async def get_node(self, node_id: str) -> NodeView | None: ...
    async def get_registered_digest(self, model_id: str) -> bytes | None:
        """The content digest a model is registered under (None: not registered)."""
        ...


class Ledger(Protocol):
    """What the agent needs from the ledger (``ApiLedger``; tests pass fakes)."""

    async def get_node(self, node_id: str) -> NodeView | None: ...
    async def list_jobs(self, **filters: str | int) -> list[JobView]: ...
    async def get_job(self, job_id: str) -> JobView: ...
    async def send(self, command: Command) -> None: ...
    async def get_encryption_key(self, actor_id: str) -> bytes | None: ...


class ApiLedger:
    """``Ledger`` over the HTTP API, signing as the node."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def close(self) -> None:
        self._client.close()

    async def get_node(self, node_id: str) -> NodeView | None:
        try:
            return await self._call(lambda: self._client.get_node(node_id))
        except NotFoundProblem:
            return None

    async def list_jobs(self, **filters: str | int) -> list[JobView]:
        page = await self._call(lambda: self._client.list_jobs(**filters))
        return page.items

    async def get_job(self, job_id: str) -> JobView:
        return await self._call(lambda: self._client.get_job(job_id))

    async def send(self, command: Command) -> None:
        await self._call(lambda: self._client.send(command))

    async def get_encryption_key(self, actor_id: str) -> bytes | None:
        """The actor's registered X25519 public key (None: it registered none)."""
        try:
            view = await self._call(lambda: self._client.get_encryption_key(actor_id))
        except NotFoundProblem:
            return None
        return bytes.fromhex(view.public_key)

    # -- the completion server's (``CompletionLedger``) --------------------------------------

    async def get_completion_record(self, completion_id: str) -> CompletionRecord | None:
        try:
            view = await self._call(lambda: self._client.get_completion_record(completion_id))
        except NotFoundProblem:
            return None
        return CompletionRecord(
            completion_id=view.id,
            node_id=view.node_id,
            model_id=view.model_id,
            state=view.state,
            request_digest=bytes.fromhex(view.request_digest),
            prompt_tokens_max=view.prompt_tokens_max,
            max_tokens=view.max_tokens,
            greedy=view.greedy,
            commitment=bytes.fromhex(view.commitment),
        )

    async def put_object(self, data: bytes) -> str:
        """Through ``PUT /v1/objects``, recorded (``object.record_stored``) so that the
        uploader's reads and the ledger's attribution work as for a job's result."""
        identity = self._client.identity
        assert identity is not None, "the agent's client signs as the node"
        try:
            info = await self._call(lambda: put_object_bytes(self._client, identity, data))
        except ApiProblem as problem:
            raise CommitRefused(problem.code, problem.detail) from problem
        return info.digest

    async def commit_completion(self, commit: CompletionCommit) -> None:
        try:
            await self._call(
                lambda: self._client.commit_completion(
                    commit.completion_id,
                    prompt_tokens=commit.prompt_tokens,
                    completion_tokens=commit.completion_tokens,
                    commitment=commit.commitment,
                    proof_digest=commit.proof_digest,
                )
            )
        except ApiProblem as problem:
            raise CommitRefused(problem.code, problem.detail) from problem

    async def advertise_models(
        self, node_id: str, models: Sequence[tuple[str, int]], endpoint: str
    ) -> None:
        try:
            await self._call(lambda: self._client.advertise_models(node_id, list(models), endpoint))
        except ApiProblem as problem:
            if problem.code != RejectionCode.NODE_MODELS_UNCHANGED:
                raise

    async def get_registered_digest(self, model_id: str) -> bytes | None:
        try:
            view = await self._call(lambda: self._client.get_registered_model(model_id))
        except NotFoundProblem:
            return None
        return bytes.fromhex(view.content_digest)

    async def _call(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except httpx.TransportError as exc:
            raise LedgerUnavailable(f"API unreachable: {exc}") from exc
        except Unavailable as exc:
            raise LedgerUnavailable(f"API unavailable: {exc.detail}") from exc


__all__ = [
    "ApiLedger",
    "ApiProblem",
    "CommitRefused",
    "CompletionCommit",
    "CompletionLedger",
    "CompletionRecord",
    "Ledger",
    "LedgerUnavailable",
]

"""A fake ledger for the node's completion server (``node_agent.ledger_link.CompletionLedger``):
records the tests open, objects stored, commits and advertisements, and outages on demand."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from adapters.ledger_api.wire import NodeView
from node_agent.ledger_link import (
    CommitRefused,
    CompletionCommit,
    CompletionRecord,
    LedgerUnavailable,
)
from proofs.llm_request import LlmRequest, compute_prompt_tokens_bound, compute_request_digest


def make_record(
    completion_id: str, serving_node: str, request: LlmRequest, **changes: Any
) -> CompletionRecord:
    """The record the ledger keeps of a completion opened for ``request`` on ``serving_node``
    (``changes`` replace its fields)."""
    record = CompletionRecord(
        completion_id=completion_id,
        node_id=serving_node,
        model_id=request.model,
        state="opened",
        request_digest=compute_request_digest(request),
        prompt_tokens_max=compute_prompt_tokens_bound(request),
        max_tokens=request.max_tokens,
        greedy=request.is_greedy,
    )
    return replace(record, **changes)


class FakeCompletionLedger:
    """Just what the completion server meets; ``down`` fails every call like an outage."""

    def __init__(self) -> None:
        self.records: dict[str, CompletionRecord] = {}
        self.objects: dict[str, bytes] = {}
        self.commits: list[CompletionCommit] = []
        self.advertisements: list[tuple[list[tuple[str, int]], str]] = []
        self.registered: dict[str, bytes] = {}
        self.node: NodeView | None = None
        self.down = False
        self.refuse_commit: str | None = None
        self.committed = asyncio.Event()

    def _check(self) -> None:
        if self.down:
            raise LedgerUnavailable("down")

    async def get_completion_record(self, completion_id: str) -> CompletionRecord | None:
        self._check()
        return self.records.get(completion_id)

    async def put_object(self, data: bytes) -> str:
        self._check()
        digest = hashlib.sha256(data).hexdigest()
        self.objects[digest] = data
        return digest

    async def commit_completion(self, commit: CompletionCommit) -> None:
        self._check()
        if self.refuse_commit is not None:
            raise CommitRefused(self.refuse_commit)
        record = self.records[commit.completion_id]
        self.records[commit.completion_id] = replace(
            record, state="committed", commitment=commit.commitment
        )
        self.commits.append(commit)
        self.committed.set()

    async def advertise_models(
        self, node_id: str, models: Sequence[tuple[str, int]], endpoint: str
    ) -> None:
        self._check()
        self.advertisements.append((list(models), endpoint))

    async def get_node(self, node_id: str) -> NodeView | None:
        self._check()
        return self.node

    async def get_registered_digest(self, model_id: str) -> bytes | None:
        self._check()
        return self.registered.get(model_id)

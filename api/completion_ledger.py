"""The completion commands this API signs, and the record it reads back (issue 18, item 3).

The API holds a completion signer's key (``FLOP_COMPLETION_KEY_FILE``, ``serve
--completion-key``; ``LedgerPolicy.completion_signers``, or an operator while it names none):
it opens each completion under the caller's delegation (``completion.open``: the ledger
checks the key, the cap, the model, the context, the node and the consumer's funds, and holds
the escrow) and aborts one a node failed (``completion.abort``: the escrow back whole). The
commands run through the ledger service in process, as any signed command does (same checks,
same log, the audit's re-execution), but not through the per-actor rate limit of the command
routes: every user's completion is signed by this one key, and each is bounded by its own
delegation's cap instead.

``get_record`` reads the completion's ledger record; the usage a client is told is the
record's committed counts, not what the node's stream said.
"""

from __future__ import annotations

import asyncio
import secrets

import msgspec
import structlog

from adapters.ledger_api.wire import CompletionRecordView
from api.state import ApiDeps
from domain.commands import (
    AbortCompletion,
    Command,
    OpenCompletion,
    command_kind,
    encode_command_body,
)
from domain.completions import (
    CLEARED,
    COMMITTED,
    OPENED,
    REJECTED,
    VERIFIED,
    Completion,
    compute_completion_stream_id,
)
from domain.errors import InvalidTransition, NotFound
from domain.policy import REASON_CHARS_MAX
from domain.services.queries import get_aggregate
from proofs.envelope import sign_command
from proofs.identity import Identity
from proofs.llm_request import LlmRequest, compute_prompt_tokens_bound, compute_request_digest

NONCE_BYTES = 12
COMMITTED_STATES = frozenset({COMMITTED, CLEARED, VERIFIED, REJECTED})
"""States of a completion its node committed (settled; a check may have followed)."""

_log = structlog.get_logger("flopledger.api.completions")


def is_committed(record: CompletionRecordView) -> bool:
    return record.state in COMMITTED_STATES


class CompletionLedger:
    """``completion.open`` and ``completion.abort`` signed by ``signer``, run on ``deps``."""

    def __init__(self, deps: ApiDeps, signer: Identity) -> None:
        self.deps = deps
        self.signer = signer

    async def open(self, *, key_id: str, node_id: str, request: LlmRequest) -> str:
        """Open ``request`` to ``node_id`` under the key; the completion id (``cmpl-...``).
        Raises the ledger's Rejection (mapped to OpenAI errors by ``api.openai_errors``)."""
        command = OpenCompletion(
            key_id=key_id,
            model_id=request.model,
            node_id=node_id,
            request_digest=compute_request_digest(request),
            prompt_tokens_max=compute_prompt_tokens_bound(request),
            max_tokens=request.max_tokens,
            greedy=request.is_greedy,
        )
        subject = await self._execute(command)
        return subject.removeprefix(f"{Completion.STREAM_TYPE}:")

    async def abort(self, completion_id: str, *, reason: str) -> bool:
        """Void an opened completion (no charge); False when it was no longer open (the
        node's commit won the race, or it was aborted already)."""
        command = AbortCompletion(completion_id=completion_id, reason=reason[:REASON_CHARS_MAX])
        try:
            await self._execute(command)
        except (InvalidTransition, NotFound) as exc:
            _log.info("completion_abort_refused", completion_id=completion_id, code=exc.code)
            return False
        return True

    async def abort_unless_committed(self, completion_id: str, *, after_s: float) -> None:
        """After ``after_s`` (the node's time to commit what it sent before the client left),
        abort the completion if it is still only opened."""
        await asyncio.sleep(after_s)
        record = await self.get_record(completion_id)
        if record is not None and record.state == OPENED:
            await self.abort(completion_id, reason="client left; the node committed nothing")

    async def get_record(self, completion_id: str) -> CompletionRecordView | None:
        """The completion's ledger record (``GET /v1/completion-records/{id}``), or None."""
        completion = await get_aggregate(
            self.deps.store, Completion, compute_completion_stream_id(completion_id)
        )
        return (
            None if completion is None else msgspec.convert(completion.view(), CompletionRecordView)
        )

    async def _execute(self, command: Command) -> str:
        envelope = sign_command(
            self.signer,
            command_kind(command),
            encode_command_body(command),
            nonce=secrets.token_hex(NONCE_BYTES),
            issued_at_ns=self.deps.clock_ns(),
            network=await self.deps.service.get_network_id(),
        )
        result = await self.deps.service.execute(envelope, now_ns=self.deps.clock_ns())
        self.deps.metrics.events_appended.inc(result.last_position - result.first_position + 1)
        return result.subject

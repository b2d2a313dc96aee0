"""One completion from the router to the client: open, call the node, relay, settle.

``start_completion`` routes the request (``api.llm_router``), opens it on the ledger under
the caller's key, calls the node and waits for its first event: a node that is down, refuses
or fails before its first token is known before any byte reaches the client, so that
completion is aborted (no charge) and the next node is tried, ``ROUTE_ATTEMPTS_MAX`` in all.

``stream_chat`` and ``stream_text`` relay the node's tokens as OpenAI's chunks, one
server-sent event per token as it comes (the node writes a line and waits on the TCP window,
the API waits on the client's: no buffer on the way grows), then the last chunk with the
finish reason, the usage chunk when asked, and ``data: [DONE]``. ``collect_chat`` and
``collect_text`` answer one object. The usage is the ledger's record of the node's commit,
read after its done event; a done event without a commit on the ledger is a node failure.

A node failure mid-stream (its error event, a broken or malformed stream, no commit) ends the
stream with an error event and aborts the completion, so nothing is charged. A client that
leaves closes the node's connection (the node stops at the next token and commits what it
sent); the completion is aborted after ``LlmServing.disconnect_grace_s`` if the node has not
committed by then.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import anyio
import structlog

from adapters.llm_link.client import NodeLinkError
from adapters.llm_link.wire import (
    DoneEvent,
    ErrorEvent,
    NodeCompletionCall,
    NodeEvent,
    TokenEvent,
)
from api.completion_ledger import CompletionLedger, is_committed
from api.llm_router import NodeLease, NoNodeAvailable, get_warm_candidates, read_active_node_views
from api.openai_errors import OpenAIError, node_failed, unavailable
from api.openai_wire import (
    SSE_DONE,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    Completion,
    FinishReason,
    TextChoice,
    Usage,
    encode_sse,
    encode_sse_error,
)
from api.state import ApiDeps
from proofs.llm_request import LlmRequest

ROUTE_ATTEMPTS_MAX = 3
"""Nodes tried for one request when the chosen one cannot be reached or refuses the call."""
NS_PER_S = 1_000_000_000

_log = structlog.get_logger("flopledger.api.completions")


class NodeFailure(Exception):
    """The node did not deliver the completion it accepted (nothing is charged)."""


@dataclass
class Outcome:
    """What the node's stream came to: its done event and the ledger's counts."""

    finish_reason: FinishReason
    usage: Usage


@dataclass
class RunningCompletion:
    """A completion opened on the ledger whose node accepted the call: its first event is
    in (``first``), the rest are to come from ``events``."""

    deps: ApiDeps
    ledger: CompletionLedger
    completion_id: str
    lease: NodeLease
    events: AsyncGenerator[NodeEvent, None]
    first: TokenEvent | DoneEvent
    request: LlmRequest
    created: int
    called_at: float
    first_token_at: float | None
    last_token_at: float | None = None
    fingerprint: str | None = None
    include_usage: bool = False
    tokens: int = 0
    outcome: Outcome | None = None
    failed: bool = False
    closed: bool = field(default=False, repr=False)

    @property
    def node_id(self) -> str:
        return self.lease.node.node_id

    async def tokens_in_order(self) -> AsyncIterator[TokenEvent]:
        """The node's tokens; NodeFailure when its stream fails. Once the stream ends with
        its done event, ``outcome`` holds the ledger's counts."""
        event: NodeEvent | None = self.first
        try:
            while event is not None:
                if isinstance(event, TokenEvent):
                    self.tokens += 1
                    self.last_token_at = time.perf_counter()
                    yield event
                elif isinstance(event, ErrorEvent):
                    raise NodeFailure(f"the node failed: {event.code}: {event.message}")
                else:
                    self.outcome = await self._settle(event)
                    return
                event = await anext(self.events, None)
        except NodeLinkError as exc:
            raise NodeFailure(str(exc)) from exc
        raise NodeFailure("the node's stream ended without its done event")

    async def fail(self, reason: str) -> OpenAIError:
        """Abort the completion (no charge) and say so in OpenAI's shape."""
        self.failed = True
        _log.warning(
            "completion_node_failed",
            completion_id=self.completion_id,
            node_id=self.node_id,
            reason=reason,
        )
        self.deps.metrics.llm_completions.labels(self.request.model, "node_failed").inc()
        with anyio.CancelScope(shield=True):
            await self.ledger.abort(self.completion_id, reason=f"node failed: {reason}")
        return node_failed(
            f"The node serving this completion failed ({reason}); it was aborted and "
            "nothing is charged."
        )

    async def close(self) -> None:
        """Hang up on the node and count the completion out; a completion that neither
        finished nor failed (its client left) is aborted later unless the node commits."""
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):
            await self.events.aclose()
        self.lease.release()
        if self.outcome is None and not self.failed:
            _log.info(
                "completion_client_gone", completion_id=self.completion_id, node_id=self.node_id
            )
            self.deps.metrics.llm_completions.labels(self.request.model, "client_gone").inc()
            self.deps.llm.spawn(
                self.ledger.abort_unless_committed(
                    self.completion_id, after_s=self.deps.llm.disconnect_grace_s
                )
            )

    async def _settle(self, done: DoneEvent) -> Outcome:
        record = await self.ledger.get_record(self.completion_id)
        if record is None or not is_committed(record):
            raise NodeFailure("the node reported done but the ledger holds no commit")
        prompt_tokens, completion_tokens = record.prompt_tokens, record.completion_tokens
        if (prompt_tokens, completion_tokens) != (done.prompt_tokens, done.completion_tokens):
            _log.warning(
                "completion_counts_differ",
                completion_id=self.completion_id,
                node_id=self.node_id,
                ledger=[prompt_tokens, completion_tokens],
                node=[done.prompt_tokens, done.completion_tokens],
            )
        self._observe()
        self.deps.metrics.llm_completions.labels(self.request.model, "committed").inc()
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        return Outcome(finish_reason=done.finish_reason, usage=usage)

    def _observe(self) -> None:
        """Time to first token, and tokens/s from the first to the last (not counting the
        node's commit after it)."""
        if self.first_token_at is None or self.last_token_at is None:
            return
        after_first = self.last_token_at - self.first_token_at
        rate = (self.tokens - 1) / after_first if self.tokens > 1 and after_first > 0 else None
        self.deps.metrics.observe_completion(
            node_id=self.node_id,
            model=self.request.model,
            ttft_s=self.first_token_at - self.called_at,
            tokens_per_s=rate,
        )


async def start_completion(
    deps: ApiDeps,
    ledger: CompletionLedger,
    *,
    key_id: str,
    request: LlmRequest,
    region: str | None,
    include_usage: bool,
    fingerprint: str | None,
) -> RunningCompletion:
    """Route, open and call; the running completion once a node accepted it. OpenAIError
    503 when no node can take it, 502 when every node tried failed, or the ledger's
    refusal of the open (mapped by the controller's handler)."""
    views = await read_active_node_views(deps.read_model)
    candidates = get_warm_candidates(views, request.model)
    excluded: set[str] = set()
    for _ in range(ROUTE_ATTEMPTS_MAX):
        try:
            lease = deps.llm.router.choose(
                request.model,
                candidates,
                region=region,
                ttft_s=deps.metrics.node_latencies.get_ttft_s,
                excluded=excluded,
            )
        except NoNodeAvailable as exc:
            if excluded:
                break
            code = "nodes_busy" if exc.busy else "model_not_warm"
            raise unavailable(f"{exc}; retry shortly.", code=code) from None
        running = await _open_and_call(deps, ledger, lease, key_id, request)
        if running is None:
            excluded.add(lease.node.node_id)
            continue
        running.include_usage, running.fingerprint = include_usage, fingerprint
        return running
    raise node_failed(
        f"No node could take the completion (tried {len(excluded)}); nothing is charged."
    )


async def _open_and_call(
    deps: ApiDeps, ledger: CompletionLedger, lease: NodeLease, key_id: str, request: LlmRequest
) -> RunningCompletion | None:
    """Open on the ledger, call the node and wait for its first event; None (aborted,
    lease released) when the node cannot be reached, refuses or fails before a token."""
    try:
        completion_id = await ledger.open(
            key_id=key_id, node_id=lease.node.node_id, request=request
        )
    except BaseException:
        lease.release()
        raise
    called_at = time.perf_counter()
    call = NodeCompletionCall(completion_id=completion_id, request=request)
    events = deps.llm.link.stream_completion(lease.node.endpoint, call)
    first: NodeEvent | None = None
    reason = "the node's stream ended at once"
    try:
        first = await anext(events, None)
    except NodeLinkError as exc:
        reason = str(exc)
    except BaseException:
        await _give_up(deps, ledger, lease, events, completion_id, "the API stopped")
        raise
    if isinstance(first, ErrorEvent):
        reason = f"{first.code}: {first.message}"
    if first is None or isinstance(first, ErrorEvent):
        _log.warning(
            "completion_node_refused",
            completion_id=completion_id,
            node_id=lease.node.node_id,
            reason=reason,
        )
        deps.metrics.llm_completions.labels(request.model, "refused").inc()
        await _give_up(deps, ledger, lease, events, completion_id, f"node refused: {reason}")
        return None
    return RunningCompletion(
        deps=deps,
        ledger=ledger,
        completion_id=completion_id,
        lease=lease,
        events=events,
        first=first,
        request=request,
        created=deps.clock_ns() // NS_PER_S,
        called_at=called_at,
        first_token_at=time.perf_counter() if isinstance(first, TokenEvent) else None,
    )


async def _give_up(
    deps: ApiDeps,
    ledger: CompletionLedger,
    lease: NodeLease,
    events: AsyncGenerator[NodeEvent, None],
    completion_id: str,
    reason: str,
) -> None:
    """Hang up, count the completion out and abort it (nothing was delivered)."""
    with anyio.CancelScope(shield=True):
        await events.aclose()
        lease.release()
        await ledger.abort(completion_id, reason=reason)


async def stream_chat(run: RunningCompletion) -> AsyncIterator[bytes]:
    """The chat completion as OpenAI's chunks, ending ``data: [DONE]`` (or an error event)."""

    def chunk(delta: ChunkDelta, finish: FinishReason | None = None) -> bytes:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish)
        return encode_sse(
            ChatCompletionChunk(
                id=run.completion_id,
                created=run.created,
                model=run.request.model,
                choices=[choice],
                system_fingerprint=run.fingerprint,
            )
        )

    try:
        yield chunk(ChunkDelta(role="assistant", content=""))
        try:
            async for token in run.tokens_in_order():
                if token.text:
                    yield chunk(ChunkDelta(content=token.text))
        except NodeFailure as exc:
            yield encode_sse_error(await run.fail(str(exc)))
            return
        outcome = _require_outcome(run)
        yield chunk(ChunkDelta(), outcome.finish_reason)
        if run.include_usage:
            yield encode_sse(
                ChatCompletionChunk(
                    id=run.completion_id,
                    created=run.created,
                    model=run.request.model,
                    choices=[],
                    usage=outcome.usage,
                    system_fingerprint=run.fingerprint,
                )
            )
        yield SSE_DONE
    finally:
        await run.close()


async def stream_text(run: RunningCompletion) -> AsyncIterator[bytes]:
    """The text completion as OpenAI's chunks, ending ``data: [DONE]`` (or an error event)."""

    def chunk(text: str, finish: FinishReason | None = None, usage: Usage | None = None) -> bytes:
        choices = [] if usage else [TextChoice(index=0, text=text, finish_reason=finish)]
        return encode_sse(
            Completion(
                id=run.completion_id,
                created=run.created,
                model=run.request.model,
                choices=choices,
                usage=usage,
                system_fingerprint=run.fingerprint,
            )
        )

    try:
        try:
            async for token in run.tokens_in_order():
                if token.text:
                    yield chunk(token.text)
        except NodeFailure as exc:
            yield encode_sse_error(await run.fail(str(exc)))
            return
        outcome = _require_outcome(run)
        yield chunk("", outcome.finish_reason)
        if run.include_usage:
            yield chunk("", usage=outcome.usage)
        yield SSE_DONE
    finally:
        await run.close()


async def collect_chat(run: RunningCompletion) -> ChatCompletion:
    """The whole chat completion as one object (``stream`` false)."""
    text, outcome = await _collect(run)
    choice = ChatChoice(
        index=0,
        message=AssistantMessage(content=text),
        finish_reason=outcome.finish_reason,
    )
    return ChatCompletion(
        id=run.completion_id,
        created=run.created,
        model=run.request.model,
        choices=[choice],
        usage=outcome.usage,
        system_fingerprint=run.fingerprint,
    )


async def collect_text(run: RunningCompletion) -> Completion:
    """The whole text completion as one object (``stream`` false)."""
    text, outcome = await _collect(run)
    choice = TextChoice(index=0, text=text, finish_reason=outcome.finish_reason)
    return Completion(
        id=run.completion_id,
        created=run.created,
        model=run.request.model,
        choices=[choice],
        usage=outcome.usage,
        system_fingerprint=run.fingerprint,
    )


async def _collect(run: RunningCompletion) -> tuple[str, Outcome]:
    pieces: list[str] = []
    try:
        try:
            async for token in run.tokens_in_order():
                pieces.append(token.text)
        except NodeFailure as exc:
            raise await run.fail(str(exc)) from None
        return "".join(pieces), _require_outcome(run)
    finally:
        await run.close()


def _require_outcome(run: RunningCompletion) -> Outcome:
    if run.outcome is None:
        raise AssertionError("a completion's tokens ended without an outcome")
    return run.outcome

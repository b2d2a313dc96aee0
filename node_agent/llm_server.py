"""The node's completion server: ``POST /v1/node/completions`` (``adapters.llm_link.wire``).

Before a token is generated the call is checked in a fixed order, each refusal an
``ErrorEvent`` with a stable ``NodeErrorCode`` as the body of a 4xx/503 answer, and nothing
committed: the node is not stopping; the model is served here with a slot free; the ledger
has a completion of that id, opened to this node, still open, for this model, with the
request's digest and its terms (``max_tokens``, greedy); the prompt tokenizes to at least one
and at most ``prompt_tokens_max`` ids. Nobody makes the node generate for a completion the
ledger has not escrowed.

Generation runs in a worker thread (``llm_stream.generate_stream``) and hands each token to
the response through a bounded ``asyncio.Queue`` (``TOKEN_EVENTS_QUEUED_MAX``): a reader that
stops reading blocks the response's writes, the queue fills, and the generation thread waits
(looking at its cancel flag every ``CANCEL_POLL_S``), so the node holds at most that many
events per completion besides the socket's own buffers. A client that disconnects (or a
response that cannot be written) sets the cancel flag: generation stops at the next token.

However the response ended, a completion with at least one token is committed: the
``CompletionBundle`` is stored through the objects API, then ``completion.commit`` carries its
counts, commitment and object digest; a connected reader then gets the ``DoneEvent``. A
client that hung up is charged for the tokens generated until the node saw it go (finish
reason "length"); one cancelled before its first token is not committed (the API aborts it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import threading
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from litestar import Litestar, asgi, get
from litestar.types import Receive, Scope, Send

from adapters.compute.llm_model import LoadedModel
from adapters.compute.llm_prompts import encode
from adapters.compute.llm_stream import Sampling, StreamedToken, StreamResult, generate_stream
from adapters.compute.llm_toploc import compute_toploc_proof
from adapters.llm_link.wire import (
    NDJSON,
    NODE_COMPLETIONS_PATH,
    DoneEvent,
    ErrorEvent,
    NodeCompletionCall,
    NodeErrorCode,
    NodeEvent,
    TokenEvent,
    encode_event,
)
from node_agent.ledger_link import (
    CommitRefused,
    CompletionCommit,
    CompletionLedger,
    LedgerUnavailable,
)
from node_agent.llm_admission import REFUSAL_STATUS, Refusal, check_prompt, check_record
from proofs.llm_request import CompletionBundle, encode_bundle

TOKEN_EVENTS_QUEUED_MAX = 64
"""Token events waiting for the response per completion (then the generation thread waits)."""
CALL_BYTES_MAX = 8 << 20
"""A call's body at most: an opened prompt is within its model's context (at most 2^20
tokens, about as many bytes), JSON escaping aside."""
CANCEL_POLL_S = 0.05
"""How often a generation thread blocked on a full queue looks at its cancel flag."""
COMMIT_ATTEMPTS_MAX = 5
COMMIT_BACKOFF_S = 0.5
HEALTH_PATH = "/v1/node/health"

GenerateFn = Callable[..., Generator[StreamedToken, None, StreamResult]]

_log = structlog.get_logger("flopledger.agent.llm")
_END = object()


@dataclass
class ServedModel:
    """A model held warm here and how many of its completions run at once."""

    loaded: LoadedModel
    capacity: int
    in_flight: int = 0


class CompletionServer:
    """Checks calls, runs their generations, commits what they produced."""

    def __init__(
        self,
        *,
        node_id: str,
        models: Mapping[str, ServedModel],
        ledger: CompletionLedger,
        generate: GenerateFn = generate_stream,
        token_events_queued_max: int = TOKEN_EVENTS_QUEUED_MAX,
    ) -> None:
        self.node_id = node_id
        self.models = dict(models)
        self.ledger = ledger
        self.generate = generate
        self.token_events_queued_max = token_events_queued_max
        self.stopping = False
        self.committed: list[str] = []
        workers = max(1, sum(m.capacity for m in self.models.values()))
        self.executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="llm")
        self._generations: set[Generation] = set()

    @property
    def in_flight(self) -> int:
        """Completions generating or committing now."""
        return len(self._generations)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI handler of ``POST /v1/node/completions``."""
        if scope.get("method") != "POST":
            refusal = Refusal(NodeErrorCode.CALL_INVALID, "POST a NodeCompletionCall")
            await _send_whole(send, 405, encode_event(refusal.event))
            return
        try:
            generation = await self.admit(await _read_body(receive))
        except Refusal as refusal:
            _log.info("llm_call_refused", code=refusal.code, detail=refusal.message)
            await _send_whole(send, REFUSAL_STATUS[refusal.code], encode_event(refusal.event))
            return
        await _serve_stream(generation, send, receive)

    async def admit(self, body: bytes | None) -> Generation:
        """Check a call (the module docstring's order) and start its generation."""
        if self.stopping:
            raise Refusal(NodeErrorCode.NODE_STOPPING, "the node is shutting down")
        if body is None:
            raise Refusal(NodeErrorCode.CALL_INVALID, f"a call is at most {CALL_BYTES_MAX} bytes")
        try:
            call = msgspec.json.decode(body, type=NodeCompletionCall)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Refusal(NodeErrorCode.CALL_INVALID, str(exc)[:200]) from exc
        served = self.models.get(call.request.model)
        if served is None:
            raise Refusal(NodeErrorCode.MODEL_NOT_SERVED, f"{call.request.model} is not served")
        if served.in_flight >= served.capacity:
            raise Refusal(NodeErrorCode.NODE_AT_CAPACITY, f"{served.capacity} in flight")
        served.in_flight += 1  # held from here: the checks below await
        try:
            try:
                record = await self.ledger.get_completion_record(call.completion_id)
            except LedgerUnavailable as exc:
                raise Refusal(NodeErrorCode.LEDGER_UNAVAILABLE, str(exc)[:200]) from exc
            opened = check_record(self.node_id, call, record)
            prompt_ids = await asyncio.to_thread(encode, served.loaded, call.request)
            check_prompt(prompt_ids, opened, served.loaded.context_tokens)
        except BaseException:
            served.in_flight -= 1
            raise
        return self._start(call, served, prompt_ids)

    def _start(
        self, call: NodeCompletionCall, served: ServedModel, prompt_ids: tuple[int, ...]
    ) -> Generation:
        generation = Generation(self, call, served, prompt_ids)
        self._generations.add(generation)
        generation.outcome.add_done_callback(lambda _: self._generations.discard(generation))
        return generation

    async def drain(self, deadline_s: float) -> None:
        """Refuse new calls; let those in flight finish (and commit) within ``deadline_s``,
        then cancel their generations and let them commit what they have."""
        self.stopping = True
        generations = set(self._generations)
        if not generations:
            return
        await asyncio.wait({g.outcome for g in generations}, timeout=deadline_s)
        late = [g for g in generations if not g.outcome.done()]
        for generation in late:
            generation.cancel.set()
        if late:
            await asyncio.wait({g.outcome for g in late})

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class Generation:
    """One admitted completion: its thread, its token queue, its outcome (done or error)."""

    def __init__(
        self,
        server: CompletionServer,
        call: NodeCompletionCall,
        served: ServedModel,
        prompt_ids: tuple[int, ...],
    ) -> None:
        self.server, self.call, self.served, self.prompt_ids = server, call, served, prompt_ids
        self.queue: asyncio.Queue[Any] = asyncio.Queue(server.token_events_queued_max)
        self.cancel = threading.Event()
        self.tokens_generated = 0
        self._loop = asyncio.get_running_loop()
        self.outcome: asyncio.Task[NodeEvent] = asyncio.create_task(self._run())

    async def _run(self) -> NodeEvent:
        completion_id = self.call.completion_id
        try:
            future = self._loop.run_in_executor(self.server.executor, self._generate)
            result, bundle = await future
            if bundle is None:
                _log.info("llm_cancelled_before_first_token", completion_id=completion_id)
                return ErrorEvent(code=NodeErrorCode.GENERATION_FAILED, message="cancelled")
            return await self._commit(bundle, result)
        except Exception as exc:  # a generation bug must not leave the stream hanging
            _log.exception("llm_generation_failed", completion_id=completion_id)
            return ErrorEvent(code=NodeErrorCode.GENERATION_FAILED, message=type(exc).__name__)
        finally:
            self.served.in_flight -= 1

    def _generate(self) -> tuple[StreamResult, CompletionBundle | None]:
        """In the worker thread: tokens into the queue, then the bundle (proof included)."""
        try:
            sampling = Sampling.from_request(self.call.request)
            loaded = self.served.loaded
            stream = self.server.generate(loaded, self.prompt_ids, sampling, self.cancel)
            while True:
                try:
                    token = next(stream)
                except StopIteration as end:
                    result: StreamResult = end.value
                    break
                self.tokens_generated += 1
                self._put(token)  # a cancelled put: the stream sees the flag and ends
        finally:
            self._put(_END)
        completion = result.completion
        if not completion.token_ids:
            return result, None
        bundle = CompletionBundle(
            request=self.call.request,
            prompt_ids=list(completion.prompt_ids),
            token_ids=list(completion.token_ids),
            finish_reason=result.finish_reason,
            proof=compute_toploc_proof(completion),
        )
        return result, bundle

    def _put(self, item: object) -> bool:
        """Queue ``item`` for the response, waiting while it is full; False if cancelled."""
        future = asyncio.run_coroutine_threadsafe(self.queue.put(item), self._loop)
        while True:
            try:
                future.result(timeout=CANCEL_POLL_S)
                return True
            except concurrent.futures.TimeoutError:
                if self.cancel.is_set():
                    future.cancel()
                    return False

    async def _commit(self, bundle: CompletionBundle, result: StreamResult) -> NodeEvent:
        completion_id, ledger = self.call.completion_id, self.server.ledger
        data = encode_bundle(bundle)
        commit = CompletionCommit(
            completion_id=completion_id,
            prompt_tokens=len(bundle.prompt_ids),
            completion_tokens=len(bundle.token_ids),
            commitment=bundle.compute_commitment(),
            proof_digest=hashlib.sha256(data).digest(),  # the object's address
        )
        try:
            stored: str = await _with_retries(lambda: ledger.put_object(data))
            if stored != commit.proof_digest.hex():
                raise CommitRefused("object_digest_mismatch", f"stored as {stored}")
            await _with_retries(lambda: ledger.commit_completion(commit))
        except CommitRefused as refused:
            if not await _is_committed(ledger, commit):
                _log.warning("llm_commit_refused", completion_id=completion_id, code=refused.code)
                return ErrorEvent(code=NodeErrorCode.COMMIT_FAILED, message=refused.code)
        except LedgerUnavailable as exc:
            _log.warning("llm_commit_failed", completion_id=completion_id, error=str(exc))
            return ErrorEvent(code=NodeErrorCode.COMMIT_FAILED, message="ledger unavailable")
        self.server.committed.append(completion_id)
        _log.info(
            "llm_completion_committed",
            completion_id=completion_id,
            completion_tokens=commit.completion_tokens,
            cancelled=result.cancelled,
        )
        return DoneEvent(
            prompt_tokens=commit.prompt_tokens,
            completion_tokens=commit.completion_tokens,
            finish_reason=result.finish_reason,
            commitment=commit.commitment.hex(),
        )


def create_llm_app(server: CompletionServer) -> Litestar:
    """The completion server's HTTP app: the completions route and a health read."""

    @asgi(NODE_COMPLETIONS_PATH, copy_scope=True)
    async def completions(scope: Scope, receive: Receive, send: Send) -> None:
        await server.handle(scope, receive, send)

    @get(HEALTH_PATH, sync_to_thread=False)
    def health() -> dict[str, Any]:
        models = {
            model_id: {"capacity": m.capacity, "in_flight": m.in_flight}
            for model_id, m in server.models.items()
        }
        return {"node_id": server.node_id, "stopping": server.stopping, "models": models}

    return Litestar(route_handlers=[completions, health], openapi_config=None)


async def _serve_stream(generation: Generation, send: Send, receive: Receive) -> None:
    """Pump the generation's events to the response until done, or until the client goes."""
    pump = asyncio.create_task(_pump(generation, send))
    gone = asyncio.create_task(_wait_disconnect(receive))
    try:
        await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        broken = not pump.done() or pump.cancelled() or pump.exception() is not None
        if broken:
            generation.cancel.set()
            _log.info("llm_client_gone", completion_id=generation.call.completion_id)
        for task in (pump, gone):
            task.cancel()
        await asyncio.gather(pump, gone, return_exceptions=True)


async def _pump(generation: Generation, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _headers()})
    while (item := await generation.queue.get()) is not _END:
        event = TokenEvent(token_id=item.token_id, text=item.text)
        await send({"type": "http.response.body", "body": encode_event(event), "more_body": True})
    final = await asyncio.shield(generation.outcome)
    await send({"type": "http.response.body", "body": encode_event(final), "more_body": False})


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None past ``CALL_BYTES_MAX`` (or when the client left)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        body += chunk
        if len(body) > CALL_BYTES_MAX:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def _send_whole(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _headers()})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _headers() -> list[tuple[bytes, bytes]]:
    return [(b"content-type", NDJSON.encode()), (b"cache-control", b"no-store")]


async def _is_committed(ledger: CompletionLedger, commit: CompletionCommit) -> bool:
    """Whether the ledger holds this very commit (a retried one that had gone through)."""
    with contextlib.suppress(LedgerUnavailable):
        record = await ledger.get_completion_record(commit.completion_id)
        return record is not None and record.commitment == commit.commitment
    return False


async def _with_retries(call: Callable[[], Awaitable[Any]]) -> Any:
    """``call`` again after an outage, a bounded number of times (the commit window is
    minutes; a completion that cannot be committed is aborted by the API)."""
    for attempt in range(COMMIT_ATTEMPTS_MAX):
        try:
            return await call()
        except LedgerUnavailable:
            if attempt + 1 == COMMIT_ATTEMPTS_MAX:
                raise
            await asyncio.sleep(COMMIT_BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")

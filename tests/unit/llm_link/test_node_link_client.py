"""The API's node link client against scripted node answers (httpx's mock transport)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import msgspec
import pytest

from adapters.llm_link import client as link
from adapters.llm_link.wire import (
    LINE_BYTES_MAX,
    NODE_COMPLETIONS_PATH,
    DoneEvent,
    ErrorEvent,
    NodeCompletionCall,
    NodeEvent,
    TokenEvent,
    encode_event,
)
from proofs.llm_request import LlmRequest

ENDPOINT = "http://node.test:8100/"
CALL = NodeCompletionCall(
    completion_id="c-1",
    request=LlmRequest(
        model="tiny-llama-0",
        messages=None,
        prompt="hi",
        max_tokens=4,
        temperature=0.0,
        top_p=1.0,
        seed=0,
        stop=[],
    ),
)
TOKENS = [TokenEvent(token_id=104, text="h"), TokenEvent(token_id=105, text="i")]
DONE = DoneEvent(prompt_tokens=2, completion_tokens=2, finish_reason="length", commitment="00")


class Body(httpx.AsyncByteStream):
    """A response body from chunks (or an error raised after them); records its closing."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error, self.closed = chunks, error, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closed = True


def _client(answer: Callable[[httpx.Request], httpx.Response]) -> link.NodeLinkClient:
    return link.NodeLinkClient(httpx.AsyncClient(transport=httpx.MockTransport(answer)))


def _ndjson(*events: NodeEvent) -> bytes:
    return b"".join(encode_event(e) for e in events)


async def _events(client: link.NodeLinkClient) -> list[NodeEvent]:
    return [event async for event in client.stream_completion(ENDPOINT, CALL)]


async def test_tokens_then_done_and_nothing_read_after_done() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=Body([_ndjson(*TOKENS, DONE, *TOKENS)]))

    assert await _events(_client(answer)) == [*TOKENS, DONE]
    assert seen[0].url == httpx.URL("http://node.test:8100" + NODE_COMPLETIONS_PATH)
    assert msgspec.json.decode(seen[0].content, type=NodeCompletionCall) == CALL


async def test_events_split_anywhere_across_chunks_read_the_same() -> None:
    data = _ndjson(*TOKENS, DONE)
    body = Body([data[i : i + 1] for i in range(len(data))])
    events = await _events(_client(lambda _: httpx.Response(200, stream=body)))
    assert events == [*TOKENS, DONE]


async def test_an_error_event_ends_the_stream() -> None:
    failed = ErrorEvent(code="generation_failed", message="out of memory")
    body = Body([_ndjson(TOKENS[0], failed)])
    assert await _events(_client(lambda _: httpx.Response(200, stream=body))) == [
        TOKENS[0],
        failed,
    ]


async def test_a_stream_ending_without_done_is_broken_after_its_tokens() -> None:
    body = Body([_ndjson(*TOKENS)])
    received: list[NodeEvent] = []
    with pytest.raises(link.NodeStreamBroken, match="without a done"):
        async for event in _client(lambda _: httpx.Response(200, stream=body)).stream_completion(
            ENDPOINT, CALL
        ):
            received.append(event)
    assert received == TOKENS


async def test_a_connection_cut_mid_stream_is_broken() -> None:
    body = Body([_ndjson(TOKENS[0])], error=httpx.RemoteProtocolError("peer closed"))
    with pytest.raises(link.NodeStreamBroken, match="broke off"):
        await _events(_client(lambda _: httpx.Response(200, stream=body)))


async def test_a_line_that_is_no_event_is_broken() -> None:
    body = Body([b'{"type":"token","token_id":"x"}\n'])
    with pytest.raises(link.NodeStreamBroken, match="not a node event"):
        await _events(_client(lambda _: httpx.Response(200, stream=body)))


async def test_a_line_without_end_is_refused_at_the_bound_not_buffered() -> None:
    class Endless(httpx.AsyncByteStream):
        sent = 0

        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:  # a node that never sends a newline
                self.sent += 4096
                yield b"a" * 4096

    body = Endless()
    with pytest.raises(link.NodeStreamBroken, match="at most"):
        await _events(_client(lambda _: httpx.Response(200, stream=body)))
    assert body.sent <= LINE_BYTES_MAX + 4096


async def test_a_line_at_the_bound_is_read_one_past_is_refused() -> None:
    lines = [line async for line in link.iter_bounded_lines(_chunks(b"a" * 10 + b"\n"), 10)]
    assert lines == [b"a" * 10]
    with pytest.raises(link.NodeStreamBroken):
        [line async for line in link.iter_bounded_lines(_chunks(b"a" * 11 + b"\n"), 10)]


async def test_a_refusal_with_an_error_event_is_that_event() -> None:
    refused = ErrorEvent(code="completion_not_opened", message="not opened to this node")
    answer = httpx.Response(409, content=encode_event(refused))
    assert await _events(_client(lambda _: answer)) == [refused]


async def test_a_refusal_without_an_error_event_is_broken_with_its_status() -> None:
    answer = httpx.Response(500, json={"detail": "internal"})
    with pytest.raises(link.NodeStreamBroken) as caught:
        await _events(_client(lambda _: answer))
    assert caught.value.status == 500


async def test_no_connection_is_unreachable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(link.NodeUnreachable):
        await _events(_client(answer))


async def test_closing_the_iterator_early_closes_the_connection() -> None:
    body = Body([_ndjson(*TOKENS, DONE)])
    client = _client(lambda _: httpx.Response(200, stream=body))
    async with contextlib.aclosing(client.stream_completion(ENDPOINT, CALL)) as events:
        async for _event in events:
            break
    assert body.closed


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data

"""The node link client (``adapters.llm_link.client``) over real TCP: a tiny NDJSON server
on a free loopback port (the mock-transport tests are ``test_node_link_client``): the call
reaches the node and its events come back in order, an unreachable node, a dropped or
stalled stream, and a hang-up that the node sees (how a client's disconnect stops it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec
import pytest

from adapters.llm_link.client import NodeLinkClient, NodeStreamBroken, NodeUnreachable
from adapters.llm_link.wire import (
    NODE_COMPLETIONS_PATH,
    DoneEvent,
    ErrorEvent,
    NodeCompletionCall,
    TokenEvent,
    encode_event,
)
from proofs.llm_request import LlmRequest
from tests.serve_process import free_port

REQUEST = LlmRequest(
    model="tiny-llama-1",
    messages=None,
    prompt="Once",
    max_tokens=4,
    temperature=0.0,
    top_p=1.0,
    seed=0,
    stop=[],
)
CALL = NodeCompletionCall(completion_id="cmp-1", request=REQUEST)
DONE = DoneEvent(prompt_tokens=4, completion_tokens=2, finish_reason="length", commitment="ab" * 32)


@dataclass
class Answer:
    """What the fake node writes: a status, then lines (each a chunk), then the end of the
    body, or an abrupt close (``close_early``); ``gap_s`` between lines."""

    lines: list[bytes]
    status: int = 200
    gap_s: float = 0.0
    close_early: bool = False


@dataclass
class Seen:
    paths: list[str] = field(default_factory=list)
    calls: list[NodeCompletionCall] = field(default_factory=list)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def fake_node(answer: Callable[[], Answer]) -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode().split("\r\n")
        seen.paths.append(request_line.split(" ")[1])
        headers = dict(h.lower().split(": ", 1) for h in header_lines if h)
        body = await reader.readexactly(int(headers["content-length"]))
        seen.calls.append(msgspec.json.decode(body, type=NodeCompletionCall))
        plan = answer()
        writer.write(
            f"HTTP/1.1 {plan.status} X\r\ncontent-type: application/x-ndjson\r\n"
            "transfer-encoding: chunked\r\n\r\n".encode()
        )
        try:
            for line in plan.lines:
                writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                await writer.drain()
                await asyncio.sleep(plan.gap_s)
            if not plan.close_early:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                await reader.read()  # wait for the client to hang up
        except ConnectionError:
            seen.hung_up.set()
        finally:
            writer.close()
        if reader.at_eof():
            seen.hung_up.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/", seen
    finally:
        server.close()


def tokens(count: int) -> list[bytes]:
    return [encode_event(TokenEvent(token_id=i, text=f"t{i}")) for i in range(count)]


async def read_all(client: NodeLinkClient, url: str) -> list[object]:
    stream = client.stream_completion(url, CALL)
    try:
        return [event async for event in stream]
    finally:
        await stream.aclose()


def test_the_call_reaches_the_node_and_its_events_come_back_in_order() -> None:
    async def scenario() -> None:
        client = NodeLinkClient()
        async with fake_node(lambda: Answer([*tokens(2), encode_event(DONE)])) as (url, seen):
            events = await read_all(client, url)
        await client.aclose()
        assert events == [TokenEvent(0, "t0"), TokenEvent(1, "t1"), DONE]
        assert seen.paths == [NODE_COMPLETIONS_PATH] and seen.calls == [CALL]

    asyncio.run(scenario())


def test_a_refusal_is_its_error_event() -> None:
    refusal = encode_event(ErrorEvent(code="completion_not_opened", message="no such record"))

    async def scenario() -> None:
        client = NodeLinkClient()
        async with fake_node(lambda: Answer([refusal], status=409)) as (url, _):
            events = await read_all(client, url)
        await client.aclose()
        assert events == [ErrorEvent(code="completion_not_opened", message="no such record")]

    asyncio.run(scenario())


def test_an_unreachable_node_is_node_unreachable() -> None:
    async def scenario() -> None:
        client = NodeLinkClient(connect_timeout_s=2.0)
        with pytest.raises(NodeUnreachable):
            await read_all(client, f"http://127.0.0.1:{free_port()}")
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "answer",
    [Answer(tokens(2)), Answer(tokens(2), close_early=True)],
    ids=["no-done", "dropped"],
)
def test_a_stream_cut_after_tokens_is_broken(answer: Answer) -> None:
    async def scenario() -> None:
        client = NodeLinkClient()
        received: list[object] = []
        async with fake_node(lambda: answer) as (url, _):
            stream = client.stream_completion(url, CALL)
            with pytest.raises(NodeStreamBroken):
                async for event in stream:
                    received.append(event)
        await client.aclose()
        assert received == [TokenEvent(0, "t0"), TokenEvent(1, "t1")]

    asyncio.run(scenario())


def test_a_stalled_node_is_broken_after_the_read_timeout() -> None:
    async def scenario() -> None:
        client = NodeLinkClient(read_timeout_s=0.2)
        async with fake_node(lambda: Answer(tokens(3), gap_s=2.0)) as (url, _):
            with pytest.raises(NodeStreamBroken):
                await read_all(client, url)
        await client.aclose()

    asyncio.run(scenario())


def test_closing_the_stream_hangs_up_on_the_node() -> None:
    async def scenario() -> None:
        client = NodeLinkClient()
        async with fake_node(lambda: Answer(tokens(200), gap_s=0.01)) as (url, seen):
            stream = client.stream_completion(url, CALL)
            assert await anext(stream) == TokenEvent(0, "t0")
            await stream.aclose()
            await asyncio.wait_for(seen.hung_up.wait(), timeout=5)
        await client.aclose()

    asyncio.run(scenario())

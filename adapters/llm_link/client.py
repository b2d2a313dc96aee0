"""The API's side of the API -> node completion link: one streamed POST, events as they come.

``NodeLinkClient.stream_completion(endpoint, call)`` posts a ``NodeCompletionCall`` to the
node's advertised endpoint and yields its ``NodeEvent`` lines as they arrive: token events,
then one done or error event, after which it stops reading. Lines are split here with a
bound (``wire.LINE_BYTES_MAX``), not by httpx's line iterator, so a node that never sends a
newline cannot make the API buffer without end. Closing the generator (``aclose``, or
leaving an ``async with contextlib.aclosing(...)`` block, what the API does when its client
disconnects) closes the connection, and the node cancels the generation.

Failures are typed: ``NodeUnreachable`` when no connection was made (nothing generated:
another node may be tried), ``NodeStreamBroken`` when the answer is not a well-formed stream
ending in a done or error event (a node failure mid-stream: the API aborts the completion).
A refusal (status >= 400) whose body is an error event is yielded as that event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import httpx
import msgspec

from adapters.llm_link.wire import (
    LINE_BYTES_MAX,
    NDJSON,
    NODE_COMPLETIONS_PATH,
    DoneEvent,
    ErrorEvent,
    NodeCompletionCall,
    NodeEvent,
    decode_event,
)

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0
"""Silence allowed between two reads: a long prompt's prefill on a CPU node comes first."""
NODE_CONNECTIONS_MAX = 1024
"""Streams open to nodes at once, over all nodes (a stream holds its connection)."""


class NodeLinkError(Exception):
    """The node gave no usable answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NodeUnreachable(NodeLinkError):
    """No connection to the node: nothing was generated."""


class NodeStreamBroken(NodeLinkError):
    """The node's answer broke off or is not a stream of node events."""


class NodeLinkClient:
    """Streams completions from nodes; one client (connection pool) for all of them."""

    def __init__(
        self,
        http: httpx.AsyncClient | None = None,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        limits = httpx.Limits(
            max_connections=NODE_CONNECTIONS_MAX, max_keepalive_connections=NODE_CONNECTIONS_MAX
        )
        self._http = http or httpx.AsyncClient(timeout=timeout, limits=limits)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream_completion(
        self, endpoint: str, call: NodeCompletionCall
    ) -> AsyncGenerator[NodeEvent, None]:
        """The node's events for ``call``, ending with its done or error event."""
        url = endpoint.rstrip("/") + NODE_COMPLETIONS_PATH
        body = msgspec.json.encode(call)
        headers = {"content-type": "application/json", "accept": NDJSON}
        try:
            async with self._http.stream("POST", url, content=body, headers=headers) as response:
                if response.status_code >= 400:
                    yield await _read_refusal(response)
                    return
                if response.status_code != 200:
                    raise NodeStreamBroken(
                        f"the node answered {response.status_code}", status=response.status_code
                    )
                async for line in iter_bounded_lines(response.aiter_bytes()):
                    event = _decode(line)
                    yield event
                    if isinstance(event, DoneEvent | ErrorEvent):
                        return
                raise NodeStreamBroken("the node's stream ended without a done or error event")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise NodeUnreachable(f"cannot reach the node at {endpoint}: {exc}") from exc
        except httpx.TransportError as exc:
            raise NodeStreamBroken(f"the node's stream broke off: {exc!r}") from exc


async def iter_bounded_lines(
    chunks: AsyncIterator[bytes], line_bytes_max: int = LINE_BYTES_MAX
) -> AsyncIterator[bytes]:
    """Non-empty lines of a byte stream; ``NodeStreamBroken`` past ``line_bytes_max``."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if len(line) > line_bytes_max:
                raise NodeStreamBroken(f"a node event line is at most {line_bytes_max} bytes")
            if line.strip():
                yield line
        if len(buffer) > line_bytes_max:
            raise NodeStreamBroken(f"a node event line is at most {line_bytes_max} bytes")
    if buffer.strip():
        yield bytes(buffer)


async def _read_refusal(response: httpx.Response) -> ErrorEvent:
    """The error event a refusing node sends as its body (anything else: a broken answer)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > LINE_BYTES_MAX:
            break
    status = response.status_code
    try:
        event = decode_event(bytes(body).strip())
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NodeStreamBroken(f"the node answered {status}", status=status) from exc
    if not isinstance(event, ErrorEvent):
        raise NodeStreamBroken(
            f"the node answered {status} with a {type(event).__name__}", status=status
        )
    return event


def _decode(line: bytes) -> NodeEvent:
    try:
        return decode_event(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NodeStreamBroken(f"not a node event: {exc}") from exc

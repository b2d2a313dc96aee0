"""Wire types of the API -> node completion link (HTTP, NDJSON stream back).

Direct HTTP, not NATS: a token stream needs backpressure and cancellation end to end. Over
one TCP connection both come free: the node writes a line per token and blocks when the API
(and behind it the client) reads no more, so every buffer on the way stays bounded; a client
that disconnects makes the API close the node connection, and the node stops generating at
the next token. Core NATS has no flow control (a slow reader is dropped as a slow consumer)
and JetStream would persist every token. The node's endpoint is what it advertises on the
ledger (``node.advertise_models``); the node serves only a completion the ledger has opened
to it with this request's digest, so nobody makes it generate for free.

``POST {endpoint}/v1/node/completions`` with a ``NodeCompletionCall`` answers
``application/x-ndjson``: ``TokenEvent`` lines, then one ``DoneEvent`` (after the node has
uploaded its ``CompletionBundle`` and its ``completion.commit`` was accepted) or one
``ErrorEvent``. A stream that ends without either is a node failure.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from proofs.llm_request import LlmRequest

NODE_COMPLETIONS_PATH = "/v1/node/completions"
NDJSON = "application/x-ndjson"
LINE_BYTES_MAX = 1 << 16


class NodeCompletionCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    completion_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    request: LlmRequest


class TokenEvent(msgspec.Struct, frozen=True, tag="token", tag_field="type"):
    """One generated token: its id and the text it adds (may be empty mid-character)."""

    token_id: int
    text: str


class DoneEvent(msgspec.Struct, frozen=True, tag="done", tag_field="type"):
    """The completion is committed on the ledger with these counts."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    commitment: str
    """hex of the commitment recorded by ``completion.commit``."""


class NodeErrorCode(StrEnum):
    """Why a node refused (before any token) or failed a completion: ``ErrorEvent.code``.

    Refusals come as the body of a 4xx/503 answer, in the node's fixed order of checks;
    ``node_at_capacity``, ``node_stopping`` and ``ledger_unavailable`` are worth another node
    or a later try; the others are the API's mistake or a misrouted call.
    """

    CALL_INVALID = "call_invalid"
    NODE_STOPPING = "node_stopping"
    MODEL_NOT_SERVED = "model_not_served"
    LEDGER_UNAVAILABLE = "ledger_unavailable"
    COMPLETION_NOT_FOUND = "completion_not_found"
    COMPLETION_NOT_FOR_THIS_NODE = "completion_not_for_this_node"
    COMPLETION_NOT_OPEN = "completion_not_open"
    COMPLETION_MODEL_MISMATCH = "completion_model_mismatch"
    REQUEST_DIGEST_MISMATCH = "request_digest_mismatch"
    COMPLETION_TERMS_MISMATCH = "completion_terms_mismatch"
    PROMPT_EMPTY = "prompt_empty"
    PROMPT_TOKENS_ABOVE_MAX = "prompt_tokens_above_max"
    NODE_AT_CAPACITY = "node_at_capacity"
    GENERATION_FAILED = "generation_failed"
    COMMIT_FAILED = "commit_failed"


class ErrorEvent(msgspec.Struct, frozen=True, tag="error", tag_field="type"):
    """The node refused or failed the completion; nothing was committed."""

    code: str
    message: str


NodeEvent = TokenEvent | DoneEvent | ErrorEvent

_decoder = msgspec.json.Decoder(NodeEvent)


def encode_event(event: NodeEvent) -> bytes:
    return msgspec.json.encode(event) + b"\n"


def decode_event(line: bytes) -> NodeEvent:
    """One NDJSON line; raises ``msgspec.DecodeError``/``ValidationError`` on a bad line."""
    if len(line) > LINE_BYTES_MAX:
        raise msgspec.DecodeError(f"a node event line is at most {LINE_BYTES_MAX} bytes")
    return _decoder.decode(line)

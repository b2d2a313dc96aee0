"""What a completion was asked and what its node delivered, in the form the ledger binds.

``LlmRequest`` is the request an API forwards to a node, decoded from an OpenAI-compatible
body (chat messages, or a text prompt) with the sampling parameters that decide the tokens.
Its digest (``compute_request_digest``: SHA-256 of its canonical msgspec JSON, fields in
declaration order) is recorded on the ledger when the completion opens, so the node, the
validators and an auditor all check the same request: a node that drops or changes the system
prompt commits to prompt ids that the request does not tokenize to.

``CompletionBundle`` is the object a node uploads with its commitment: the request, the prompt
and completion token ids and the TOPLOC proof (``proofs.toploc``). Its object digest is the
``proof_digest`` of ``completion.commit``; ``compute_completion_commitment`` over its ids and
chunks is the ``commitment``.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec

from proofs.toploc import TOKEN_ID_MAX, TOKENS_MAX, ToplocProof, compute_completion_commitment

REQUEST_TAG = b"flopledger/llm/request/v1\x00"
ROLES = ("system", "user", "assistant")
MESSAGES_MAX = 256
MESSAGE_CHARS_MAX = 1 << 20
STOPS_MAX = 4
STOP_CHARS_MAX = 64
MAX_TOKENS_MAX = 4096
TEMPERATURE_MAX = 2.0
SEED_MAX = 2**63 - 1
BUNDLE_BYTES_MAX = 64 << 20

Role = Literal["system", "user", "assistant"]
TokenIds = list[Annotated[int, msgspec.Meta(ge=0, le=TOKEN_ID_MAX)]]


class ChatMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Role
    content: Annotated[str, msgspec.Meta(max_length=MESSAGE_CHARS_MAX)]


class LlmRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One completion request: ``messages`` (chat) xor ``prompt`` (text completion)."""

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    messages: Annotated[list[ChatMessage], msgspec.Meta(max_length=MESSAGES_MAX)] | None
    prompt: Annotated[str, msgspec.Meta(max_length=MESSAGE_CHARS_MAX)] | None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS_MAX)]
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=TEMPERATURE_MAX)]
    top_p: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
    seed: Annotated[int, msgspec.Meta(ge=0, le=SEED_MAX)]
    stop: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=STOP_CHARS_MAX)]],
        msgspec.Meta(max_length=STOPS_MAX),
    ]

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a request carries either messages (chat) or a prompt (text)")
        if self.messages is not None and not self.messages:
            raise ValueError("messages must not be empty")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def is_greedy(self) -> bool:
        """Temperature 0: every token must be the argmax of its logits (checked on replay)."""
        return self.temperature == 0.0


def encode_request(request: LlmRequest) -> bytes:
    """The canonical bytes of a request (msgspec JSON, fields in declaration order)."""
    return msgspec.json.encode(request)


def decode_request(data: bytes) -> LlmRequest:
    """Strict decoding; raises ``msgspec.ValidationError`` (or ``DecodeError``) on bad input."""
    return msgspec.json.decode(data, type=LlmRequest)


def compute_request_digest(request: LlmRequest) -> bytes:
    """SHA-256 of the tag and the canonical bytes: what ``completion.open`` records."""
    return hashlib.sha256(REQUEST_TAG + encode_request(request)).digest()


def compute_prompt_tokens_bound(request: LlmRequest) -> int:
    """An upper bound of the request's prompt tokens without a tokenizer, for the escrow.

    A byte-level BPE token (GPT-2, Llama 3, SmolLM2) covers at least one byte of text, so the
    UTF-8 length bounds the text's tokens; a chat template adds role words and special tokens
    per message, and may insert a default system prompt (SmolLM2's is 15 tokens):
    ``TEMPLATE_TOKENS_PER_MESSAGE`` per message and ``TEMPLATE_TOKENS_FIXED`` in all bound
    those. A node whose tokenization exceeds the bound refuses the request (and the ledger
    refuses a commitment above it), so the bound is never a charge, only the escrow's size.
    """
    if request.messages is None:
        return len((request.prompt or "").encode()) + TEMPLATE_TOKENS_FIXED
    text = sum(len(m.content.encode()) for m in request.messages)
    return text + TEMPLATE_TOKENS_PER_MESSAGE * len(request.messages) + TEMPLATE_TOKENS_FIXED


TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS_FIXED = 64


class CompletionBundle(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node uploads with a completion's commitment (its object digest is the
    ``proof_digest``)."""

    request: LlmRequest
    prompt_ids: Annotated[TokenIds, msgspec.Meta(min_length=1, max_length=TOKENS_MAX)]
    token_ids: Annotated[TokenIds, msgspec.Meta(min_length=1, max_length=TOKENS_MAX)]
    finish_reason: Literal["stop", "length"]
    proof: ToplocProof

    def compute_commitment(self) -> bytes:
        return compute_completion_commitment(self.prompt_ids, self.token_ids, self.proof.chunks)


def encode_bundle(bundle: CompletionBundle) -> bytes:
    return msgspec.json.encode(bundle)


def decode_bundle(data: bytes) -> CompletionBundle | None:
    """A bundle, or None when the bytes are not one (too large, malformed, inconsistent)."""
    if len(data) > BUNDLE_BYTES_MAX:
        return None
    try:
        bundle = msgspec.json.decode(data, type=CompletionBundle)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
    if (bundle.proof.prompt_tokens, bundle.proof.completion_tokens) != (
        len(bundle.prompt_ids),
        len(bundle.token_ids),
    ):
        return None
    return bundle

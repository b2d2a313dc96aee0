"""OpenAI's request and response bodies on the compatible routes (issue 18, item 1).

Requests mirror OpenAI's ``/v1/chat/completions`` and ``/v1/completions`` bodies as far as a
node can honour them: ``max_tokens`` (or ``max_completion_tokens``), ``temperature``,
``top_p``, ``seed``, ``stop`` (a string or a list), ``stream`` and
``stream_options.include_usage``. Fields that OpenAI clients send but that would change what
is generated (``n`` above 1, penalties, ``logit_bias``, log probabilities, ``echo``,
``best_of``) are refused unless they hold the value that changes nothing, and any other
unknown field is refused as OpenAI refuses one ("Unrecognized request argument"); ``user`` is
accepted and ignored. One extension: ``region`` (also the ``X-Flop-Region`` header) asks the
router for a node in that region first.

Bad input is a 400 in OpenAI's shape naming the parameter (``decode_chat_request``,
``decode_text_request``). ``to_llm_request`` turns a checked body into the ``LlmRequest``
the ledger binds by digest; what it fills in (the default ``max_tokens``, a drawn ``seed``)
is part of that request, so the node, validators and auditors see what was decided.

Responses are OpenAI's objects: ``ChatCompletion``, ``ChatCompletionChunk``, ``Completion``
(a text completion and its chunks), ``Usage`` and ``ModelList``; ``encode_sse`` frames one as
a server-sent event, ``SSE_DONE`` ends a stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

import msgspec

from api.openai_errors import OpenAIError, invalid_request
from proofs.llm_request import (
    MAX_TOKENS_MAX,
    MESSAGE_CHARS_MAX,
    MESSAGES_MAX,
    SEED_MAX,
    STOP_CHARS_MAX,
    STOPS_MAX,
    TEMPERATURE_MAX,
    ChatMessage,
    LlmRequest,
    compute_prompt_tokens_bound,
)

MODEL_NAME_CHARS_MAX = 64
"""``LlmRequest.model``'s bound (a registered model id is at most as long)."""
CONTENT_PARTS_MAX = 64
USER_CHARS_MAX = 256
REGION_CHARS_MAX = 64
CHAT_MAX_TOKENS_DEFAULT = 512
"""OpenAI's chat default is "as many as fit"; the escrow is sized by ``max_tokens``, so a
request without one gets at most this many (or what the context leaves)."""
TEXT_MAX_TOKENS_DEFAULT = 16
"""OpenAI's default for the legacy ``/v1/completions``."""
TEMPERATURE_DEFAULT = 1.0
TOP_P_DEFAULT = 1.0
PART_SEPARATOR = "\n"
"""How the text parts of one message are joined (as vLLM joins them)."""
SSE_DONE = b"data: [DONE]\n\n"

ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=MODEL_NAME_CHARS_MAX)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS_MAX)]
Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=TEMPERATURE_MAX)]
TopP = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=SEED_MAX)]
StopWord = Annotated[str, msgspec.Meta(min_length=1, max_length=STOP_CHARS_MAX)]
Stop = StopWord | Annotated[list[StopWord], msgspec.Meta(max_length=STOPS_MAX)] | None
Content = Annotated[str, msgspec.Meta(max_length=MESSAGE_CHARS_MAX)]
Region = Annotated[str, msgspec.Meta(min_length=1, max_length=REGION_CHARS_MAX)]
FinishReason = Literal["stop", "length"]


class TextPart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A message's content as OpenAI's list of parts: text parts only."""

    type: Literal["text"]
    text: Content


class ChatMessageIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``developer`` is OpenAI's newer name for ``system``; tool messages are not served."""

    role: Literal["system", "developer", "user", "assistant"]
    content: Content | Annotated[list[TextPart], msgspec.Meta(max_length=CONTENT_PARTS_MAX)]


class StreamOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    include_usage: bool = False


class ResponseFormat(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: Literal["text"]


class _Sampling(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What both routes take: the model, the sampling, streaming, the tolerated fields."""

    model: ModelName
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    seed: Seed | None = None
    stop: Stop = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = None
    user: Annotated[str, msgspec.Meta(max_length=USER_CHARS_MAX)] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    region: Region | None = None
    """flopledger's extension: route to a node in this region first."""

    @property
    def is_stream(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def get_max_tokens(self) -> int | None:
        return self.max_tokens


class ChatCompletionRequest(_Sampling, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessageIn], msgspec.Meta(min_length=1, max_length=MESSAGES_MAX)]
    max_completion_tokens: MaxTokens | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None

    def get_max_tokens(self) -> int | None:
        """``max_completion_tokens`` (OpenAI's newer name) wins over ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens


class TextCompletionRequest(_Sampling, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /v1/completions``: one text prompt (a list holding one is taken)."""

    prompt: Content | Annotated[list[Content], msgspec.Meta(min_length=1, max_length=1)]
    echo: bool | None = None
    best_of: int | None = None
    logprobs: int | None = None
    suffix: str | None = None


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct, frozen=True):
    content: str
    role: Literal["assistant"] = "assistant"


class ChatChoice(msgspec.Struct, frozen=True):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(msgspec.Struct, frozen=True, kw_only=True):
    """A whole chat completion (``stream`` false)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChunkDelta(msgspec.Struct, frozen=True, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, frozen=True):
    index: int
    delta: ChunkDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a streamed chat completion; with ``include_usage`` every chunk carries
    ``usage`` null but the last, which has no choices and the usage."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class TextChoice(msgspec.Struct, frozen=True):
    index: int
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """A text completion, whole or one chunk of a stream (OpenAI uses one object for both)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(msgspec.Struct, frozen=True):
    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct, frozen=True):
    data: list[ModelCard]
    object: Literal["list"] = "list"


OpenAIRequest = ChatCompletionRequest | TextCompletionRequest
_RequestT = TypeVar("_RequestT", ChatCompletionRequest, TextCompletionRequest)


def decode_chat_request(raw: bytes) -> ChatCompletionRequest:
    """The chat body, checked; OpenAIError 400 naming the parameter otherwise."""
    request = _decode(raw, ChatCompletionRequest)
    _check_common(request)
    if request.logprobs:
        raise _unsupported("logprobs", "log probabilities are not returned")
    if request.top_logprobs:
        raise _unsupported("top_logprobs", "log probabilities are not returned")
    return request


def decode_text_request(raw: bytes) -> TextCompletionRequest:
    """The text-completion body, checked; OpenAIError 400 naming the parameter otherwise."""
    request = _decode(raw, TextCompletionRequest)
    _check_common(request)
    if request.echo:
        raise _unsupported("echo", "the prompt is not echoed")
    if request.best_of not in (None, 1):
        raise _unsupported("best_of", "only best_of 1 is served")
    if request.logprobs:
        raise _unsupported("logprobs", "log probabilities are not returned")
    if request.suffix:
        raise _unsupported("suffix", "insertion (suffix) is not served")
    return request


def to_llm_request(
    request: OpenAIRequest, *, context_tokens: int, draw_seed: Callable[[], int]
) -> LlmRequest:
    """The request the ledger binds: messages or the prompt, the sampling with OpenAI's
    defaults, a ``max_tokens`` that fits the model's context with the prompt's bound
    (``compute_prompt_tokens_bound``) and a seed (``draw_seed`` when the body has none and
    sampling is random; 0 when greedy). 400 ``context_length_exceeded`` when it cannot fit."""
    temperature = TEMPERATURE_DEFAULT if request.temperature is None else request.temperature
    seed = request.seed if request.seed is not None else 0 if temperature == 0.0 else draw_seed()
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    if isinstance(request, ChatCompletionRequest):
        messages = [_to_chat_message(m) for m in request.messages]
        default = CHAT_MAX_TOKENS_DEFAULT
    else:
        prompt = request.prompt if isinstance(request.prompt, str) else request.prompt[0]
        default = TEXT_MAX_TOKENS_DEFAULT
    draft = LlmRequest(
        model=request.model,
        messages=messages,
        prompt=prompt,
        max_tokens=1,
        temperature=temperature,
        top_p=TOP_P_DEFAULT if request.top_p is None else request.top_p,
        seed=seed,
        stop=_stop_list(request.stop),
    )
    room = context_tokens - compute_prompt_tokens_bound(draft)
    asked = request.get_max_tokens()
    max_tokens = min(default, room) if asked is None else asked
    if max_tokens < 1 or max_tokens > room:
        raise invalid_request(
            f"This model's context is {context_tokens} tokens; the prompt may take up to "
            f"{context_tokens - room}, leaving {max(room, 0)} for the completion "
            f"(max_tokens {max_tokens}): shorten the prompt or lower max_tokens.",
            param="messages" if messages is not None else "prompt",
            code="context_length_exceeded",
        )
    return msgspec.structs.replace(draft, max_tokens=max_tokens)


def encode_sse(event: ChatCompletionChunk | Completion) -> bytes:
    """One server-sent event carrying ``event`` as JSON (OpenAI's framing: data only)."""
    return b"data: " + msgspec.json.encode(event) + b"\n\n"


def encode_sse_error(error: OpenAIError) -> bytes:
    """The error event that ends a failed stream: OpenAI's error object as data (the
    official clients raise ``APIError`` on it)."""
    return b"event: error\ndata: " + msgspec.json.encode(error.to_envelope()) + b"\n\n"


def _decode(raw: bytes, type_: type[_RequestT]) -> _RequestT:
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise _from_validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise invalid_request(
            f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None


def _check_common(request: _Sampling) -> None:
    if request.n not in (None, 1):
        raise _unsupported("n", "one choice per request (n = 1)")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(request, name) not in (None, 0):
            raise _unsupported(name, "penalties are not applied (0 only)")
    if request.logit_bias:
        raise _unsupported("logit_bias", "logit biases are not applied")
    if request.stream_options is not None and not request.stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )


def _unsupported(param: str, why: str) -> OpenAIError:
    return invalid_request(f"Unsupported value for '{param}': {why}.", param=param)


def _from_validation_error(message: str) -> OpenAIError:
    """msgspec's message (``Expected ... - at `$.messages[0].role```) with its path as the
    OpenAI ``param``; an unknown field is OpenAI's "Unrecognized request argument"."""
    path = _path_of(message)
    unknown = "Object contains unknown field `"
    if message.startswith(unknown):
        field = message[len(unknown) :].split("`", 1)[0]
        param = f"{path}.{field}" if path else field
        return invalid_request(
            f"Unrecognized request argument supplied: {param}",
            param=param,
            code="unknown_parameter",
        )
    return invalid_request(f"Invalid request: {message}", param=path or None)


def _path_of(message: str) -> str:
    marker = "at `$"
    start = message.rfind(marker)
    if start < 0:
        return ""
    end = message.find("`", start + len(marker))
    return message[start + len(marker) : end].lstrip(".") if end > 0 else ""


def _to_chat_message(message: ChatMessageIn) -> ChatMessage:
    role = "system" if message.role == "developer" else message.role
    content = message.content
    if not isinstance(content, str):
        content = PART_SEPARATOR.join(part.text for part in content)
    if len(content) > MESSAGE_CHARS_MAX:
        raise invalid_request(
            f"A message holds at most {MESSAGE_CHARS_MAX} characters.", param="messages"
        )
    return ChatMessage(role=role, content=content)


def _stop_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)

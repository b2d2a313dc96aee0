"""OpenAI's bodies on the compatible routes (issue 18, item 1): what a request becomes on the
ledger, each bound at its limit and one past it, refusals as 400s in OpenAI's error shape
naming the parameter, and responses that the official ``openai`` package's types accept."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from openai.types import Completion as OpenAICompletion
from openai.types import Model as OpenAIModel
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChatCompletionChunk

from api.openai_errors import OpenAIError
from api.openai_wire import (
    SSE_DONE,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    Completion,
    ModelCard,
    ModelList,
    TextChoice,
    Usage,
    decode_chat_request,
    decode_text_request,
    encode_sse,
    encode_sse_error,
    to_llm_request,
)
from proofs.llm_request import ChatMessage, LlmRequest, compute_prompt_tokens_bound

CONTEXT = 8192
USER_HI = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "smollm2-135m-instruct", "messages": USER_HI, **fields})


def text(**fields: Any) -> bytes:
    return msgspec.json.encode({"model": "smollm2-135m-instruct", "prompt": "Once", **fields})


def never_drawn() -> int:
    raise AssertionError("no seed should be drawn")


def refusal(raw: bytes, *, decode: Any = decode_chat_request) -> OpenAIError:
    with pytest.raises(OpenAIError) as refused:
        decode(raw)
    return refused.value


def test_a_chat_body_becomes_the_request_the_ledger_binds() -> None:
    body = decode_chat_request(
        chat(
            messages=[
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"role": "assistant", "content": "ok"},
            ],
            max_tokens=40,
            temperature=0.7,
            top_p=0.9,
            seed=11,
            stop="END",
            stream=True,
            stream_options={"include_usage": True},
            user="someone",
            presence_penalty=0,
            frequency_penalty=0.0,
            n=1,
            region="eu-west",
        )
    )
    assert body.is_stream and body.include_usage and body.region == "eu-west"
    request = to_llm_request(body, context_tokens=CONTEXT, draw_seed=never_drawn)
    assert request == LlmRequest(
        model="smollm2-135m-instruct",
        messages=[
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="a\nb"),
            ChatMessage(role="assistant", content="ok"),
        ],
        prompt=None,
        max_tokens=40,
        temperature=0.7,
        top_p=0.9,
        seed=11,
        stop=["END"],
    )


def test_openai_defaults_and_a_drawn_seed_are_part_of_the_request() -> None:
    sampled = to_llm_request(
        decode_chat_request(chat()), context_tokens=CONTEXT, draw_seed=lambda: 99
    )
    assert (sampled.temperature, sampled.top_p, sampled.seed, sampled.stop) == (1.0, 1.0, 99, [])
    assert sampled.max_tokens == 512  # the chat default when the context leaves room
    greedy = to_llm_request(
        decode_chat_request(chat(temperature=0, stop=["a", "b"])),
        context_tokens=CONTEXT,
        draw_seed=never_drawn,
    )
    assert (greedy.seed, greedy.is_greedy, greedy.stop) == (0, True, ["a", "b"])
    legacy = to_llm_request(
        decode_text_request(text()), context_tokens=CONTEXT, draw_seed=lambda: 5
    )
    assert (legacy.prompt, legacy.messages, legacy.max_tokens) == ("Once", None, 16)
    one_of_list = to_llm_request(
        decode_text_request(text(prompt=["Twice"], max_tokens=3)),
        context_tokens=CONTEXT,
        draw_seed=lambda: 5,
    )
    assert (one_of_list.prompt, one_of_list.max_tokens) == ("Twice", 3)
    newer_name = decode_chat_request(chat(max_tokens=9, max_completion_tokens=7))
    assert to_llm_request(newer_name, context_tokens=CONTEXT, draw_seed=lambda: 1).max_tokens == 7


def test_max_tokens_must_fit_the_context_with_the_prompts_bound() -> None:
    body = decode_chat_request(chat(max_tokens=100))
    bound = compute_prompt_tokens_bound(
        to_llm_request(body, context_tokens=CONTEXT, draw_seed=lambda: 1)
    )
    fits = to_llm_request(body, context_tokens=bound + 100, draw_seed=lambda: 1)
    assert fits.max_tokens == 100
    with pytest.raises(OpenAIError) as refused:
        to_llm_request(body, context_tokens=bound + 99, draw_seed=lambda: 1)
    error = refused.value
    assert (error.status, error.code, error.param) == (400, "context_length_exceeded", "messages")
    defaulted = to_llm_request(
        decode_chat_request(chat()), context_tokens=bound + 3, draw_seed=lambda: 1
    )
    assert defaulted.max_tokens == 3  # the default shrinks to what the context leaves
    with pytest.raises(OpenAIError):
        to_llm_request(decode_chat_request(chat()), context_tokens=bound, draw_seed=lambda: 1)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 4097}, "max_tokens"),
        ({"max_completion_tokens": 4097}, "max_completion_tokens"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ""}, "stop"),
        ({"stop": "x" * 65}, "stop"),
        ({"stop": 3}, "stop"),
        ({"n": 2}, "n"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"logprobs": True}, "logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": {"include_usage": True, "x": 1}}, "stream_options.x"),
        ({"tools": []}, "tools"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "x", "name": "n"}]}, "messages[0].name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].type",
        ),
        ({"model": ""}, "model"),
    ],
)
def test_a_chat_body_out_of_bounds_is_a_400_naming_the_parameter(
    fields: dict[str, Any], param: str
) -> None:
    error = refusal(chat(**fields))
    assert (error.status, error.type, error.param) == (400, "invalid_request_error", param)
    envelope = msgspec.to_builtins(error.to_envelope())
    assert set(envelope) == {"error"}
    assert set(envelope["error"]) == {"message", "type", "param", "code"}
    assert envelope["error"]["message"]


@pytest.mark.parametrize(
    "fields",
    [
        {"max_tokens": 4096},
        {"max_tokens": 1},
        {"temperature": 2.0},
        {"temperature": 0},
        {"top_p": 1},
        {"seed": 0},
        {"seed": 2**63 - 1},
        {"stop": ["a", "b", "c", "d"]},
        {"stop": "x" * 64},
        {"stop": None},
        {"n": 1},
        {"logprobs": False},
        {"response_format": {"type": "text"}},
        {"stream": False},
    ],
)
def test_a_chat_body_at_its_bounds_is_served(fields: dict[str, Any]) -> None:
    decode_chat_request(chat(**fields))


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"echo": True}, "echo"),
        ({"best_of": 2}, "best_of"),
        ({"logprobs": 1}, "logprobs"),
        ({"suffix": "end"}, "suffix"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt[0]"),
        ({"messages": USER_HI}, "messages"),
    ],
)
def test_a_text_body_that_cannot_be_served_is_a_400(fields: dict[str, Any], param: str) -> None:
    error = refusal(text(**fields), decode=decode_text_request)
    assert (error.status, error.param) == (400, param)


def test_an_unknown_field_is_openais_unrecognized_argument_and_bad_json_is_a_400() -> None:
    unknown = refusal(chat(temperature_k=1))
    assert (unknown.code, unknown.param) == ("unknown_parameter", "temperature_k")
    assert unknown.message == "Unrecognized request argument supplied: temperature_k"
    broken = refusal(b'{"model": ')
    assert (broken.status, broken.code, broken.param) == (400, "invalid_json", None)


def test_responses_are_what_the_openai_package_parses() -> None:
    usage = Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)
    whole = ChatCompletion(
        id="c1",
        created=1_800_000_000,
        model="m",
        choices=[
            ChatChoice(index=0, message=AssistantMessage(content="Paris."), finish_reason="stop")
        ],
        usage=usage,
        system_fingerprint="fp_00",
    )
    parsed = OpenAIChatCompletion.model_validate(msgspec.to_builtins(whole))
    assert parsed.object == "chat.completion"
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.choices[0].message.content == "Paris."
    assert parsed.usage is not None and parsed.usage.total_tokens == 7

    first = ChatCompletionChunk(
        id="c1",
        created=1,
        model="m",
        choices=[ChunkChoice(index=0, delta=ChunkDelta(role="assistant", content=""))],
    )
    last = ChatCompletionChunk(id="c1", created=1, model="m", choices=[], usage=usage)
    frame = encode_sse(first)
    assert frame.startswith(b"data: {") and frame.endswith(b"}\n\n")
    chunk = OpenAIChatCompletionChunk.model_validate_json(frame.removeprefix(b"data: ").strip())
    assert chunk.object == "chat.completion.chunk" and chunk.choices[0].delta.role == "assistant"
    assert msgspec.to_builtins(ChunkDelta(content="x")) == {"content": "x"}
    tail = OpenAIChatCompletionChunk.model_validate(msgspec.to_builtins(last))
    assert tail.choices == [] and tail.usage is not None and tail.usage.completion_tokens == 2

    legacy = Completion(
        id="c2",
        created=1,
        model="m",
        choices=[TextChoice(index=0, text=" upon", finish_reason="length")],
        usage=usage,
    )
    assert OpenAICompletion.model_validate(msgspec.to_builtins(legacy)).object == "text_completion"
    listed = msgspec.to_builtins(ModelList(data=[ModelCard(id="m", created=1, owned_by="op")]))
    assert listed["object"] == "list"
    assert OpenAIModel.model_validate(listed["data"][0]).id == "m"
    assert SSE_DONE == b"data: [DONE]\n\n"


def test_a_stream_error_event_carries_openais_error_object() -> None:
    error = OpenAIError(502, "the node failed", type="server_error", code="node_failed")
    frame = encode_sse_error(error)
    assert frame.startswith(b"event: error\ndata: ")
    data = msgspec.json.decode(frame.split(b"data: ", 1)[1])
    assert data == {
        "error": {
            "message": "the node failed",
            "type": "server_error",
            "param": None,
            "code": "node_failed",
        }
    }

"""Prompt ids of a request and text of token ids: SmolLM2's chat template, the byte fallback.

The byte fallback (the tiny test Llama has no tokenizer) is checked against its documented
template; SmolLM2's against the ChatML text its template writes and transformers' own
``apply_chat_template`` (slow: the tokenizer is read from the 93 MB GGUF).
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("transformers")

import torch

from adapters.compute import llm_prompts
from adapters.compute.llm_model import (
    SMOLLM2_GGUF,
    SMOLLM2_MODEL_ID,
    LoadedModel,
    ModelUnavailable,
    get_smollm2_dir,
)
from proofs.llm_request import ChatMessage, LlmRequest

TINY = LoadedModel(
    model_id="tiny-llama-0",
    model=None,
    tokenizer=None,
    dtype=torch.float32,
    context_tokens=512,
    eos_token_id=None,
)
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _chat(*turns: tuple[str, str]) -> LlmRequest:
    return LlmRequest(
        model="m",
        messages=[ChatMessage(role=role, content=content) for role, content in turns],  # type: ignore[arg-type]
        prompt=None,
        max_tokens=16,
        temperature=0.0,
        top_p=1.0,
        seed=0,
        stop=[],
    )


def _text(prompt: str) -> LlmRequest:
    return LlmRequest(
        model="m", messages=None, prompt=prompt, max_tokens=16, temperature=0.0, top_p=1.0,
        seed=0, stop=[],
    )  # fmt: skip


def test_a_tiny_model_reads_the_plain_template_as_utf8_bytes() -> None:
    request = _chat(("system", "Be brief."), ("user", "Où est Paris ?"))
    expected = "system: Be brief.\nuser: Où est Paris ?\nassistant: ".encode()
    assert llm_prompts.encode(TINY, request) == tuple(expected)


def test_a_tiny_model_reads_a_text_prompt_as_its_bytes() -> None:
    assert llm_prompts.encode(TINY, _text("1 + 1 = ")) == (49, 32, 43, 32, 49, 32, 61, 32)
    assert llm_prompts.encode(TINY, _text("")) == ()


def test_a_changed_or_dropped_system_prompt_changes_the_tiny_ids() -> None:
    user = ("user", "Hi")
    with_system = llm_prompts.encode(TINY, _chat(("system", "Be brief."), user))
    assert llm_prompts.encode(TINY, _chat(("system", "Be long."), user)) != with_system
    assert llm_prompts.encode(TINY, _chat(user)) != with_system


def test_bytes_decode_to_text_special_ids_left_out() -> None:
    assert llm_prompts.decode(TINY, list("héllo".encode())) == "héllo"
    assert llm_prompts.decode(TINY, [0xC3]) == "\ufffd"  # half of a character


def test_the_text_decoder_holds_a_character_until_its_last_byte() -> None:
    text = "aé€😀b"
    decoder = llm_prompts.TextDecoder(TINY)
    pieces = [decoder.push(byte) for byte in text.encode()]
    assert "".join(pieces) + decoder.flush() == text
    assert all("\ufffd" not in piece for piece in pieces)
    # "€" is three bytes: its first two add nothing, its third adds the whole character.
    assert pieces[3:6] == ["", "", "€"]


def test_the_text_decoder_flushes_an_unfinished_character_replaced() -> None:
    decoder = llm_prompts.TextDecoder(TINY)
    assert decoder.push(ord("a")) == "a"
    assert decoder.push(0xE2) == ""
    assert decoder.flush() == "\ufffd"


@pytest.fixture(scope="module")
def smollm2() -> LoadedModel:
    try:
        folder = get_smollm2_dir()
    except ModelUnavailable as error:
        pytest.skip(str(error))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    # Only the tokenizer is needed here: the weights stay unloaded.
    return LoadedModel(
        model_id=SMOLLM2_MODEL_ID,
        model=None,
        tokenizer=tokenizer,
        dtype=torch.float32,
        context_tokens=8192,
        eos_token_id=tokenizer.eos_token_id,
    )


@pytest.mark.slow
def test_smollm2_chat_ids_are_its_chat_template_with_the_default_system_prompt(
    smollm2: LoadedModel,
) -> None:
    question = "What is the capital of France?"
    ids = llm_prompts.encode(smollm2, _chat(("user", question)))
    messages = [{"role": "user", "content": question}]
    expected = _tokenizer(smollm2).apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    assert list(ids) == list(expected)
    assert _tokenizer(smollm2).decode(list(ids)) == (
        f"<|im_start|>system\n{SMOLLM2_DEFAULT_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_smollm2_a_system_prompt_changes_the_ids(smollm2: LoadedModel) -> None:
    user = ("user", "What is the capital of France?")
    default = llm_prompts.encode(smollm2, _chat(user))
    brief = llm_prompts.encode(smollm2, _chat(("system", "Be brief."), user))
    assert brief != default
    assert (
        _tokenizer(smollm2)
        .decode(list(brief))
        .startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    )


@pytest.mark.slow
def test_smollm2_text_prompt_and_decoding(smollm2: LoadedModel) -> None:
    ids = llm_prompts.encode(smollm2, _text("The capital of France is"))
    assert list(ids) == _tokenizer(smollm2)("The capital of France is")["input_ids"]
    assert llm_prompts.decode(smollm2, ids) == "The capital of France is"
    text = "Crème brûlée, 東京 and 😀 done."
    token_ids = _tokenizer(smollm2)(text)["input_ids"]
    decoder = llm_prompts.TextDecoder(smollm2)
    pieces = [decoder.push(i) for i in token_ids]
    assert "".join(pieces) + decoder.flush() == text
    assert all("\ufffd" not in piece for piece in pieces)
    # The end of turn is a special token: it adds no text.
    assert llm_prompts.decode(smollm2, [*token_ids, _tokenizer(smollm2).eos_token_id]) == text


def _tokenizer(loaded: LoadedModel) -> Any:
    assert loaded.tokenizer is not None
    return loaded.tokenizer

"""Streaming generation: the same tokens and TOPLOC proof as batch generation, and its stops.

On the tiny random Llama (vocab 256: its tokens are UTF-8 bytes), so every case runs in
milliseconds; ``llm_toploc.generate`` is the reference the stream must agree with.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("transformers")

from adapters.compute import llm_model, llm_prompts, llm_stream, llm_toploc
from proofs import toploc
from proofs.llm_request import ChatMessage, LlmRequest

NEW_TOKENS = 70
FLOAT32 = toploc.FLOAT32_THRESHOLDS


@pytest.fixture(scope="module")
def model() -> llm_model.LoadedModel:
    return llm_model.build_tiny_llama(seed=0)


def _prompt(seed: int = 1, length: int = 20) -> list[int]:
    return np.random.default_rng(seed).integers(0, llm_model.TINY_VOCAB, length).tolist()


def _stream(
    loaded: llm_model.LoadedModel,
    prompt: list[int],
    sampling: llm_stream.Sampling,
    cancel: threading.Event | None = None,
) -> tuple[list[llm_stream.StreamedToken], llm_stream.StreamResult]:
    return llm_stream.collect_stream(llm_stream.generate_stream(loaded, prompt, sampling, cancel))


def test_a_greedy_stream_equals_batch_generation_and_its_proof(
    model: llm_model.LoadedModel,
) -> None:
    prompt = _prompt()
    tokens, result = _stream(model, prompt, llm_stream.Sampling(max_tokens=NEW_TOKENS))
    [reference] = llm_toploc.generate(model, [prompt], NEW_TOKENS)
    assert [t.token_id for t in tokens] == list(reference.token_ids)
    assert result.completion.token_ids == reference.token_ids
    assert result.completion.prompt_ids == tuple(prompt)
    assert result.finish_reason == "length" and not result.cancelled
    proof = llm_toploc.compute_toploc_proof(result.completion)
    assert proof == llm_toploc.compute_toploc_proof(reference)
    assert llm_toploc.is_valid_toploc(
        model, prompt, result.completion.token_ids, proof.chunks, FLOAT32
    )
    assert llm_toploc.is_greedy_consistent(model, prompt, result.completion.token_ids)


def test_the_text_pieces_add_up_to_the_decoded_completion(model: llm_model.LoadedModel) -> None:
    tokens, result = _stream(model, _prompt(), llm_stream.Sampling(max_tokens=NEW_TOKENS))
    text = "".join(t.text for t in tokens)
    assert text == llm_prompts.decode(model, result.completion.token_ids)


def test_a_seeded_sample_is_batch_generations_and_top_p_near_zero_is_greedy(
    model: llm_model.LoadedModel,
) -> None:
    prompt = _prompt()
    sampled = llm_stream.Sampling(max_tokens=40, temperature=0.8, seed=7)
    _, result = _stream(model, prompt, sampled)
    [reference] = llm_toploc.generate(model, [prompt], 40, temperature=0.8, seed=7)
    assert result.completion.token_ids == reference.token_ids
    _, again = _stream(model, prompt, sampled)
    assert again.completion.token_ids == reference.token_ids
    [greedy] = llm_toploc.generate(model, [prompt], 40)
    assert reference.token_ids != greedy.token_ids  # the sample is not the greedy path
    narrow = replace(sampled, top_p=1e-6)  # the nucleus holds the top token alone
    _, nucleus = _stream(model, prompt, narrow)
    assert nucleus.completion.token_ids == greedy.token_ids


def test_cancel_stops_the_stream_and_what_was_generated_still_validates(
    model: llm_model.LoadedModel,
) -> None:
    prompt, cancel = _prompt(), threading.Event()
    stream = llm_stream.generate_stream(model, prompt, llm_stream.Sampling(NEW_TOKENS), cancel)
    received = [next(stream) for _ in range(5)]
    cancel.set()
    rest, result = llm_stream.collect_stream(stream)
    assert rest == []
    assert result.cancelled and result.finish_reason == "length"
    assert result.completion.token_ids == tuple(t.token_id for t in received)
    assert result.completion.hidden.shape[0] == len(prompt) + 5 - 1
    proof = llm_toploc.compute_toploc_proof(result.completion)
    assert llm_toploc.is_valid_toploc(
        model, prompt, result.completion.token_ids, proof.chunks, FLOAT32
    )


def test_cancel_before_the_first_token_yields_none(model: llm_model.LoadedModel) -> None:
    cancel = threading.Event()
    cancel.set()
    tokens, result = _stream(model, _prompt(), llm_stream.Sampling(NEW_TOKENS), cancel)
    assert tokens == [] and result.completion.token_ids == () and result.cancelled


def test_a_stop_string_ends_the_stream_and_is_not_sent(model: llm_model.LoadedModel) -> None:
    prompt = _prompt()
    [reference] = llm_toploc.generate(model, [prompt], 200)
    ids = list(reference.token_ids)
    # ASCII bytes decode as themselves and never occur inside a multi-byte character, so
    # the first ASCII pair of the bytes is the first occurrence of that text.
    at = next(i for i in range(len(ids) - 1) if ids[i] < 128 and ids[i + 1] < 128)
    stop = chr(ids[at]) + chr(ids[at + 1])
    tokens, result = _stream(model, prompt, llm_stream.Sampling(200, stop=("\x00never", stop)))
    assert result.finish_reason == "stop" and not result.cancelled
    assert result.completion.token_ids == tuple(ids[: at + 2])  # the stop's tokens generated
    text = "".join(t.text for t in tokens)
    assert text == llm_prompts.decode(model, ids[: at + 2])[:-2]
    assert stop not in text


def test_text_held_for_a_stop_that_does_not_follow_is_released(
    model: llm_model.LoadedModel,
) -> None:
    prompt = _prompt()
    [reference] = llm_toploc.generate(model, [prompt], NEW_TOKENS)
    first_ascii = next(chr(i) for i in reference.token_ids if i < 128)
    stop = first_ascii + "\x00\x01\x02"  # starts like the output, never completed
    tokens, result = _stream(model, prompt, llm_stream.Sampling(NEW_TOKENS, stop=(stop,)))
    assert result.completion.token_ids == reference.token_ids
    assert "".join(t.text for t in tokens) == llm_prompts.decode(model, reference.token_ids)


def test_eos_ends_the_stream_as_batch_generation_ends(model: llm_model.LoadedModel) -> None:
    prompt = _prompt()
    [free] = llm_toploc.generate(model, [prompt], NEW_TOKENS)
    with_eos = replace(model, eos_token_id=free.token_ids[9])
    [reference] = llm_toploc.generate(with_eos, [prompt], NEW_TOKENS)
    tokens, result = _stream(with_eos, prompt, llm_stream.Sampling(NEW_TOKENS))
    assert result.finish_reason == "stop"
    assert result.completion.token_ids == reference.token_ids
    assert result.completion.token_ids[-1] == free.token_ids[9]
    assert len(tokens) == len(reference.token_ids) <= 10
    proof = llm_toploc.compute_toploc_proof(result.completion)
    assert proof == llm_toploc.compute_toploc_proof(reference)


def test_bounds(model: llm_model.LoadedModel) -> None:
    prompt = _prompt(length=12)
    small = replace(model, context_tokens=len(prompt) + 3)
    tokens, _ = _stream(small, prompt, llm_stream.Sampling(max_tokens=3))  # at the context
    assert len(tokens) == 3
    with pytest.raises(ValueError, match="context"):
        next(llm_stream.generate_stream(small, prompt, llm_stream.Sampling(max_tokens=4)))
    with pytest.raises(ValueError, match="at least one token"):
        next(llm_stream.generate_stream(model, [], llm_stream.Sampling(max_tokens=1)))
    with pytest.raises(ValueError, match="max_tokens"):
        next(llm_stream.generate_stream(model, prompt, llm_stream.Sampling(max_tokens=0)))


@pytest.mark.slow
def test_smollm2_streams_an_answer_that_ends_at_its_end_of_turn() -> None:
    try:
        smollm2 = llm_model.load_smollm2()
    except llm_model.ModelUnavailable as error:
        pytest.skip(str(error))
    request = LlmRequest(
        model=smollm2.model_id,
        messages=[ChatMessage(role="user", content="What is the capital of France?")],
        prompt=None, max_tokens=32, temperature=0.0, top_p=1.0, seed=0, stop=[],
    )  # fmt: skip
    prompt = list(llm_prompts.encode(smollm2, request))
    tokens, result = _stream(smollm2, prompt, llm_stream.Sampling.from_request(request))
    assert "Paris" in "".join(t.text for t in tokens)
    assert result.finish_reason == "stop"
    assert result.completion.token_ids[-1] == smollm2.eos_token_id
    [reference] = llm_toploc.generate(smollm2, [prompt], 32)
    assert result.completion.token_ids == reference.token_ids

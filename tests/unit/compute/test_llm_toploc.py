"""TOPLOC on a real Llama architecture: honest completions validate, tampered ones are caught.

The tiny random Llama (2 layers, hidden 64) runs in milliseconds; the same cases on
SmolLM2-135M-Instruct, checked as a validator checks a bundle, are the detection matrix
(tests/adversarial/test_llm_detection.py); the cheating models are tests/llm_cheats.py's.
Skipped without the ``llm`` extra (transformers).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("transformers")

import torch

from adapters.compute import llm_model, llm_toploc
from proofs import toploc
from tests import llm_cheats

NEW_TOKENS = 70  # three chunks of generated tokens, the last one short
FLOAT32 = toploc.FLOAT32_THRESHOLDS
PAPER = toploc.PAPER_THRESHOLDS


@pytest.fixture(scope="module")
def model() -> llm_model.LoadedModel:
    return llm_model.build_tiny_llama(seed=0)


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _prompt(seed: int, length: int = 20) -> list[int]:
    return np.random.default_rng(seed).integers(0, llm_model.TINY_VOCAB, length).tolist()


def _complete(loaded: llm_model.LoadedModel, prompt: list[int]) -> llm_toploc.Completion:
    [completion] = llm_toploc.generate(loaded, [prompt], NEW_TOKENS)
    return completion


def _validates(
    validator: llm_model.LoadedModel,
    completion: llm_toploc.Completion,
    thresholds: toploc.ToplocThresholds,
    claimed_prompt: list[int] | None = None,
) -> bool:
    prompt = completion.prompt_ids if claimed_prompt is None else claimed_prompt
    proofs = llm_toploc.compute_commitment(completion)
    return llm_toploc.is_valid_toploc(validator, prompt, completion.token_ids, proofs, thresholds)


@pytest.mark.parametrize("generate_threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_an_honest_completion_validates_across_threads_and_batches(
    model: llm_model.LoadedModel, threads: None, generate_threads: int, batch: int
) -> None:
    prompt = _prompt(1)
    # In a batch of two a shorter prompt rides along, left-padded (the next test checks such a row).
    prompts = [_prompt(2, length=13), prompt][-batch:]
    torch.set_num_threads(generate_threads)
    completion = llm_toploc.generate(model, prompts, NEW_TOKENS)[-1]
    assert completion.prompt_ids == tuple(prompt)
    assert len(completion.token_ids) == NEW_TOKENS
    torch.set_num_threads(3 - generate_threads)  # the validator runs with the other count
    assert _validates(model, completion, FLOAT32)
    assert llm_toploc.is_greedy_consistent(model, prompt, completion.token_ids)


def test_a_batch_row_behind_a_longer_prompt_validates(model: llm_model.LoadedModel) -> None:
    short = _prompt(3, length=7)
    completion = llm_toploc.generate(model, [short, _prompt(4, length=25)], NEW_TOKENS)[0]
    assert _validates(model, completion, FLOAT32)


def test_proofs_are_258_bytes_per_full_chunk(model: llm_model.LoadedModel) -> None:
    proof = llm_toploc.compute_toploc_proof(_complete(model, _prompt(5)))
    # The prompt chunk (19 × 64 entries), two full 32-token chunks, then 6 tokens (384 entries).
    assert [len(p) for p in proof.chunks] == [258, 258, 258, 258]
    assert (proof.prompt_tokens, proof.completion_tokens) == (20, NEW_TOKENS)
    assert len(proof.chunks) == toploc.compute_chunk_count(20, NEW_TOKENS)


def test_a_different_model_of_the_same_shape_is_detected(model: llm_model.LoadedModel) -> None:
    other = llm_model.build_tiny_llama(seed=1)
    completion = _complete(other, _prompt(6))
    assert not _validates(model, completion, PAPER)
    assert not _validates(model, completion, FLOAT32)


def test_one_layers_weights_perturbed_is_detected(model: llm_model.LoadedModel) -> None:
    # 2 % relative noise on one matrix (attention output) of one layer.
    completion = _complete(llm_cheats.perturb_one_layer(model, layer=1), _prompt(8))
    assert _validates(model, _complete(model, _prompt(8)), FLOAT32)
    assert not _validates(model, completion, FLOAT32)


def test_a_changed_system_prompt_is_detected(model: llm_model.LoadedModel) -> None:
    system, user = _prompt(9, length=8), _prompt(10, length=12)
    completion = _complete(model, [*_prompt(11, length=8), *user])
    assert not _validates(model, completion, PAPER, claimed_prompt=[*system, *user])
    assert not _validates(model, completion, FLOAT32, claimed_prompt=[*system, *user])


def test_a_dropped_system_prompt_is_detected(model: llm_model.LoadedModel) -> None:
    user = _prompt(12, length=12)
    completion = _complete(model, [*_prompt(13, length=8), *user])
    assert not _validates(model, completion, PAPER, claimed_prompt=user)


def test_bfloat16_weights_against_a_float32_registration_are_detected(
    model: llm_model.LoadedModel,
) -> None:
    lowered = llm_model.build_tiny_llama(seed=0, dtype=torch.bfloat16)
    completion = _complete(lowered, _prompt(14))
    assert not _validates(model, completion, FLOAT32)


def test_int8_weights_against_a_float32_registration_are_detected(
    model: llm_model.LoadedModel,
) -> None:
    completion = _complete(llm_cheats.quantize_int8_per_row(model), _prompt(18))
    assert not _validates(model, completion, FLOAT32)


def test_a_sampled_completion_is_reproducible_by_seed_and_validates(
    model: llm_model.LoadedModel,
) -> None:
    prompt = _prompt(19)
    [first] = llm_toploc.generate(model, [prompt], NEW_TOKENS, temperature=0.8, seed=3)
    [again] = llm_toploc.generate(model, [prompt], NEW_TOKENS, temperature=0.8, seed=3)
    [other] = llm_toploc.generate(model, [prompt], NEW_TOKENS, temperature=0.8, seed=4)
    assert first.token_ids == again.token_ids != other.token_ids
    assert _validates(model, first, FLOAT32)
    # Sampled, not greedy: the greedy check applies to temperature 0 only.
    assert not llm_toploc.is_greedy_consistent(model, prompt, first.token_ids)


def test_tokens_not_greedy_from_the_committed_logits_are_detected(
    model: llm_model.LoadedModel,
) -> None:
    prompt = _prompt(15)
    honest = _complete(model, prompt)
    # The node swaps one token, then commits to the states of the swapped sequence: the
    # activation proofs match, the greedy check does not.
    tokens = list(honest.token_ids)
    tokens[10] = (tokens[10] + 1) % llm_model.TINY_VOCAB
    proofs = llm_cheats.compute_proofs_for(model, prompt, tokens)
    assert llm_toploc.is_valid_toploc(model, prompt, tokens, proofs, FLOAT32)
    assert not llm_toploc.is_greedy_consistent(model, prompt, tokens)


def test_a_completion_beyond_the_context_is_refused(model: llm_model.LoadedModel) -> None:
    completion = _complete(model, _prompt(16))
    long_prompt = _prompt(17, length=llm_model.TINY_CONTEXT)
    proofs = llm_toploc.compute_commitment(completion)
    assert not llm_toploc.is_valid_toploc(model, long_prompt, completion.token_ids, proofs, PAPER)


def test_the_tiny_model_is_the_same_for_the_same_seed(model: llm_model.LoadedModel) -> None:
    again = llm_model.build_tiny_llama(seed=0)
    for mine, theirs in zip(model.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)

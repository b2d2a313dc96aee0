"""A sampled completion's check (validator.completion_check), rule by rule, on the tiny Llama.

Each test gives a bundle a node might upload and the ledger's record of it, and asserts the
verdict's reason; a malformed bundle never raises. The real-model cases (SmolLM2 and every
cheat) are the detection matrix, tests/adversarial/test_llm_detection.py.
"""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

pytest.importorskip("transformers")

import torch

from adapters.compute import llm_model, llm_prompts
from proofs import toploc
from proofs.llm_request import (
    CompletionBundle,
    LlmRequest,
    compute_request_digest,
    encode_bundle,
)
from tests import llm_cheats
from validator import completion_check as cc

replace = msgspec.structs.replace

NEW_TOKENS = 40  # the prompt chunk, one full chunk of 32 and one of 8


@pytest.fixture(scope="module")
def model() -> llm_model.LoadedModel:
    return llm_model.build_tiny_llama(seed=0)


@pytest.fixture(scope="module")
def request_() -> LlmRequest:
    return llm_cheats.chat_request(
        "tiny-llama-0", "Say something long.", system="Be brief.", max_tokens=NEW_TOKENS
    )


@pytest.fixture(scope="module")
def honest(model: llm_model.LoadedModel, request_: LlmRequest) -> CompletionBundle:
    prompt = llm_prompts.encode(model, request_)
    return llm_cheats.serve_honestly(model, request_, prompt)


def _check(
    model: llm_model.LoadedModel,
    bundle: CompletionBundle | bytes,
    record: cc.CompletionRecord | None = None,
) -> cc.CompletionCheck:
    data = bundle if isinstance(bundle, bytes) else encode_bundle(bundle)
    if record is None:
        assert isinstance(bundle, CompletionBundle)
        record = llm_cheats.record_of(bundle, model)
    return cc.check_completion(data, record, model, llm_prompts.encode)


def _recommitted(bundle: CompletionBundle, **changes: object) -> CompletionBundle:
    """The bundle with ``changes``, its proof's counts following its ids."""
    changed = replace(bundle, **changes)
    proof = replace(
        changed.proof,
        prompt_tokens=len(changed.prompt_ids),
        completion_tokens=len(changed.token_ids),
    )
    return replace(changed, proof=proof)


def test_an_honest_greedy_completion_passes_every_chunk(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    check = _check(model, honest)
    assert check.passed and check.is_judged
    assert check.reason == cc.CHECK_PASSED
    assert len(honest.token_ids) == NEW_TOKENS
    assert len(check.chunks) == 3 and all(check.chunks_accepted)
    assert all(chunk.k == toploc.TOPK for chunk in check.chunks)
    assert check.greedy_consistent is True


def test_an_honest_sampled_completion_passes_without_the_greedy_check(
    model: llm_model.LoadedModel, request_: LlmRequest
) -> None:
    sampled = replace(request_, temperature=0.8, seed=5)
    bundle = llm_cheats.serve_honestly(model, sampled, llm_prompts.encode(model, sampled))
    check = _check(model, bundle)
    assert check.passed
    assert check.greedy_consistent is None


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"{}", b'{"request": 1}', b"\xff" * 64],
    ids=["empty", "text", "empty-object", "wrong-type", "bytes"],
)
def test_a_malformed_bundle_fails_without_raising(
    model: llm_model.LoadedModel, honest: CompletionBundle, data: bytes
) -> None:
    record = llm_cheats.record_of(honest, model)
    assert _check(model, data, record).reason == cc.BUNDLE_MALFORMED


def test_a_bundle_whose_proof_counts_disagree_with_its_ids_is_malformed(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    skewed = replace(honest, proof=replace(honest.proof, completion_tokens=NEW_TOKENS - 1))
    record = llm_cheats.record_of(honest, model)
    assert _check(model, skewed, record).reason == cc.BUNDLE_MALFORMED


def test_a_bundle_truncated_in_transit_is_malformed(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    data = encode_bundle(honest)
    record = llm_cheats.record_of(honest, model)
    assert _check(model, data[: len(data) // 2], record).reason == cc.BUNDLE_MALFORMED


def test_another_request_than_the_opened_one_fails(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    record = llm_cheats.record_of(honest, model)
    other = replace(honest.request, max_tokens=NEW_TOKENS + 1)
    assert _check(model, replace(honest, request=other), record).reason == (
        cc.REQUEST_DIGEST_MISMATCH
    )


def test_a_request_naming_another_model_than_the_record_fails(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    renamed = replace(honest, request=replace(honest.request, model="tiny-llama-1"))
    record = dataclasses.replace(
        llm_cheats.record_of(honest, model), request_digest=compute_request_digest(renamed.request)
    )
    assert _check(model, renamed, record).reason == cc.MODEL_MISMATCH


def test_a_validator_without_the_model_does_not_judge(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    other = llm_model.build_tiny_llama(seed=1)  # tiny-llama-1
    check = cc.check_completion(
        encode_bundle(honest), llm_cheats.record_of(honest, model), other, llm_prompts.encode
    )
    assert check.reason == cc.MODEL_NOT_HELD
    assert not check.passed and not check.is_judged


def test_a_validator_holding_the_model_in_another_dtype_does_not_judge(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    lowered = llm_model.build_tiny_llama(seed=0, dtype=torch.bfloat16)
    check = cc.check_completion(
        encode_bundle(honest),
        llm_cheats.record_of(honest, model),
        lowered,
        llm_prompts.encode,
    )
    assert check.reason == cc.MODEL_NOT_HELD and not check.is_judged


def test_a_dtype_without_calibrated_thresholds_is_not_judged(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    record = dataclasses.replace(llm_cheats.record_of(honest, model), dtype="int8")
    check = _check(model, honest, record)
    assert check.reason == cc.DTYPE_UNSUPPORTED and not check.is_judged


def test_prompt_ids_other_than_the_requests_tokenization_fail(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    # The node served the prompt without its system message and committed to what it ran.
    dropped = replace(honest.request, messages=honest.request.messages[1:])  # type: ignore[index]
    bundle = _recommitted(honest, prompt_ids=llm_prompts.encode(model, dropped))
    assert _check(model, bundle).reason == cc.PROMPT_MISMATCH


def test_a_request_the_validator_cannot_encode_fails(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    def refuse(loaded: llm_model.LoadedModel, request: LlmRequest) -> list[int]:
        raise ValueError("no chat template")

    record = llm_cheats.record_of(honest, model)
    check = cc.check_completion(encode_bundle(honest), record, model, refuse)
    assert check.reason == cc.PROMPT_UNENCODABLE and check.is_judged


@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens"])
def test_counts_other_than_the_ledgers_fail(
    model: llm_model.LoadedModel, honest: CompletionBundle, field: str
) -> None:
    record = llm_cheats.record_of(honest, model)
    charged = dataclasses.replace(record, **{field: getattr(record, field) - 1})
    assert _check(model, honest, charged).reason == cc.TOKEN_COUNTS_MISMATCH


def test_more_tokens_than_the_request_allowed_fail(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    stingy = replace(honest.request, max_tokens=NEW_TOKENS - 1)
    bundle = replace(honest, request=stingy)
    assert _check(model, bundle).reason == cc.TOKEN_COUNTS_MISMATCH


def test_a_completion_past_the_models_context_fails(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    long_user = "x" * llm_model.TINY_CONTEXT
    request = llm_cheats.chat_request("tiny-llama-0", long_user, max_tokens=NEW_TOKENS)
    bundle = _recommitted(honest, request=request, prompt_ids=llm_prompts.encode(model, request))
    assert _check(model, bundle).reason == cc.CONTEXT_EXCEEDED


def test_a_token_outside_the_vocabulary_fails_without_raising(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    tokens = [*honest.token_ids[:-1], llm_model.TINY_VOCAB]
    assert _check(model, replace(honest, token_ids=tokens)).reason == (cc.TOKEN_OUT_OF_VOCABULARY)


def test_a_bundle_other_than_the_committed_one_fails(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    record = llm_cheats.record_of(honest, model)
    tokens = [*honest.token_ids[:-1], (honest.token_ids[-1] + 1) % llm_model.TINY_VOCAB]
    assert _check(model, replace(honest, token_ids=tokens), record).reason == (
        cc.COMMITMENT_MISMATCH
    )


def test_a_proof_with_a_chunk_missing_fails(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    short = replace(honest.proof, chunks=honest.proof.chunks[:-1])
    assert _check(model, replace(honest, proof=short)).reason == cc.CHUNK_COUNT_MISMATCH


def test_proofs_of_another_prompt_fail_toploc_with_measurements(
    model: llm_model.LoadedModel, honest: CompletionBundle, request_: LlmRequest
) -> None:
    # The node ran another system prompt and claims the request's prompt ids.
    changed = replace(
        request_, messages=[replace(request_.messages[0], content="Be verbose."),  # type: ignore[index]
                            request_.messages[1]],  # type: ignore[index]
    )  # fmt: skip
    ran = llm_cheats.serve_honestly(model, request_, llm_prompts.encode(model, changed))
    bundle = _recommitted(ran, prompt_ids=honest.prompt_ids)
    check = _check(model, bundle)
    assert check.reason == cc.TOPLOC_MISMATCH
    assert len(check.chunks) == 3 and not all(check.chunks_accepted)
    assert check.greedy_consistent is not None  # measured too


def test_tokens_not_greedy_from_the_committed_logits_fail(
    model: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    tokens = list(honest.token_ids)
    tokens[10] = (tokens[10] + 1) % llm_model.TINY_VOCAB
    proofs = llm_cheats.compute_proofs_for(model, honest.prompt_ids, tokens)
    bundle = replace(honest, token_ids=tokens, proof=replace(honest.proof, chunks=proofs))
    check = _check(model, bundle)
    assert check.reason == cc.GREEDY_INCONSISTENT
    assert all(check.chunks_accepted) and check.greedy_consistent is False


def test_bfloat16_registration_is_checked_within_the_papers_bounds(
    request_: LlmRequest,
) -> None:
    registered = llm_model.build_tiny_llama(seed=0, dtype=torch.bfloat16)
    prompt = llm_prompts.encode(registered, request_)
    bundle = llm_cheats.serve_honestly(registered, request_, prompt)
    record = llm_cheats.record_of(bundle, registered)
    assert record.dtype == "bfloat16"
    assert _check(registered, bundle, record).passed


def test_bfloat16_generation_against_a_float32_registration_fails(
    model: llm_model.LoadedModel, request_: LlmRequest
) -> None:
    cheap = llm_cheats.lower_precision(model, torch.bfloat16)
    bundle = llm_cheats.serve_honestly(cheap, request_, llm_prompts.encode(model, request_))
    assert _check(model, bundle).reason == cc.TOPLOC_MISMATCH


def _sampled_tokens_bundle(
    model: llm_model.LoadedModel, request: LlmRequest, text: bytes
) -> CompletionBundle:
    """A node's bundle committing the byte tokens of ``text`` with the model's own
    activations over them (TOPLOC passes: the proofs are an honest prefill's)."""
    prompt = llm_prompts.encode(model, request)
    tokens = list(text)
    proofs = llm_cheats.compute_proofs_for(model, prompt, tokens)
    return llm_cheats.make_bundle(request, prompt, tokens, proofs, "stop")


def test_tokens_billed_past_a_stop_string_fail_and_a_stop_at_the_end_passes(
    model: llm_model.LoadedModel, request_: LlmRequest
) -> None:
    # At temperature > 0 neither TOPLOC nor the greedy check sees padding: this rule does.
    sampled = replace(request_, temperature=0.8, seed=3, stop=["world"])
    padded = _sampled_tokens_bundle(model, sampled, b"hello world, and more tokens billed")
    assert _check(model, padded).reason == cc.PAST_ITS_END
    ended = _sampled_tokens_bundle(model, sampled, b"hello world")
    assert _check(model, ended).passed
    unstopped = _sampled_tokens_bundle(model, replace(sampled, stop=[]), b"hello world, more")
    assert _check(model, unstopped).passed


def test_tokens_billed_past_the_end_of_sequence_fail(
    model: llm_model.LoadedModel, request_: LlmRequest
) -> None:
    with_eos = dataclasses.replace(model, eos_token_id=ord("x"))
    sampled = replace(request_, temperature=0.8, seed=3)
    padded = _sampled_tokens_bundle(with_eos, sampled, b"abx and more")
    assert _check(with_eos, padded).reason == cc.PAST_ITS_END
    ended = _sampled_tokens_bundle(with_eos, sampled, b"ab and the end x")
    assert _check(with_eos, ended).passed

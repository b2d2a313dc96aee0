"""The validator daemon's completion duty (issue 18) against the in-process ledger, on the tiny
Llama the completion network registers (tiny-llama-7, float32): every completion sampled,
the drawn daemons replay its bundle (validator.completion_check) and vote; an honest one is
verified, a cheat rejected and its node slashed, a declarer without the model abstains, one
that did not declare it is never drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from adapters.compute import llm_model, llm_prompts
from domain.completions import (
    CLEARED,
    CLEARED_NO_CHECKER,
    CLEARED_NO_QUORUM,
    REJECTED,
    VERIFIED,
)
from domain.ledger import user_account
from domain.node import ACTIVE, JAILED
from domain.objects import ARTIFACT_UNAVAILABLE_REASON
from flopledger.network import b64
from proofs.llm_request import CompletionBundle, LlmRequest, encode_bundle
from tests import llm_cheats
from tests.completion_network import CONSUMER, MODEL_ID, NODE, CompletionNet
from tests.completion_validators import (
    ALWAYS_SAMPLED,
    CheckingValidators,
    serve_bundle,
    start_checked_network,
)
from validator import completion_check as cc

NEW_TOKENS = 40


@pytest.fixture(scope="module")
def model() -> llm_model.LoadedModel:
    return llm_model.build_tiny_llama(seed=7)  # tiny-llama-7


@pytest.fixture(scope="module")
def request_() -> LlmRequest:
    return llm_cheats.chat_request(
        MODEL_ID, "Say something.", system="Be brief.", max_tokens=NEW_TOKENS
    )


@pytest.fixture(scope="module")
def honest(model: llm_model.LoadedModel, request_: LlmRequest) -> CompletionBundle:
    prompt = llm_prompts.encode(model, request_)
    return llm_cheats.serve_honestly(model, request_, prompt)


async def _judged(
    bundle: CompletionBundle,
    model: llm_model.LoadedModel,
    tmp_path: Path,
    *,
    holds: dict[int, list[str]] | None = None,
    declares: dict[int, list[str]] | None = None,
    uploaded: bool = True,
) -> tuple[CompletionNet, CheckingValidators, str]:
    cnet, keys = await start_checked_network()
    validators = CheckingValidators(cnet, keys, {MODEL_ID: model}, tmp_path, holds=holds)
    await validators.declare(declares)
    artifacts = validators.artifacts if uploaded else None
    completion_id = await serve_bundle(cnet, bundle, artifacts)
    return cnet, validators, completion_id


async def test_an_honest_completion_is_verified_and_its_node_keeps_its_stake(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    cnet, validators, completion_id = await _judged(honest, model, tmp_path)
    node_before = await cnet.get_node()
    completion = await validators.settle(completion_id)
    assert completion.state == VERIFIED
    assert set(completion.verdicts) and all(v.passed for v in completion.verdicts.values())
    node = await cnet.get_node()
    assert node.state == ACTIVE and node.stake == node_before.stake
    assert sum(daemon.verified for daemon in validators.daemons) == len(completion.validators)


async def test_tokens_not_greedy_are_rejected_and_the_node_slashed(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    tokens = list(honest.token_ids)
    tokens[10] = (tokens[10] + 1) % llm_model.TINY_VOCAB
    proofs = llm_cheats.compute_proofs_for(model, honest.prompt_ids, tokens)
    cheat = llm_cheats.make_bundle(honest.request, honest.prompt_ids, tokens, proofs)
    cnet, validators, completion_id = await _judged(cheat, model, tmp_path)
    charge = (await cnet.get(completion_id)).charge
    consumer_before = await cnet.balance(user_account(CONSUMER.id))
    node_before = await cnet.get_node()

    completion = await validators.settle(completion_id)

    assert completion.state == REJECTED
    assert completion.outcome == cc.GREEDY_INCONSISTENT
    assert not any(v.passed for v in completion.verdicts.values())
    node = await cnet.get_node()
    assert node.state == JAILED
    slash = min(charge * ALWAYS_SAMPLED.completion_slash_multiple, node_before.stake)
    assert node.stake + node.unbonding == node_before.stake + node_before.unbonding - slash
    consumer = await cnet.balance(user_account(CONSUMER.id))
    assert consumer - consumer_before == charge  # the cheated consumer's charge back
    assert await cnet.money_total() == 0


async def test_a_bundle_never_uploaded_is_rejected(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    _cnet, validators, completion_id = await _judged(honest, model, tmp_path, uploaded=False)
    completion = await validators.settle(completion_id)
    assert completion.state == REJECTED
    assert completion.outcome.startswith(ARTIFACT_UNAVAILABLE_REASON)


async def test_a_bundle_recorded_stored_then_lost_by_the_store_blames_nobody(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    cnet, validators, completion_id = await _judged(honest, model, tmp_path, uploaded=False)
    usage = (await cnet.get(completion_id)).usage
    assert usage is not None
    recorded = {
        "digest": b64(usage.proof_digest),
        "size_bytes": len(encode_bundle(honest)),
        "uploader": NODE.id,
    }
    await cnet.net.run(NODE, "object.record_stored", recorded)
    completion = await validators.settle(completion_id)
    assert completion.state == CLEARED and completion.outcome == CLEARED_NO_QUORUM
    assert not completion.verdicts
    assert (await cnet.get_node()).state == ACTIVE


async def test_a_declarer_without_the_model_abstains_and_the_others_decide(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    holds = {0: [MODEL_ID], 1: [MODEL_ID], 2: []}
    declares = {0: [MODEL_ID], 1: [MODEL_ID], 2: [MODEL_ID]}  # 2 declared, then lost it
    _cnet, validators, completion_id = await _judged(
        honest, model, tmp_path, holds=holds, declares=declares
    )
    abstainer = validators.daemons[2].identity.id
    completion = await validators.settle(completion_id)
    assert completion.state == VERIFIED
    assert abstainer in completion.validators and abstainer not in completion.verdicts
    assert validators.daemons[2].verified == 0


async def test_a_validator_that_does_not_declare_the_model_is_never_drawn(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    holds = {0: [MODEL_ID], 1: [MODEL_ID], 2: []}
    _cnet, validators, completion_id = await _judged(honest, model, tmp_path, holds=holds)
    completion = await validators.settle(completion_id)
    assert completion.state == VERIFIED
    assert validators.daemons[2].identity.id not in completion.validators


async def test_nobody_declaring_the_model_clears_at_the_commit(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    holds: dict[int, list[str]] = {0: [], 1: [], 2: []}
    cnet, _validators, completion_id = await _judged(honest, model, tmp_path, holds=holds)
    completion = await cnet.get(completion_id)
    assert completion.state == CLEARED and completion.outcome == CLEARED_NO_CHECKER
    assert not completion.validators and (await cnet.get_node(NODE)).state == ACTIVE


async def test_declarers_none_holding_the_model_fail_no_node(
    model: llm_model.LoadedModel, honest: CompletionBundle, tmp_path: Path
) -> None:
    holds: dict[int, list[str]] = {0: [], 1: [], 2: []}
    declares = {i: [MODEL_ID] for i in range(3)}
    cnet, validators, completion_id = await _judged(
        honest, model, tmp_path, holds=holds, declares=declares
    )
    completion = await validators.settle(completion_id)
    assert completion.state == CLEARED and completion.outcome == CLEARED_NO_QUORUM
    assert len(completion.validators) == 3 and not completion.verdicts
    assert (await cnet.get_node(NODE)).state == ACTIVE

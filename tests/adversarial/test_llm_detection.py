"""The detection matrix (issue 18, item 4) on SmolLM2-135M-Instruct, registered in float32.

A node serves a chat request and ships its bundle; a validator holding the registered model
checks it as it checks a sampled completion (``validator.completion_check``). Each cheat the
issue names must fail with its reason: another model (SmolLM2 with layers dropped; random
weights of the same shape and tokenizer), the right model with one layer perturbed, a changed
or dropped system prompt (claimed as the request's prompt, or committed as run), a lower
precision than registered (per-row int8 weights, bfloat16), and tokens not the argmax of the
committed logits at temperature 0. And none may be raised on an honest completion: torch
thread counts 1 and 2 (the validator with the other), batches of 1 and 2 (left-padded), a
sampled completion, and float32 generation on a GPU checked on the CPU (skipped without CUDA).

Then each case is played through the ledger (the in-process network, every completion
sampled): the node commits the bundle and is paid, three validator daemons holding SmolLM2
are drawn, replay it and vote; the honest completion is verified and its node keeps its stake,
each cheat is rejected with its reason, its node jailed and slashed the window's charge times
``completion_slash_multiple`` (capped by its stake), and its consumer refunded the charge.

Each case prints its measurements (per chunk: exponent matches of 128, mean/median mantissa
error; the greedy check), which the issue's closing note reports: ``pytest -s``. SmolLM2 is
loaded once per module; 40 new tokens per completion (the prompt chunk, 32 and 8).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

pytest.importorskip("transformers")

import torch

from adapters.compute import llm_model, llm_prompts, llm_toploc
from domain.completions import REJECTED, VERIFIED
from domain.ledger import user_account
from domain.node import ACTIVE, JAILED
from proofs.llm_request import CompletionBundle, LlmRequest, encode_bundle
from tests import llm_cheats
from tests.completion_network import CONSUMER
from tests.completion_validators import (
    ALWAYS_SAMPLED,
    serve_bundle,
    start_checked_network,
    start_checking,
)
from validator import completion_check as cc

pytestmark = pytest.mark.slow

NEW_TOKENS = 40
SYSTEM = "You are a helpful assistant."
USER = "Write a short poem about the sea."
OTHER_USER = "Name three colours."
LAYERS_KEPT = tuple(range(20))
"""The smaller model: SmolLM2's first 20 of 30 decoder layers."""
PERTURBED_LAYER = 15
SWAPPED_TOKEN = 10


@pytest.fixture(scope="module")
def smollm2() -> llm_model.LoadedModel:
    try:
        return llm_model.load_smollm2()
    except llm_model.ModelUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def request_(smollm2: llm_model.LoadedModel) -> LlmRequest:
    return llm_cheats.chat_request(smollm2.model_id, USER, system=SYSTEM, max_tokens=NEW_TOKENS)


@pytest.fixture(scope="module")
def honest(smollm2: llm_model.LoadedModel, request_: LlmRequest) -> CompletionBundle:
    return llm_cheats.serve_honestly(smollm2, request_, llm_prompts.encode(smollm2, request_))


@pytest.fixture(scope="module")
def scene(smollm2: llm_model.LoadedModel, request_: LlmRequest, honest: CompletionBundle) -> Scene:
    smaller = llm_cheats.drop_layers(smollm2, LAYERS_KEPT)
    return Scene(registered=smollm2, smaller=smaller, request=request_, honest=honest)


@pytest.fixture(scope="module")
def served() -> dict[str, CompletionBundle]:
    """Each cheat's bundle, generated once for its check and its play through the ledger."""
    return {}


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _check(registered: llm_model.LoadedModel, bundle: CompletionBundle) -> cc.CompletionCheck:
    """The validator's verdict on ``bundle`` as committed (its counts and commitment)."""
    record = llm_cheats.record_of(bundle, registered)
    return cc.check_completion(encode_bundle(bundle), record, registered, llm_prompts.encode)


def _report(case: str, check: cc.CompletionCheck) -> None:
    chunks = "; ".join(
        f"{c.exp_matches}/{c.k} exp, mantissa {c.mantissa_err_mean:.2f}/{c.mantissa_err_median:.1f}"
        f"{'' if ok else ' FAIL'}"
        for c, ok in zip(check.chunks, check.chunks_accepted, strict=True)
    )
    print(
        f"\nDETECTION {case}: {check.reason} | chunks [{chunks}] | greedy {check.greedy_consistent}"
    )


def _claiming(bundle: CompletionBundle, prompt_ids: list[int]) -> CompletionBundle:
    """``bundle`` with other prompt ids claimed (its proof's counts following)."""
    proof = msgspec.structs.replace(bundle.proof, prompt_tokens=len(prompt_ids))
    return msgspec.structs.replace(bundle, prompt_ids=prompt_ids, proof=proof)


def _with_system(request: LlmRequest, system: str | None) -> LlmRequest:
    assert request.messages is not None
    user = [m for m in request.messages if m.role != "system"]
    head = [msgspec.structs.replace(request.messages[0], content=system)] if system else []
    return msgspec.structs.replace(request, messages=head + user)


@dataclasses.dataclass(frozen=True)
class Scene:
    """What a cheating node starts from: the registered model, a cheaper one (layers
    dropped), the request and the honest node's bundle for it."""

    registered: llm_model.LoadedModel
    smaller: llm_model.LoadedModel
    request: LlmRequest
    honest: CompletionBundle
    runs: dict[str | None, CompletionBundle] = dataclasses.field(default_factory=dict)
    """What the node ran with another system prompt, by that prompt (run once, claimed or
    committed as it was)."""


Serve = Callable[[Scene], CompletionBundle]


def _serve_with(variant: Callable[[llm_model.LoadedModel], llm_model.LoadedModel]) -> Serve:
    """A node serving the request faithfully, but on another model than the registered one."""

    def serve(scene: Scene) -> CompletionBundle:
        model = variant(scene.registered)
        return llm_cheats.serve_honestly(model, scene.request, scene.honest.prompt_ids)

    return serve


def _serve_layers_dropped(scene: Scene) -> CompletionBundle:
    return llm_cheats.serve_honestly(scene.smaller, scene.request, scene.honest.prompt_ids)


def _serve_system_prompt(system: str | None, claimed: bool) -> Serve:
    """A node that ran another system prompt (None: dropped; SmolLM2's template then inserts
    its default one), claiming the request's prompt ids or committing to the ones it ran."""

    def serve(scene: Scene) -> CompletionBundle:
        if system not in scene.runs:
            ran = llm_prompts.encode(scene.registered, _with_system(scene.request, system))
            scene.runs[system] = llm_cheats.serve_honestly(scene.registered, scene.request, ran)
        bundle = scene.runs[system]
        return _claiming(bundle, scene.honest.prompt_ids) if claimed else bundle

    return serve


def _serve_token_swapped(scene: Scene) -> CompletionBundle:
    """One token changed, then proofs from the registered model's prefill over the result."""
    prompt, tokens = scene.honest.prompt_ids, list(scene.honest.token_ids)
    vocabulary = scene.registered.model.config.vocab_size
    tokens[SWAPPED_TOKEN] = (tokens[SWAPPED_TOKEN] + 1) % vocabulary
    proofs = llm_cheats.compute_proofs_for(scene.registered, prompt, tokens)
    return llm_cheats.make_bundle(scene.request, prompt, tokens, proofs)


def _serve_smaller_models_tokens(scene: Scene) -> CompletionBundle:
    """Tokens generated by the cheaper model, proofs from one prefill of the registered one
    (costs a prefill, not a generation): every activation matches, the logits do not."""
    prompt = scene.honest.prompt_ids
    [cheap] = llm_toploc.generate(scene.smaller, [prompt], NEW_TOKENS)
    proofs = llm_cheats.compute_proofs_for(scene.registered, prompt, cheap.token_ids)
    return llm_cheats.make_bundle(scene.request, prompt, cheap.token_ids, proofs)


CHEATS: dict[str, tuple[Serve, str]] = {
    "layers_dropped": (_serve_layers_dropped, cc.TOPLOC_MISMATCH),
    "random_weights_same_shape": (
        _serve_with(lambda m: llm_cheats.random_like(m, seed=1)),
        cc.TOPLOC_MISMATCH,
    ),
    "one_layer_perturbed": (
        _serve_with(lambda m: llm_cheats.perturb_one_layer(m, layer=PERTURBED_LAYER)),
        cc.TOPLOC_MISMATCH,
    ),
    "system_prompt_changed_claimed": (
        _serve_system_prompt("You are a pirate.", True),
        cc.TOPLOC_MISMATCH,
    ),
    "system_prompt_changed_committed": (
        _serve_system_prompt("You are a pirate.", False),
        cc.PROMPT_MISMATCH,
    ),
    "system_prompt_dropped_claimed": (_serve_system_prompt(None, True), cc.TOPLOC_MISMATCH),
    "system_prompt_dropped_committed": (_serve_system_prompt(None, False), cc.PROMPT_MISMATCH),
    "int8_per_row_weights": (_serve_with(llm_cheats.quantize_int8_per_row), cc.TOPLOC_MISMATCH),
    "bfloat16_weights": (
        _serve_with(lambda m: llm_cheats.lower_precision(m, torch.bfloat16)),
        cc.TOPLOC_MISMATCH,
    ),
    "greedy_token_swapped": (_serve_token_swapped, cc.GREEDY_INCONSISTENT),
    "greedy_tokens_of_smaller_model": (_serve_smaller_models_tokens, cc.GREEDY_INCONSISTENT),
}


def test_an_honest_completion_passes(
    smollm2: llm_model.LoadedModel, honest: CompletionBundle
) -> None:
    check = _check(smollm2, honest)
    _report("honest", check)
    assert len(honest.token_ids) == NEW_TOKENS  # two generated chunks: 32 and 8
    assert check.passed and all(check.chunks_accepted) and check.greedy_consistent


@pytest.mark.parametrize("case", list(CHEATS))
def test_each_cheat_fails_with_its_reason(
    scene: Scene, served: dict[str, CompletionBundle], case: str
) -> None:
    check = _check(scene.registered, _served(scene, served, case))
    _report(case, check)
    assert check.reason == CHEATS[case][1]


async def test_the_honest_completion_is_verified_through_the_ledger(
    scene: Scene, tmp_path: Path
) -> None:
    cnet, keys = await start_checked_network(scene.registered.model_id)
    validators = await start_checking(
        cnet, keys, {scene.registered.model_id: scene.registered}, tmp_path
    )
    completion_id = await serve_bundle(cnet, scene.honest, validators.artifacts)
    stake_before = (await cnet.get_node()).stake

    completion = await validators.settle(completion_id)

    assert completion.state == VERIFIED
    assert len(completion.verdicts) >= 2 and all(v.passed for v in completion.verdicts.values())
    node = await cnet.get_node()
    assert node.state == ACTIVE and node.stake == stake_before


@pytest.mark.parametrize("case", list(CHEATS))
async def test_each_cheat_is_slashed_through_the_ledger(
    scene: Scene, served: dict[str, CompletionBundle], case: str, tmp_path: Path
) -> None:
    bundle = _served(scene, served, case)
    cnet, keys = await start_checked_network(scene.registered.model_id)
    validators = await start_checking(
        cnet, keys, {scene.registered.model_id: scene.registered}, tmp_path
    )
    completion_id = await serve_bundle(cnet, bundle, validators.artifacts)
    charge = (await cnet.get(completion_id)).charge
    assert charge > 0  # paid at its commit, before any check
    consumer_before = await cnet.balance(user_account(CONSUMER.id))
    node_before = await cnet.get_node()

    completion = await validators.settle(completion_id)

    assert completion.state == REJECTED and completion.outcome == CHEATS[case][1]
    assert len(completion.verdicts) >= 2 and not any(v.passed for v in completion.verdicts.values())
    node = await cnet.get_node()
    assert node.state == JAILED
    slashable = node_before.stake + node_before.unbonding
    slash = min(charge * ALWAYS_SAMPLED.completion_slash_multiple, slashable)
    assert node.stake + node.unbonding == slashable - slash
    assert await cnet.balance(user_account(CONSUMER.id)) - consumer_before == charge
    assert await cnet.money_total() == 0
    print(f"\nSLASHED {case}: charge {charge}, slash {slash}, outcome {completion.outcome}")


@pytest.mark.parametrize("generate_threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_no_false_alarm_across_threads_and_batches(
    smollm2: llm_model.LoadedModel,
    request_: LlmRequest,
    threads: None,
    generate_threads: int,
    batch: int,
) -> None:
    # In a batch of two a shorter prompt rides along, left-padded; both rows are checked.
    requests = [request_, _with_user(request_)][:batch]
    prompts = [llm_prompts.encode(smollm2, r) for r in requests]
    torch.set_num_threads(generate_threads)
    completions = llm_toploc.generate(smollm2, prompts, NEW_TOKENS)
    torch.set_num_threads(3 - generate_threads)  # the validator runs with the other count
    for row, (request, completion) in enumerate(zip(requests, completions, strict=True)):
        check = _check(smollm2, llm_cheats.bundle_of(request, completion))
        _report(f"honest threads={generate_threads} batch={batch} row={row}", check)
        assert check.passed


def test_no_false_alarm_on_a_sampled_completion(
    smollm2: llm_model.LoadedModel, request_: LlmRequest
) -> None:
    sampled = msgspec.structs.replace(request_, temperature=0.7, seed=11)
    bundle = llm_cheats.serve_honestly(smollm2, sampled, llm_prompts.encode(smollm2, sampled))
    check = _check(smollm2, bundle)
    _report("honest sampled t=0.7", check)
    assert check.passed and check.greedy_consistent is None


def test_no_false_alarm_on_gpu_generation_checked_on_cpu(
    smollm2: llm_model.LoadedModel, request_: LlmRequest
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: GPU generation checked on the CPU is not measured")
    on_gpu = dataclasses.replace(smollm2, model=copy.deepcopy(smollm2.model).to("cuda"))
    bundle = llm_cheats.serve_honestly(on_gpu, request_, llm_prompts.encode(smollm2, request_))
    check = _check(smollm2, bundle)
    _report("honest generated on GPU", check)
    assert check.passed


def _served(scene: Scene, served: dict[str, CompletionBundle], case: str) -> CompletionBundle:
    if case not in served:
        served[case] = CHEATS[case][0](scene)
    return served[case]


def _with_user(request: LlmRequest) -> LlmRequest:
    assert request.messages is not None
    user = msgspec.structs.replace(request.messages[-1], content=OTHER_USER)
    return msgspec.structs.replace(request, messages=[*request.messages[:-1], user])

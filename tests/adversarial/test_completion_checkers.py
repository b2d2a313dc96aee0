"""A sampled completion is judged by the validators that check its model, not by whoever is
staked (issue 18). Before ``validator.declare_models`` the draw picked among every staked
validator; those without the model abstained, were replaced, and a round without quorum
cleared the completion unjudged, so where few validators held a model a cheating node went
free. Played with valid keys through the command bus: three validators staked, one declaring
the model: every sampled completion is drawn to it alone, and a cheat it replays is rejected
and its node slashed; a declarer that never checks is replaced by another declarer, and with
none left the completion clears unjudged ("no verdict quorum"), it never passes; nobody
declaring clears it ("no validator checks its model"); a ledger that draws a validator that
did not declare fails the audit's draw check."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from domain.completions import (
    CLEARED,
    CLEARED_NO_CHECKER,
    CLEARED_NO_QUORUM,
    COMMITTED,
    REJECTED,
    VERIFIED,
)
from domain.ledger import user_account
from domain.node import ACTIVE, JAILED
from domain.policy import PPM, LedgerPolicy
from domain.services import rounds
from flopledger.network import ValidatorKeys
from tests.completion_network import (
    CONSUMER,
    MODEL_ID,
    POLICY,
    CompletionNet,
    start_completion_network,
)
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

DEFAULT_QUORUM = msgspec.structs.replace(POLICY, completion_sample_rate_ppm=PPM)
ALWAYS = msgspec.structs.replace(DEFAULT_QUORUM, quorum_signers_min=1)
"""Every completion sampled, and one signer decides: the scenario is a model only one
validator checks, and under the default ``quorum_signers_min`` (2) a lone checker never
decides (``test_under_the_default_quorum_a_lone_checker_decides_nothing``)."""
COMPLETIONS = 6


async def _network(
    declarers: int, policy: LedgerPolicy = ALWAYS
) -> tuple[CompletionNet, list[ValidatorKeys]]:
    """Three validators staked, the first ``declarers`` of them declaring the model."""
    cnet = await start_completion_network(policy)
    keys = await cnet.add_validators(3, check_models=())
    for validator in keys[:declarers]:
        await cnet.declare_models(validator.identity, (MODEL_ID,))
    return cnet, keys


async def _serve(cnet: CompletionNet) -> str:
    completion_id = await cnet.open(prompt_tokens_max=200, max_tokens=100)
    await cnet.commit(completion_id, prompt_tokens=40, completion_tokens=20)
    return completion_id


async def _audit(cnet: CompletionNet, *, reexecute: bool = True) -> str | None:
    report = await run_audit(
        StoreSource(cnet.net.store, "memory:"), AuditOptions(reexecute=reexecute)
    )
    return None if report.failure is None else f"{report.failure.check}: {report.failure.message}"


async def _expire(cnet: CompletionNet, completion_id: str) -> None:
    """Past the round's reveal window, crank it (``completion.expire``, anyone)."""
    completion = await cnet.get(completion_id)
    assert completion.round is not None
    cnet.net.now_ns = completion.round.reveal_deadline_ns + 1
    await cnet.net.run(CONSUMER, "completion.expire", {"completion_id": completion_id})
    await cnet.net.run_beacon()


async def test_every_sampled_completion_is_drawn_to_the_one_declarer() -> None:
    cnet, keys = await _network(declarers=1)
    checker = keys[0].identity.id
    served = [await _serve(cnet) for _ in range(COMPLETIONS)]
    await cnet.net.run_beacon()
    for completion_id in served:
        completion = await cnet.get(completion_id)
        assert completion.state == COMMITTED and completion.validators == (checker,)
    await cnet.vote(served[0], [(keys[0], True)])  # alone, it is the quorum
    assert (await cnet.get(served[0])).state == VERIFIED
    assert await _audit(cnet) is None


async def test_a_cheat_is_rejected_by_the_one_declarer_and_its_node_slashed() -> None:
    cnet, keys = await _network(declarers=1)
    completion_id = await _serve(cnet)
    charge = (await cnet.get(completion_id)).charge
    consumer_before = await cnet.balance(user_account(CONSUMER.id))
    node_before = await cnet.get_node()

    await cnet.vote(completion_id, [(keys[0], False)], reason="greedy_inconsistent")

    completion = await cnet.get(completion_id)
    assert completion.state == REJECTED and completion.validators == (keys[0].identity.id,)
    node = await cnet.get_node()
    assert node.state == JAILED
    slashable = node_before.stake + node_before.unbonding
    slash = min(charge * ALWAYS.completion_slash_multiple, slashable)
    assert node.stake + node.unbonding == slashable - slash
    assert await cnet.balance(user_account(CONSUMER.id)) - consumer_before == charge
    assert await cnet.money_total() == 0
    assert await _audit(cnet) is None


async def test_a_declarer_that_never_checks_is_replaced_by_another_declarer() -> None:
    cnet, keys = await _network(declarers=1)
    completion_id = await _serve(cnet)
    await cnet.net.run_beacon()
    # the second validator declares after the draw: it is there to replace the absent one
    await cnet.declare_models(keys[1].identity, (MODEL_ID,))
    await _expire(cnet, completion_id)
    completion = await cnet.get(completion_id)
    assert completion.state == COMMITTED
    assert keys[1].identity.id in completion.validators  # the non-declarer keys[2] never is
    assert keys[2].identity.id not in completion.validators
    await cnet.vote(completion_id, [(keys[1], False)], reason="greedy_inconsistent")
    completion = await cnet.get(completion_id)
    assert completion.state == REJECTED and (await cnet.get_node()).state == JAILED
    assert await cnet.money_total() == 0
    assert await _audit(cnet) is None


async def test_a_lone_declarer_that_never_checks_clears_the_cheat_unjudged() -> None:
    """It cannot pass a cheat: the completion is cleared without a verdict (the node keeps
    its charge for this one completion, as with any round nobody decides). The absent
    validator earns no fee and loses nothing else (absence is not slashed)."""
    cnet, keys = await _network(declarers=1)
    completion_id = await _serve(cnet)
    await cnet.net.run_beacon()
    for _ in range(ALWAYS.validator_replacements_max + 1):
        if (await cnet.get(completion_id)).state != COMMITTED:
            break
        await _expire(cnet, completion_id)
    completion = await cnet.get(completion_id)
    assert completion.state == CLEARED and completion.outcome == CLEARED_NO_QUORUM
    assert not completion.verdicts
    assert (await cnet.get_node()).state == ACTIVE
    validator = await cnet.balance(user_account(keys[0].identity.id))
    assert validator == 1_000  # what it kept of its deposit after bonding: no fee, no slash
    assert await _audit(cnet) is None


async def test_under_the_default_quorum_a_lone_checker_decides_nothing() -> None:
    """One signer is below ``quorum_signers_min``: its fail decides nothing, the split round
    finds no other declarer to escalate to, and the completion clears unjudged. So under the
    default policy a model needs two declarers before any of its completions is judged."""
    cnet, keys = await _network(declarers=1, policy=DEFAULT_QUORUM)
    completion_id = await _serve(cnet)
    await cnet.vote(completion_id, [(keys[0], False)], reason="greedy_inconsistent")
    assert (await cnet.get(completion_id)).state == COMMITTED
    await _expire(cnet, completion_id)
    completion = await cnet.get(completion_id)
    assert completion.state == CLEARED and completion.outcome == CLEARED_NO_QUORUM
    assert (await cnet.get_node()).state == ACTIVE
    assert await _audit(cnet) is None


async def test_nobody_declaring_the_model_clears_the_completion_no_checker() -> None:
    cnet, _keys = await _network(declarers=0)
    completion_id = await _serve(cnet)
    completion = await cnet.get(completion_id)
    assert completion.state == CLEARED and completion.outcome == CLEARED_NO_CHECKER
    assert not completion.validators
    assert await _audit(cnet) is None


async def test_the_last_declarer_withdrawing_before_the_draw_clears_it_no_checker() -> None:
    cnet, keys = await _network(declarers=1)
    completion_id = await _serve(cnet)
    await cnet.declare_models(keys[0].identity, ())  # before the beacon epoch closes
    await cnet.net.run_beacon()
    completion = await cnet.get(completion_id)
    assert completion.state == CLEARED and completion.outcome == CLEARED_NO_CHECKER
    assert not completion.validators
    assert await _audit(cnet) is None


@pytest.mark.parametrize("reexecute", [False, True])
async def test_a_ledger_drawing_a_validator_that_did_not_declare_fails_the_audit(
    monkeypatch: pytest.MonkeyPatch, reexecute: bool, tmp_path: Path
) -> None:
    cnet, keys = await _network(declarers=1)
    completion_id = await _serve(cnet)

    async def _nobody_excluded(*_args: object) -> frozenset[str]:
        return frozenset()

    with monkeypatch.context() as patched:  # the operator's ledger, not the auditor's code
        patched.setattr(rounds, "_get_non_judges", _nobody_excluded)
        await cnet.net.run_beacon()
    drawn = (await cnet.get(completion_id)).validators
    assert set(drawn) - {keys[0].identity.id}  # the patched ledger drew a non-declarer

    failure = await _audit(cnet, reexecute=reexecute)

    assert failure is not None
    if not reexecute:
        assert failure.startswith("beacon") and "not the ones the epoch gives" in failure


async def test_the_one_declaring_daemon_replays_a_cheat_and_its_node_is_slashed(
    tmp_path: Path,
) -> None:
    """The in-process play (tests/completion_validators.py): three validator daemons, one
    holding and declaring tiny-llama-7; a greedy completion with a swapped token."""
    pytest.importorskip("transformers")
    from adapters.compute import llm_model, llm_prompts
    from tests import llm_cheats
    from tests.completion_validators import (
        CheckingValidators,
        serve_bundle,
        start_checked_network,
    )

    model = llm_model.build_tiny_llama(seed=7)
    request = llm_cheats.chat_request(MODEL_ID, "Say something.", max_tokens=40)
    honest = llm_cheats.serve_honestly(model, request, llm_prompts.encode(model, request))
    tokens = list(honest.token_ids)
    tokens[10] = (tokens[10] + 1) % llm_model.TINY_VOCAB
    proofs = llm_cheats.compute_proofs_for(model, honest.prompt_ids, tokens)
    cheat = llm_cheats.make_bundle(request, honest.prompt_ids, tokens, proofs)
    cnet, keys = await start_checked_network(policy=ALWAYS)
    holds = {0: [MODEL_ID], 1: [], 2: []}
    validators = CheckingValidators(cnet, keys, {MODEL_ID: model}, tmp_path, holds=holds)
    await validators.declare()
    completion_id = await serve_bundle(cnet, cheat, validators.artifacts)
    charge = (await cnet.get(completion_id)).charge
    node_before = await cnet.get_node()

    completion = await validators.settle(completion_id)

    assert completion.state == REJECTED and completion.validators == (keys[0].identity.id,)
    node = await cnet.get_node()
    assert node.state == JAILED
    slashable = node_before.stake + node_before.unbonding
    assert node.stake + node.unbonding == slashable - min(
        charge * ALWAYS.completion_slash_multiple, slashable
    )
    assert validators.daemons[1].verified == validators.daemons[2].verified == 0
    assert await cnet.money_total() == 0

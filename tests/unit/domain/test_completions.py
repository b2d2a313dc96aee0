"""LLM completions on the ledger (issue 18; rules v5), through the command bus: given a
registered model, a consumer's key and a node holding the model warm, when a completion signer
opens, the node commits or a signer aborts, then the record, the money and the key's spent
amount; the refusals by code, in their order; bounds at and past the edge; the audit
re-executes the history; and, under any sequence of opens, commits and aborts, every escrow is
the charge paid plus what went back, and the key's spent amount never exceeds its cap."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.store.memory import MemoryEventStore
from domain.completions import COMPLETION_CHECKS_ACCOUNT, Completion
from domain.errors import Rejection
from domain.ledger import TREASURY_ACCOUNT, escrow_account, user_account
from domain.policy import BPS, RULES_V4, SECOND_NS, LedgerPolicy
from domain.services.completion_rounds import compute_completion_verdict_message
from domain.services.queries import get_balances
from flopledger.network import LocalNetwork, b64
from proofs.identity import Identity
from proofs.quorum import completion_verdict_message, verdict_message
from tests.completion_network import (
    CONSUMER,
    CONSUMER_FUNDS,
    CONTEXT_TOKENS,
    DIGEST,
    MODEL_ID,
    NODE,
    POLICY,
    SPEND_LIMIT,
    CompletionNet,
    add_serving_node,
    compute_escrow,
    register_model,
    start_completion_network,
)
from validator.audit import AuditOptions
from validator.audit_run import StoreSource, run_audit

STRANGER = Identity.from_seed(bytes([213]) * 32)
OTHER_NODE = Identity.from_seed(bytes([214]) * 32)


async def _code(coro: Any) -> str:
    with pytest.raises(Rejection) as refused:
        await coro
    return str(refused.value.code)


def _fees(charge: int) -> tuple[int, int, int]:
    """(provider, checks pool, treasury) of a charge under the default fee shares."""
    checks = charge * POLICY.validator_fee_bps // BPS
    treasury = charge * POLICY.treasury_fee_bps // BPS
    return charge - checks - treasury, checks, treasury


async def _audit_ok(cnet: CompletionNet) -> None:
    report = await run_audit(StoreSource(cnet.net.store, "memory:"), AuditOptions())
    assert report.ok, report.failure
    assert report.checks["reexecution"].count > 0


async def test_a_node_advertises_its_warm_models_and_the_view_shows_them() -> None:
    cnet = await start_completion_network()
    node = await cnet.get_node()
    view = node.view()
    assert view["warm_models"] == [{"model_id": MODEL_ID, "capacity": 4}]
    assert view["llm_endpoint"] == "http://127.0.0.1:9300"
    same = {
        "node_id": NODE.id,
        "models": [{"model_id": MODEL_ID, "capacity": 4}],
        "endpoint": "http://127.0.0.1:9300",
    }
    assert await _code(cnet.net.run(NODE, "node.advertise_models", same)) == (
        "node_models_unchanged"
    )
    await cnet.net.run(NODE, "node.advertise_models", {"node_id": NODE.id, "models": []})
    assert (await cnet.get_node()).view()["warm_models"] == []
    assert await _code(cnet.open()) == "node_model_not_warm"


async def test_advertising_refusals_by_code() -> None:
    cnet = await start_completion_network()
    run = cnet.net.run
    one = [{"model_id": MODEL_ID, "capacity": 1}]
    url = "https://node.example/llm"
    body = {"node_id": NODE.id, "models": one, "endpoint": url}
    assert await _code(run(STRANGER, "node.advertise_models", body)) == "not_the_node"
    unknown = {**body, "models": [{"model_id": "not-registered", "capacity": 1}]}
    assert await _code(run(NODE, "node.advertise_models", unknown)) == "model_not_found"
    assert await _code(run(NODE, "node.advertise_models", {**body, "models": one * 2})) == (
        "model_advertised_twice"
    )
    no_url = {"node_id": NODE.id, "models": one}
    assert await _code(run(NODE, "node.advertise_models", no_url)) == "llm_endpoint_required"
    bad_url = {**body, "endpoint": "ftp://node.example"}
    assert await _code(run(NODE, "node.advertise_models", bad_url)) == "command_body_invalid"
    nobody = {**body, "node_id": STRANGER.id}
    assert await _code(run(STRANGER, "node.advertise_models", nobody)) == "node_not_found"


async def test_advertising_bounds_at_and_past_the_edge() -> None:
    cnet = await start_completion_network()
    for index in range(16):
        await register_model(cnet.net, f"m-{index}")
    run = cnet.net.run
    url = "http://n.example/" + "a" * (256 - len("http://n.example/"))
    sixteen = [{"model_id": f"m-{i}", "capacity": 64} for i in range(16)]
    full = {"node_id": NODE.id, "models": sixteen, "endpoint": url}
    await run(NODE, "node.advertise_models", full)
    node = await cnet.get_node()
    assert len(node.warm_models) == 16 and node.llm_endpoint == url
    past = [
        {"node_id": NODE.id, "models": [*sixteen, {"model_id": MODEL_ID, "capacity": 1}]},
        {"node_id": NODE.id, "models": [{"model_id": MODEL_ID, "capacity": 65}]},
        {"node_id": NODE.id, "models": [{"model_id": MODEL_ID, "capacity": 0}]},
        {"node_id": NODE.id, "models": sixteen[:1], "endpoint": url + "a"},
    ]
    for body in past:
        body.setdefault("endpoint", "http://n.example")
        assert await _code(run(NODE, "node.advertise_models", body)) == "command_body_invalid"


async def test_an_open_holds_the_escrow_and_reserves_it_on_the_key() -> None:
    cnet = await start_completion_network()
    completion_id = await cnet.open(prompt_tokens_max=100, max_tokens=50)
    escrow = 100 * 1 + 50 * 2
    record = (await cnet.get(completion_id)).view()
    assert {k: record[k] for k in ("consumer", "key_id", "model_id", "node_id", "state")} == {
        "consumer": CONSUMER.id,
        "key_id": cnet.key_id,
        "model_id": MODEL_ID,
        "node_id": NODE.id,
        "state": "opened",
    }
    bounds = (record["escrow"], record["prompt_tokens_max"], record["max_tokens"])
    assert bounds == (escrow, 100, 50)
    assert record["commit_due_ns"] == cnet.net.now_ns + POLICY.completion_commit_window_ns
    accounts = await get_balances(cnet.net.store)
    consumer = accounts[user_account(CONSUMER.id)]
    assert (consumer.balance, consumer.available) == (CONSUMER_FUNDS, CONSUMER_FUNDS - escrow)
    assert (await cnet.get_key()).spent == escrow


async def test_a_commit_charges_the_usage_pays_the_node_and_returns_the_rest() -> None:
    cnet = await start_completion_network()
    provider_before = await cnet.balance(user_account(NODE.id))
    completion_id = await cnet.open(prompt_tokens_max=100, max_tokens=50)
    await cnet.commit(completion_id, prompt_tokens=40, completion_tokens=20)
    charge = 40 * 1 + 20 * 2
    provider, checks, treasury = _fees(charge)
    assert await cnet.balance(user_account(CONSUMER.id)) == CONSUMER_FUNDS - charge
    assert await cnet.balance(user_account(NODE.id)) == provider_before + provider
    assert await cnet.balance(COMPLETION_CHECKS_ACCOUNT) == checks
    assert await cnet.balance(escrow_account(f"completion:{completion_id}")) == 0
    assert await cnet.money_total() == 0
    assert (await cnet.get_key()).spent == charge
    record = (await cnet.get(completion_id)).view()
    # cleared at once: no validator to check it (tests/adversarial/test_completion_slash.py)
    assert (record["state"], record["charge"]) == ("cleared", charge)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (40, 20)
    assert record["committed_at_ns"] == cnet.net.now_ns
    assert treasury >= 0
    node = await cnet.get_node()
    window = POLICY.completion_challenge_window_ns
    assert node.compute_window_charges(until_ns=cnet.net.now_ns, window_ns=window) == charge


async def test_a_commit_of_nothing_billable_voids_the_escrow() -> None:
    cnet = await start_completion_network()
    completion_id = await cnet.open()
    await cnet.commit(completion_id, prompt_tokens=0, completion_tokens=0)
    assert await cnet.balance(user_account(CONSUMER.id)) == CONSUMER_FUNDS
    assert (await cnet.get_key()).spent == 0
    assert (await cnet.get(completion_id)).charge == 0


async def test_open_refusals_in_their_order() -> None:
    cnet = await start_completion_network()
    missing_key = "0" * 64
    assert await _code(cnet.open(signer=CONSUMER)) == "completion_signer_not_allowed"
    assert await _code(cnet.open(key_id=missing_key)) == "apikey_not_found"
    assert await _code(cnet.open(model_id="not-registered")) == "model_not_found"
    assert await _code(cnet.open(prompt_tokens_max=CONTEXT_TOKENS, max_tokens=1)) == (
        "completion_context_exceeded"
    )
    assert await _code(cnet.open(node=STRANGER)) == "node_not_found"
    poor = Identity.from_seed(bytes([215]) * 32)
    await cnet.net.deposit(poor, 10)
    poor_key = await cnet.create_key(poor, "poor", spend_limit=SPEND_LIMIT)
    assert await _code(cnet.open(key_id=poor_key)) == "exceeds_available"
    big = compute_escrow(100, 50)
    capped = await cnet.create_key(CONSUMER, "capped", spend_limit=big - 1)
    assert await _code(cnet.open(key_id=capped)) == "apikey_spend_limit_exceeded"
    expiring = await cnet.create_key(
        CONSUMER, "expiring", spend_limit=SPEND_LIMIT, expires_ns=cnet.net.now_ns + SECOND_NS
    )
    cnet.net.advance(2)
    assert await _code(cnet.open(key_id=expiring)) == "apikey_expired"
    await cnet.net.run(CONSUMER, "apikey.revoke", {"key_id": capped})
    assert await _code(cnet.open(key_id=capped)) == "apikey_revoked"


async def test_open_bounds_at_and_past_the_edge() -> None:
    cnet = await start_completion_network(spend_limit=10**9)
    await cnet.open(prompt_tokens_max=CONTEXT_TOKENS - 1, max_tokens=1)  # the context, full
    await cnet.net.deposit(CONSUMER, 10**7)
    await cnet.net.run(cnet.net.operator, "model.register", _big_model())
    await cnet.net.run(
        NODE,
        "node.advertise_models",
        {
            "node_id": NODE.id,
            "models": [{"model_id": "big-llama", "capacity": 1}],
            "endpoint": "http://127.0.0.1:9300",
        },
    )
    await cnet.open(model_id="big-llama", prompt_tokens_max=2**20 - 4096, max_tokens=4096)
    at_prompt_bound = cnet.open(model_id="big-llama", prompt_tokens_max=2**20, max_tokens=1)
    assert await _code(at_prompt_bound) == "completion_context_exceeded"
    for prompt_tokens_max, max_tokens in ((0, 1), (1, 0), (1, 4097), (2**20 + 1, 1)):
        refused = cnet.open(prompt_tokens_max=prompt_tokens_max, max_tokens=max_tokens)
        assert await _code(refused) == "command_body_invalid"


async def test_the_node_must_be_active() -> None:
    cnet = await start_completion_network()
    await cnet.net.run(NODE, "stake.unbond", {"target": NODE.id, "amount": 4_500})
    assert await _code(cnet.open()) == "node_not_active"


async def test_commit_refusals_by_code() -> None:
    cnet = await start_completion_network()
    await add_serving_node(cnet.net, OTHER_NODE)
    completion_id = await cnet.open(prompt_tokens_max=100, max_tokens=50)
    assert await _code(cnet.commit(completion_id, node=OTHER_NODE)) == "not_the_completion_node"
    assert await _code(cnet.commit(completion_id, prompt_tokens=101)) == (
        "completion_prompt_tokens_above_bound"
    )
    assert await _code(cnet.commit(completion_id, completion_tokens=51)) == (
        "completion_tokens_above_max"
    )
    await cnet.commit(completion_id, prompt_tokens=100, completion_tokens=50)
    assert await _code(cnet.commit(completion_id)) == "completion_cleared"
    assert await _code(cnet.abort(completion_id)) == "completion_cleared"
    assert await _code(cnet.commit("cmpl-" + "0" * 24)) == "completion_not_found"


async def test_an_abort_gives_the_escrow_back_whole() -> None:
    cnet = await start_completion_network()
    completion_id = await cnet.open()
    await cnet.abort(completion_id)
    assert await cnet.balance(user_account(CONSUMER.id)) == CONSUMER_FUNDS
    accounts = await get_balances(cnet.net.store)
    assert accounts[user_account(CONSUMER.id)].available == CONSUMER_FUNDS
    assert (await cnet.get_key()).spent == 0
    record = (await cnet.get(completion_id)).view()
    assert (record["state"], record["charge"]) == ("aborted", 0)
    assert await _code(cnet.commit(completion_id)) == "completion_aborted"


async def test_anyone_aborts_once_the_commit_window_passed_and_nobody_before() -> None:
    cnet = await start_completion_network()
    completion_id = await cnet.open()
    window_s = POLICY.completion_commit_window_ns / SECOND_NS
    cnet.net.advance(window_s)
    assert await _code(cnet.abort(completion_id, by=STRANGER)) == "completion_commit_window_open"
    cnet.net.advance(1)
    await cnet.abort(completion_id, by=STRANGER)
    assert (await cnet.get(completion_id)).state == "aborted"
    assert await cnet.balance(user_account(CONSUMER.id)) == CONSUMER_FUNDS


async def test_named_completion_signers_replace_the_operators() -> None:
    signer = Identity.from_seed(bytes([216]) * 32)
    policy = LedgerPolicy(**{**_fields(POLICY), "completion_signers": (signer.id,)})
    cnet = await start_completion_network(policy)
    assert await _code(cnet.open()) == "completion_signer_not_allowed"
    completion_id = await cnet.open(signer=signer)
    assert await _code(cnet.abort(completion_id)) == "completion_commit_window_open"
    await cnet.abort(completion_id, by=signer)


async def test_completions_need_rules_v5() -> None:
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy(rules_version=RULES_V4))
    body = {"node_id": NODE.id, "models": []}
    assert await _code(net.run(NODE, "node.advertise_models", body)) == "rules_v5_required"
    open_body = {
        "key_id": "0" * 64,
        "model_id": MODEL_ID,
        "node_id": NODE.id,
        "request_digest": b64(bytes(32)),
        "prompt_tokens_max": 1,
        "max_tokens": 1,
        "greedy": False,
    }
    assert await _code(net.run(net.operator, "completion.open", open_body)) == "rules_v5_required"


async def test_the_audit_re_executes_a_history_of_completions() -> None:
    cnet = await start_completion_network()
    committed = await cnet.open()
    await cnet.commit(committed)
    await cnet.abort(await cnet.open())
    await cnet.commit(await cnet.open(), prompt_tokens=0, completion_tokens=0)
    await cnet.open()
    await _audit_ok(cnet)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("open"), st.integers(1, 400), st.integers(1, 200)),
            st.tuples(st.just("commit"), st.integers(0, 7), st.floats(0, 1), st.floats(0, 1)),
            st.tuples(st.just("abort"), st.integers(0, 7)),
        ),
        max_size=12,
    )
)
async def test_escrow_is_charge_plus_return_and_the_key_never_passes_its_cap(
    steps: list[tuple[Any, ...]],
) -> None:
    cap = 1_500
    cnet = await start_completion_network(spend_limit=cap)
    opened: list[tuple[str, int, int, int]] = []  # id, prompt bound, max tokens, escrow
    open_ids: set[str] = set()
    charged = 0
    for step in steps:
        if step[0] == "open":
            escrow = compute_escrow(step[1], step[2])
            reserved = charged + sum(e for cid, _, _, e in opened if cid in open_ids)
            if reserved + escrow > cap:
                assert await _code(cnet.open(prompt_tokens_max=step[1], max_tokens=step[2])) == (
                    "apikey_spend_limit_exceeded"
                )
                continue
            completion_id = await cnet.open(prompt_tokens_max=step[1], max_tokens=step[2])
            opened.append((completion_id, step[1], step[2], escrow))
            open_ids.add(completion_id)
        elif opened:
            completion_id, bound, max_tokens, escrow = opened[step[1] % len(opened)]
            if completion_id not in open_ids:
                continue
            open_ids.discard(completion_id)
            if step[0] == "abort":
                await cnet.abort(completion_id)
                continue
            prompt, output = int(bound * step[2]), int(max_tokens * step[3])
            await cnet.commit(completion_id, prompt_tokens=prompt, completion_tokens=output)
            charged += prompt * 1 + output * 2
        key = await cnet.get_key()
        held = sum(e for cid, _, _, e in opened if cid in open_ids)
        assert key.spent == charged + held <= cap
        accounts = await get_balances(cnet.net.store)
        consumer = accounts[user_account(CONSUMER.id)]
        assert consumer.balance == CONSUMER_FUNDS - charged
        assert consumer.available == CONSUMER_FUNDS - charged - held
        assert await cnet.money_total() == 0
    for completion_id, _, _, escrow in opened:
        completion: Completion = await cnet.get(completion_id)
        returned = 0 if completion.state == "opened" else escrow - completion.charge
        if completion.state != "opened":
            assert completion.charge + returned == escrow
            assert await cnet.balance(escrow_account(completion.id)) == 0
    assert await cnet.balance(TREASURY_ACCOUNT) >= 0


def _big_model() -> dict[str, Any]:
    """A model of the largest context, priced 1 per 1,000 tokens each way."""
    return {
        "model_id": "big-llama",
        "content_digest": b64(bytes(32)),
        "architecture": "llama",
        "dtype": "float32",
        "context_tokens": 2**20,
        "price_per_1k_input_tokens": 1,
        "price_per_1k_output_tokens": 1,
    }


def _fields(policy: LedgerPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in policy.__struct_fields__}


def test_a_completion_verdict_signs_its_own_message() -> None:
    """Domain-separated from job and attestation verdicts, and bound to id, commitment and
    verdict; a subject id that names no completion stream signs nothing a validator signed."""
    message = compute_completion_verdict_message("completion:cmpl-1", DIGEST, True)
    assert message == completion_verdict_message("cmpl-1", DIGEST, True)
    assert message != verdict_message("cmpl-1", DIGEST, True)
    assert message != verdict_message("completion:cmpl-1", DIGEST, True)
    others = {
        completion_verdict_message("cmpl-1", DIGEST, False),
        completion_verdict_message("cmpl-2", DIGEST, True),
        completion_verdict_message("cmpl-1", bytes(32), True),
        compute_completion_verdict_message("cmpl-1", DIGEST, True),
    }
    assert message not in others and len(others) == 4
    with pytest.raises(ValueError):
        completion_verdict_message("c" * 257, DIGEST, True)

"""Registered language models (issue 18, item 2; rules v5), through the command bus: given a
network, when an operator registers a model, then its record, the refusals by code, and a
history the audit re-executes byte for byte."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.models import RegisteredModel, compute_model_stream_id
from domain.policy import RULES_V4, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64
from proofs.identity import Identity
from tests.forgery import replay
from validator.audit import REEXECUTION
from validator.audit_rules import find_violation

POLICY = LedgerPolicy()
STRANGER = Identity.from_seed(bytes([181]) * 32)
DIGEST = bytes(range(32))


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_id": "smollm2-135m-instruct",
        "content_digest": b64(DIGEST),
        "architecture": "llama",
        "dtype": "float32",
        "context_tokens": 8192,
        "price_per_1k_input_tokens": 3,
        "price_per_1k_output_tokens": 12,
    }
    return {**body, **changes}


async def _code(coro: object) -> str:
    with pytest.raises(Rejection) as refused:
        await coro  # type: ignore[misc]
    return str(refused.value.code)


async def _network(policy: LedgerPolicy = POLICY) -> LocalNetwork:
    return LocalNetwork.create(MemoryEventStore(), policy=policy)


async def _get(net: LocalNetwork, model_id: str) -> RegisteredModel | None:
    return await get_aggregate(net.store, RegisteredModel, compute_model_stream_id(model_id))


async def test_an_operator_registers_a_model_by_its_digest_and_prices() -> None:
    net = await _network()
    await net.run(net.operator, "model.register", _body())
    model = await _get(net, "smollm2-135m-instruct")
    assert model is not None
    assert model.view() == {
        "model_id": "smollm2-135m-instruct",
        "content_digest": DIGEST.hex(),
        "architecture": "llama",
        "dtype": "float32",
        "context_tokens": 8192,
        "price_per_1k_input_tokens": 3,
        "price_per_1k_output_tokens": 12,
        "registered_by": net.operator.id,
        "version": 1,
    }
    # 1,500 input tokens at 3 per 1,000 and 100 output tokens at 12 per 1,000: 4.5 + 1.2 → 6.
    assert model.compute_price(input_tokens=1_500, output_tokens=100) == 6


async def test_a_registered_id_is_never_registered_again() -> None:
    net = await _network()
    await net.run(net.operator, "model.register", _body())
    other_prices = net.run(net.operator, "model.register", _body(price_per_1k_output_tokens=1))
    assert await _code(other_prices) == "model_already_registered"
    model = await _get(net, "smollm2-135m-instruct")
    assert model is not None and model.price_per_1k_output_tokens == 12


async def test_only_an_operator_registers_a_model() -> None:
    net = await _network()
    assert await _code(net.run(STRANGER, "model.register", _body())) == "operator_only"
    assert await _get(net, "smollm2-135m-instruct") is None


async def test_model_register_needs_rules_v5() -> None:
    net = await _network(msgspec.structs.replace(POLICY, rules_version=RULES_V4))
    refused = net.run(net.operator, "model.register", _body())
    assert await _code(refused) == "rules_v5_required"


@pytest.mark.parametrize(
    "changes",
    [
        {"model_id": "SmolLM2"},  # upper case
        {"model_id": "a" * 65},
        {"content_digest": b64(b"\x01" * 31)},
        {"architecture": "gpt2"},
        {"dtype": "int8"},
        {"context_tokens": 0},
        {"context_tokens": (1 << 20) + 1},
        {"price_per_1k_input_tokens": -1},
        {"price_per_1k_output_tokens": (1 << 53) + 1},
        {"extra": 1},
    ],
)
async def test_a_malformed_registration_is_refused_at_the_door(changes: dict[str, Any]) -> None:
    net = await _network()
    refused = net.run(net.operator, "model.register", _body(**changes))
    assert await _code(refused) == "command_body_invalid"


async def test_the_bounds_themselves_are_accepted() -> None:
    net = await _network()
    edge = _body(
        model_id="m" * 64,
        context_tokens=1 << 20,
        price_per_1k_input_tokens=0,
        price_per_1k_output_tokens=1 << 53,
    )
    await net.run(net.operator, "model.register", edge)
    assert await _get(net, "m" * 64) is not None


async def test_the_history_reexecutes_byte_for_byte() -> None:
    net = await _network()
    await net.run(net.operator, "model.register", _body())
    await net.run(net.operator, "model.register", _body(model_id="tiny-llama-0", dtype="bfloat16"))
    records = await net.store.read_all(1, 10_000)
    assert sum(r.event_type == "ModelRegistered" for r in records) == 2
    replayer = replay(records, reexecute=True)
    assert replayer.reexecution is not None and replayer.reexecution.not_reexecuted == 0
    assert replayer.counts[REEXECUTION] == replayer.commands


def test_the_audit_refuses_a_model_record_by_a_non_operator_or_another_kind() -> None:
    data = {"registered_by": STRANGER.id, "model_id": "x"}
    args = ("model", "model:x", "ModelRegistered", data)
    by_stranger = find_violation(
        "model.register", STRANGER.id, *args, operators=frozenset({"op"}), principals=frozenset()
    )
    assert by_stranger == f"model.register is operator-only and {STRANGER.id} is not an operator"
    by_other_kind = find_violation(
        "key.register", STRANGER.id, *args, operators=frozenset(), principals=frozenset()
    )
    assert by_other_kind == "key.register may not append to a model stream"
    assert (
        find_violation(
            "model.register", "op", *args, operators=frozenset({"op"}), principals=frozenset()
        )
        == "ModelRegistered.registered_by is "
        f"{STRANGER.id!r} but the command is signed by op"
    )

"""``validator.declare_models`` (issue 18, rules v5): a validator, with its own key, says which
registered models it checks; the view shows them; its refusals, each by its code; and the
daemon's start-up declaration (``validator.ledger_link.ensure_check_models_declared``)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.wire import ValidatorView
from adapters.store.memory import MemoryEventStore
from domain.commands import DeclareCheckModels
from domain.errors import Rejection, RejectionCode
from domain.policy import RULES_V4, LedgerPolicy
from domain.services.queries import get_aggregate
from domain.validators import CHECK_MODELS_MAX, Validator
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity
from tests.completion_network import (
    MODEL_ID,
    CompletionNet,
    register_model,
    start_completion_network,
)
from validator.ledger_link import ensure_check_models_declared

OTHER_MODEL = "tiny-llama-8"


async def _declare(
    cnet: CompletionNet, signer: Identity, validator_id: str, models: list[str]
) -> None:
    body = {"validator_id": validator_id, "models": models}
    await cnet.net.run(signer, "validator.declare_models", body)


async def _checker() -> tuple[CompletionNet, Identity]:
    cnet = await start_completion_network()
    await register_model(cnet.net, OTHER_MODEL)
    (keys,) = await cnet.add_validators(1, check_models=())
    return cnet, keys.identity


async def _check_models(cnet: CompletionNet, validator_id: str) -> list[str]:
    validator = await get_aggregate(cnet.net.store, Validator, validator_id)
    assert validator is not None
    return list(validator.view()["check_models"])  # type: ignore[call-overload]


async def _refusal(
    cnet: CompletionNet, signer: Identity, validator_id: str, models: list[str]
) -> str:
    with pytest.raises(Rejection) as refused:
        await _declare(cnet, signer, validator_id, models)
    return str(refused.value.code)


async def test_a_validator_declares_its_models_and_withdraws_them() -> None:
    cnet, validator = await _checker()
    assert await _check_models(cnet, validator.id) == []
    await _declare(cnet, validator, validator.id, [OTHER_MODEL, MODEL_ID])
    assert await _check_models(cnet, validator.id) == sorted([MODEL_ID, OTHER_MODEL])
    await _declare(cnet, validator, validator.id, [])
    assert await _check_models(cnet, validator.id) == []


async def test_the_refusals() -> None:
    cnet, validator = await _checker()
    stranger = Identity.from_seed(bytes([77]) * 32)
    assert (
        await _refusal(cnet, stranger, validator.id, [MODEL_ID]) == RejectionCode.NOT_THE_VALIDATOR
    )
    assert (
        await _refusal(cnet, stranger, stranger.id, [MODEL_ID]) == RejectionCode.VALIDATOR_NOT_FOUND
    )
    assert await _refusal(cnet, validator, validator.id, ["nope"]) == RejectionCode.MODEL_NOT_FOUND
    twice = [MODEL_ID, MODEL_ID]
    assert (
        await _refusal(cnet, validator, validator.id, twice) == RejectionCode.MODEL_DECLARED_TWICE
    )
    too_many = [f"m-{i}" for i in range(CHECK_MODELS_MAX + 1)]
    assert (
        await _refusal(cnet, validator, validator.id, too_many)
        == RejectionCode.COMMAND_BODY_INVALID
    )
    unchanged: list[str] = []
    assert (
        await _refusal(cnet, validator, validator.id, unchanged)
        == RejectionCode.VALIDATOR_MODELS_UNCHANGED
    )
    await _declare(cnet, validator, validator.id, [OTHER_MODEL, MODEL_ID])
    same_in_another_order = [MODEL_ID, OTHER_MODEL]
    code = await _refusal(cnet, validator, validator.id, same_in_another_order)
    assert code == RejectionCode.VALIDATOR_MODELS_UNCHANGED
    assert await _check_models(cnet, validator.id) == sorted(same_in_another_order)


async def test_refused_before_rules_v5() -> None:
    net = await LocalNetwork.start(MemoryEventStore(), policy=LedgerPolicy(rules_version=RULES_V4))
    keys = make_validator_keys(100)
    await net.deposit(keys.identity, 2_000)
    await net.register_validator(keys, stake=1_000)
    with pytest.raises(Rejection) as refused:
        body = {"validator_id": keys.identity.id, "models": []}
        await net.run(keys.identity, "validator.declare_models", body)
    assert refused.value.code == RejectionCode.RULES_V5_REQUIRED


class _Client:
    """The API client's two calls the start-up declaration makes."""

    def __init__(self, declared: list[str], refuse: str = "") -> None:
        self.identity = Identity.from_seed(bytes([78]) * 32)
        self.declared, self.refuse = declared, refuse
        self.sent: list[DeclareCheckModels] = []

    def get_validator(self, validator_id: str) -> ValidatorView:
        fields: dict[str, Any] = {"owner": validator_id, "bls_public_key": "", "version": 1}
        return ValidatorView(
            id=validator_id,
            stake=1,
            unbonding=0,
            slashed_total=0,
            check_models=self.declared,
            **fields,
        )

    def send(self, command: DeclareCheckModels) -> None:
        self.sent.append(command)
        if self.refuse:
            raise ApiProblem(409, {"code": self.refuse, "detail": "refused"})


def test_the_daemon_declares_at_start_only_what_the_ledger_lacks() -> None:
    same = _Client([MODEL_ID])
    assert not ensure_check_models_declared(same, [MODEL_ID, MODEL_ID])  # type: ignore[arg-type]
    assert same.sent == []
    changed = _Client([MODEL_ID])
    assert ensure_check_models_declared(changed, [OTHER_MODEL, MODEL_ID])  # type: ignore[arg-type]
    assert [c.models for c in changed.sent] == [sorted([MODEL_ID, OTHER_MODEL])]
    withdrawn = _Client([MODEL_ID])
    assert ensure_check_models_declared(withdrawn, [])  # type: ignore[arg-type]
    assert [c.models for c in withdrawn.sent] == [[]]


def test_an_unchanged_refusal_at_start_is_success_and_any_other_is_raised() -> None:
    raced = _Client([], refuse=RejectionCode.VALIDATOR_MODELS_UNCHANGED)
    assert not ensure_check_models_declared(raced, [MODEL_ID])  # type: ignore[arg-type]
    refused = _Client([], refuse=RejectionCode.MODEL_NOT_FOUND)
    with pytest.raises(ApiProblem):
        ensure_check_models_declared(refused, [MODEL_ID])  # type: ignore[arg-type]

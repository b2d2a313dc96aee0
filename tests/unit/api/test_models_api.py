"""Registered models through the HTTP API and its client (issue 18, item 2): an operator
registers one with ``POST /v1/models``; anyone lists them and reads one under
``/v1/registered-models``; nobody else registers."""

from __future__ import annotations

from typing import Literal

import pytest

from adapters.ledger_api.client import ApiProblem, NotFoundProblem
from domain import commands as c
from tests.unit.api.conftest import ApiEnv, seeded

STRANGER = seeded("models-stranger")
DIGEST = bytes(range(32))


def _register(
    model_id: str, *, dtype: Literal["float32", "bfloat16"] = "float32"
) -> c.RegisterModel:
    return c.RegisterModel(
        model_id=model_id,
        content_digest=DIGEST,
        architecture="llama",
        dtype=dtype,
        context_tokens=8192,
        price_per_1k_input_tokens=3,
        price_per_1k_output_tokens=12,
    )


def test_an_operator_registers_models_and_anyone_lists_and_reads_them(api_env: ApiEnv) -> None:
    operator = api_env.client(api_env.operator)
    operator.send(_register("smollm2-135m-instruct"))
    operator.send(_register("registered", dtype="bfloat16"))
    reader = api_env.client()
    listed = reader.list_registered_models()
    assert [m.model_id for m in listed.items] == ["smollm2-135m-instruct", "registered"]
    assert listed.page.total == 2
    one = reader.get_registered_model("smollm2-135m-instruct")
    assert (one.content_digest, one.architecture, one.dtype, one.context_tokens) == (
        DIGEST.hex(),
        "llama",
        "float32",
        8192,
    )
    assert (one.price_per_1k_input_tokens, one.price_per_1k_output_tokens) == (3, 12)
    assert one.registered_by == api_env.operator.id
    by_dtype = api_env.http.get("/v1/registered-models", params={"dtype": "bfloat16"}).json()
    assert [m["model_id"] for m in by_dtype["items"]] == ["registered"]


def test_only_an_operator_registers_and_an_unknown_model_is_404(api_env: ApiEnv) -> None:
    with pytest.raises(ApiProblem) as refused:
        api_env.client(STRANGER).send(_register("smollm2-135m-instruct"))
    assert refused.value.code == "operator_only"
    reader = api_env.client()
    assert reader.list_registered_models().items == []
    with pytest.raises(NotFoundProblem) as absent:
        reader.get_registered_model("smollm2-135m-instruct")
    assert absent.value.code == "model_not_found"
    assert api_env.http.get("/v1/registered-models/NOT_AN_ID").status_code == 422

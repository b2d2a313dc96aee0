"""The models a validator checks (validator.check_models): loaded only as registered."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch

from adapters.compute import llm_catalog, llm_model
from validator.check_models import (
    CHECK_MODELS_MAX,
    CheckModelRefused,
    Registration,
    load_check_models,
)

TINY = "tiny-llama-3"


def _registered(model_id: str) -> Registration:
    digest = llm_catalog.compute_model_digest(llm_catalog.load_model(model_id))
    return Registration(content_digest=digest, dtype="float32")


def test_a_registered_model_is_loaded_once() -> None:
    registrations = {TINY: _registered(TINY)}
    loaded = load_check_models([TINY, TINY], registrations.get)
    assert list(loaded) == [TINY]
    assert loaded[TINY].model_id == TINY and loaded[TINY].dtype == torch.float32


def test_an_unregistered_model_is_refused() -> None:
    with pytest.raises(CheckModelRefused, match="no such registered model"):
        load_check_models([TINY], {}.get)


def test_other_bytes_than_the_registered_ones_are_refused() -> None:
    other = Registration(content_digest=bytes(32), dtype="float32")
    with pytest.raises(CheckModelRefused, match=TINY):
        load_check_models([TINY], {TINY: other}.get)


def test_a_model_outside_the_catalog_is_refused() -> None:
    with pytest.raises(CheckModelRefused, match="llama-70b"):
        load_check_models(["llama-70b"], {"llama-70b": _registered(TINY)}.get)


@pytest.mark.parametrize("model_id", ["", "../models", "Tiny", "x" * 65])
def test_what_is_no_model_id_is_refused_before_asking_the_ledger(model_id: str) -> None:
    def never(model_id: str) -> Registration:
        raise AssertionError("asked the ledger")

    with pytest.raises(CheckModelRefused, match="is not a model id"):
        load_check_models([model_id], never)


def test_a_model_registered_in_another_dtype_is_refused() -> None:
    registration = Registration(_registered(TINY).content_digest, dtype="bfloat16")
    with pytest.raises(CheckModelRefused, match="registered in bfloat16, loads in float32"):
        load_check_models([TINY], {TINY: registration}.get)


def test_models_at_the_bound_load_and_one_past_it_is_refused() -> None:
    ids = [f"tiny-llama-{seed}" for seed in range(CHECK_MODELS_MAX + 1)]

    def load(model_id: str, digest: bytes) -> llm_model.LoadedModel:
        return llm_model.build_tiny_llama(0)

    def registration(model_id: str) -> Registration:
        return Registration(bytes(32), "float32")

    assert len(load_check_models(ids[:CHECK_MODELS_MAX], registration, load)) == CHECK_MODELS_MAX
    with pytest.raises(CheckModelRefused, match=f"at most {CHECK_MODELS_MAX}"):
        load_check_models(ids, registration, load)

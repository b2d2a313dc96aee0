"""The model catalog: which ids load, and digests that name exactly the bytes loaded."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch

from adapters.compute import llm_catalog, llm_model


def test_catalog_ids() -> None:
    assert llm_catalog.is_catalog_model("smollm2-135m-instruct")
    assert llm_catalog.is_catalog_model("tiny-llama-0")
    assert llm_catalog.is_catalog_model(f"tiny-llama-{llm_catalog.TINY_SEED_MAX}")
    assert not llm_catalog.is_catalog_model(f"tiny-llama-{llm_catalog.TINY_SEED_MAX + 1}")
    assert not llm_catalog.is_catalog_model("tiny-llama-01")  # one id per seed
    assert not llm_catalog.is_catalog_model("tiny-llama-")
    assert not llm_catalog.is_catalog_model("gpt-4")
    with pytest.raises(llm_catalog.UnknownModel):
        llm_catalog.load_model("gpt-4")


def test_a_tiny_model_loads_by_id_with_a_digest_of_its_weights() -> None:
    loaded = llm_catalog.load_model("tiny-llama-3", torch.device("cpu"))
    assert loaded.model_id == "tiny-llama-3" and loaded.model.device.type == "cpu"
    digest = llm_catalog.compute_model_digest(loaded)
    assert len(digest) == 32
    assert llm_catalog.compute_model_digest(llm_catalog.load_model("tiny-llama-3")) == digest
    assert llm_catalog.compute_model_digest(llm_catalog.load_model("tiny-llama-4")) != digest


def test_a_perturbed_weight_or_another_dtype_changes_the_digest() -> None:
    loaded = llm_catalog.load_model("tiny-llama-3")
    digest = llm_catalog.compute_model_digest(loaded)
    lowered = llm_model.build_tiny_llama(3, dtype=torch.bfloat16)
    assert llm_catalog.compute_state_dict_digest(lowered.model) != digest
    with torch.no_grad():
        loaded.model.model.layers[1].mlp.down_proj.weight[0, 0] += 1e-6
    assert llm_catalog.compute_model_digest(loaded) != digest


def test_a_model_loads_only_under_its_registered_digest() -> None:
    digest = llm_catalog.compute_model_digest(llm_catalog.load_model("tiny-llama-5"))
    assert llm_catalog.load_registered_model("tiny-llama-5", digest).model_id == "tiny-llama-5"
    with pytest.raises(llm_catalog.ModelDigestMismatch):
        llm_catalog.load_registered_model("tiny-llama-5", bytes(32))

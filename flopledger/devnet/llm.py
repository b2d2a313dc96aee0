"""The devnet's LLM serving (issue 18, item 5): which model, at what price, who signs.

The operator registers SmolLM2 (``smollm2-135m-instruct``) by the digest of the installed
GGUF before any agent starts (an agent refuses a model that is not registered); each agent
serves it (``--serve-model``, its completion server on a free loopback port); the API signs
completions with the key ``keys/completion-signer.key``, which the genesis names in
``completion_signers`` (no operator power: it can open and abort completions only). The
validators load SmolLM2 too (``--check-model``), and the devnet's policy samples every
completion for their check (``COMPLETION_SAMPLE_RATE_PPM``; the default policy samples 10 %),
so that a devnet shows each completion verified against its TOPLOC proof.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.compute.llm_model import SMOLLM2_MODEL_ID
from adapters.ledger_api.client import ApiClient
from proofs.identity import Identity

LLM_MODEL_ID = SMOLLM2_MODEL_ID
MODEL_PRICE_PER_1K_INPUT_TOKENS = 100
MODEL_PRICE_PER_1K_OUTPUT_TOKENS = 200
"""Base units per 1,000 tokens: an 8192-token completion holds at most about 1,640 in escrow."""
COMPLETION_SIGNER = "completion-signer"
"""The API's key for ``completion.open``/``abort`` (``keys/completion-signer.key``)."""
VALIDATORS_CHECK_MODEL = True
"""Whether the validators load SmolLM2 (``flopledger validator --check-model``); without
it no completion is sampled for a check (``completion_sample_rate_ppm`` 0): drawn
validators holding no model would abstain."""
COMPLETION_SAMPLE_RATE_PPM = 1_000_000
"""Every completion checked: a prefill over prompt and completion per drawn validator, cheap
beside the generation, and the whole loop (proof, draw, verdicts) shown on every run."""
MODELS_WARM_TIMEOUT_S = 60.0


def register_devnet_model(api_url: str, operator: Identity) -> str:
    """Register SmolLM2 signed by ``operator``; the line ``flopledger model register`` prints
    (``RegisterInputError`` when it or the llm extra is not installed)."""
    from flopledger.commands.model import build_register_model, format_registered

    command = build_register_model(
        LLM_MODEL_ID,
        price_in=MODEL_PRICE_PER_1K_INPUT_TOKENS,
        price_out=MODEL_PRICE_PER_1K_OUTPUT_TOKENS,
    )
    client = ApiClient(api_url, identity=operator)
    try:
        accepted = client.send(command)
    finally:
        client.close()
    return format_registered(command, accepted.first_position)


def compute_policy_overrides(
    base: Mapping[str, object], completion_signer_id: str
) -> dict[str, object]:
    """``base`` with the API's completion signer named and the completions' sample rate
    (every one while the validators load the model, none otherwise)."""
    overrides: dict[str, object] = {**base, "completion_signers": [completion_signer_id]}
    rate = COMPLETION_SAMPLE_RATE_PPM if VALIDATORS_CHECK_MODEL else 0
    overrides["completion_sample_rate_ppm"] = rate
    return overrides


def compute_agent_args(listen: str) -> list[str]:
    """An agent's flags: SmolLM2 warm, its completion server on ``listen`` (HOST:PORT)."""
    return ["--serve-model", LLM_MODEL_ID, "--llm-listen", listen]


def compute_validator_args() -> list[str]:
    """A validator's flag: load SmolLM2 to check sampled completions (it stakes first, then
    loads, so its load overlaps the agents')."""
    return ["--check-model", LLM_MODEL_ID] if VALIDATORS_CHECK_MODEL else []


def is_model_warm(node_view: Mapping[str, Any]) -> bool:
    """Whether a node's ledger view shows SmolLM2 warm (its agent advertised it)."""
    return any(m.get("model_id") == LLM_MODEL_ID for m in node_view.get("warm_models") or ())

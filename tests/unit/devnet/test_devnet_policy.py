"""The devnet's genesis policy (issue 18): ``FLOP_POLICY_JSON`` as the devnet passes it to the
API is accepted at start-up and names the API's completion signer; every completion is
sampled for the validators' check while they load the model, none otherwise (a drawn
validator without it would abstain)."""

from __future__ import annotations

import json

from flopledger.devnet import launch, llm
from flopledger.genesis import build_policy
from flopledger.settings import load_settings
from proofs.identity import Identity

OPERATOR = Identity.from_seed(b"devnet-operator".ljust(32, b"\0"))
SIGNER = Identity.from_seed(b"devnet-completion-signer".ljust(32, b"\0"))


def test_the_api_signer_is_named_in_the_genesis() -> None:
    raw = json.dumps(llm.compute_policy_overrides(launch.DEVNET_POLICY_OVERRIDES, SIGNER.id))
    settings = load_settings({"FLOP_OPERATOR_IDS": OPERATOR.id, "FLOP_POLICY_JSON": raw})
    policy = build_policy(settings)
    assert policy.completion_signers == (SIGNER.id,)
    assert policy.operators == (OPERATOR.id,) and SIGNER.id not in policy.operators
    assert policy.insecure_setups_allowed  # the devnet's other overrides still hold
    expected_rate = 1_000_000 if llm.VALIDATORS_CHECK_MODEL else 0  # every one checked, or none
    assert policy.completion_sample_rate_ppm == expected_rate

"""FLOP_POLICY_JSON: LedgerPolicy overrides for ``flopledger serve``, validated at start-up."""

from __future__ import annotations

import asyncio
import json

import pytest

from adapters.store.memory import MemoryEventStore
from domain.policy import LedgerPolicy
from domain.services.ledger_service import LedgerService
from domain.services.network_rules import load_network_rules
from flopledger.genesis import build_policy, ensure_genesis
from flopledger.network import GENESIS_NS
from flopledger.settings import POLICY_JSON_BYTES_MAX, SettingsError, load_settings
from proofs.identity import Identity

OPERATOR = Identity.from_seed(b"o" * 32)


def test_unset_gives_the_default_policy() -> None:
    settings = load_settings({"FLOP_OPERATOR_IDS": OPERATOR.id})
    policy = build_policy(settings)
    assert policy == LedgerPolicy(operators=(OPERATOR.id,), network_id=policy.network_id)


def test_the_network_id_is_the_settings_or_one_per_log_key() -> None:
    """Issue 16, item 9: FLOP_NETWORK_ID names the network; unset, two log keys never share
    one, and one key always gets the same."""
    named = load_settings({"FLOP_OPERATOR_IDS": OPERATOR.id, "FLOP_NETWORK_ID": "devnet-7"})
    assert build_policy(named).network_id == "devnet-7"
    other = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
    unset = load_settings({})
    ids = {build_policy(unset, signer_id=key).network_id for key in (OPERATOR.id, other)}
    assert len(ids) == 2 and "" not in ids
    assert build_policy(unset, signer_id=other).network_id in ids


def test_a_malformed_network_id_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="FLOP_NETWORK_ID"):
        load_settings({"FLOP_NETWORK_ID": "Not A Network"})


def test_overrides_replace_only_the_named_fields() -> None:
    settings = load_settings(
        {
            "FLOP_OPERATOR_IDS": OPERATOR.id,
            "FLOP_POLICY_JSON": '{"verdict_commit_window_ns": 2000000000, "quorum_by_stake": true}',
        }
    )
    policy = build_policy(settings)
    assert policy.verdict_commit_window_ns == 2_000_000_000 and policy.quorum_by_stake
    assert policy.operators == (OPERATOR.id,)
    assert policy.verdict_reveal_window_ns == LedgerPolicy().verdict_reveal_window_ns


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"no_such_field": 1}', "unknown LedgerPolicy fields"),
        ('{"operators": ["x"]}', "FLOP_POLICY_JSON"),
        ('{"quorum_by_stake": 1}', "Expected `bool`"),
        ('{"slash_bps": true}', "Expected `int`"),
        ('{"slash_bps": -1}', "must be 0"),
        ('{"slash_bps": 9223372036854775808}', "must be 0"),
        ('{"quorum_denominator": 0}', "quorum_denominator must be positive"),
        ("[1]", "Expected `object`"),
        ("{", "FLOP_POLICY_JSON"),
    ],
)
def test_bad_overrides_stop_start_up(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"FLOP_POLICY_JSON": raw})


def test_completion_signers_are_a_json_list_of_keys() -> None:
    """Issue 18: the devnet names its API's completion signer in the genesis; a tuple field
    travels as a JSON list, and only keys may be in it."""
    signer = Identity.from_seed(b"s" * 32).id
    raw = json.dumps({"completion_signers": [signer], "completion_sample_rate_ppm": 0})
    settings = load_settings({"FLOP_OPERATOR_IDS": OPERATOR.id, "FLOP_POLICY_JSON": raw})
    policy = build_policy(settings)
    assert policy.completion_signers == (signer,)
    assert policy.completion_sample_rate_ppm == 0
    assert policy.operators == (OPERATOR.id,)
    # the genesis record carries it: the store's rules name the signer
    store = MemoryEventStore()
    asyncio.run(ensure_genesis(LedgerService(store), OPERATOR, policy, now_ns=GENESIS_NS))
    recorded = asyncio.run(load_network_rules(store)).current
    assert recorded.completion_signers == (signer,)
    assert recorded.completion_sample_rate_ppm == 0


@pytest.mark.parametrize(
    "raw",
    [
        '{"completion_signers": ["not-a-key"]}',
        '{"completion_signers": [1]}',
        json.dumps({"completion_signers": OPERATOR.id}),
        json.dumps({"slash_bps": [OPERATOR.id]}),
    ],
)
def test_a_key_list_holding_something_else_stops_start_up(raw: str) -> None:
    with pytest.raises(SettingsError, match="FLOP_POLICY_JSON"):
        load_settings({"FLOP_POLICY_JSON": raw})


def test_largest_number_is_accepted() -> None:
    settings = load_settings({"FLOP_POLICY_JSON": '{"jail_period_ns": 9223372036854775807}'})
    assert build_policy(settings).jail_period_ns == 2**63 - 1


def test_length_at_the_bound_and_one_past() -> None:
    at_bound = '{"slash_bps":' + " " * (POLICY_JSON_BYTES_MAX - 17) + "500}"
    assert len(at_bound) == POLICY_JSON_BYTES_MAX
    assert load_settings({"FLOP_POLICY_JSON": at_bound}).policy_overrides == {"slash_bps": 500}
    with pytest.raises(SettingsError, match="longer than"):
        load_settings({"FLOP_POLICY_JSON": at_bound + " "})


def test_the_genesis_names_the_log_key_and_the_deposit_authority_apart() -> None:
    """Issue 16, item 5: without FLOP_OPERATOR_IDS the two keys are the operators, each named
    for its power; one key for both is refused before anything is written."""
    authority = Identity.from_seed(b"a" * 32).id
    policy = build_policy(load_settings({}), signer_id=OPERATOR.id, deposit_authority_id=authority)
    assert policy.operators == (OPERATOR.id, authority)
    assert (policy.log_key, policy.deposit_authority) == (OPERATOR.id, authority)
    with pytest.raises(SettingsError, match="deposit authority is the log key"):
        build_policy(load_settings({}), signer_id=OPERATOR.id, deposit_authority_id=OPERATOR.id)


def test_deposit_authority_settings() -> None:
    authority = Identity.from_seed(b"a" * 32).id
    settings = load_settings(
        {"FLOP_DEPOSIT_AUTHORITY_ID": authority, "FLOP_DEPOSIT_AUTHORITY_KEY_FILE": "/k/d.hex"}
    )
    assert settings.deposit_authority_id == authority
    assert str(settings.deposit_authority_key_file) == "/k/d.hex"
    with pytest.raises(SettingsError, match="FLOP_DEPOSIT_AUTHORITY_ID"):
        load_settings({"FLOP_DEPOSIT_AUTHORITY_ID": "not-a-key"})

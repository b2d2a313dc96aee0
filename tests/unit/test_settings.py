"""The one settings object: every FLOP_* setting of the processes read in one place, checked
at start-up, built once per process."""

from __future__ import annotations

import pytest

from flopledger.settings import (
    DEFAULT_API_URL,
    NATS_REPLICAS_MAX,
    SettingsError,
    get_settings,
    load_settings,
)
from operations.sealer import SEAL_EVERY_RECORDS, SEAL_EVERY_S


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.api_url == DEFAULT_API_URL and settings.solana_rpc is None
    assert settings.seal_enabled
    assert (settings.seal_every_records, settings.seal_interval_s) == (
        SEAL_EVERY_RECORDS,
        SEAL_EVERY_S,
    )
    assert settings.operator_ids == () and settings.policy_overrides == {}


def test_every_client_and_chain_setting_is_read_here() -> None:
    settings = load_settings(
        {
            "FLOP_API_URL": "http://api.example:9000",
            "FLOP_SOLANA_RPC": "http://rpc.example:8899",
            "FLOP_SEAL": "off",
        }
    )
    assert settings.api_url == "http://api.example:9000"
    assert settings.solana_rpc == "http://rpc.example:8899"
    assert not settings.seal_enabled


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("FLOP_SEAL", "maybe"),
        ("FLOP_SEAL_INTERVAL_S", "often"),
        ("FLOP_API_PORT", "65536"),
        ("FLOP_LOG_LEVEL", "chatty"),
        ("FLOP_DATABASE_URL", "mysql://x"),
        ("FLOP_NATS_REPLICAS", "0"),
        ("FLOP_NATS_REPLICAS", str(NATS_REPLICAS_MAX + 1)),
    ],
)
def test_a_bad_value_names_its_variable(name: str, bad: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: bad})


def test_stream_replicas_are_one_unless_a_cluster_asks_for_more() -> None:
    assert load_settings({}).nats_replicas == 1
    assert load_settings({"FLOP_NATS_REPLICAS": "3"}).nats_replicas == 3
    top = load_settings({"FLOP_NATS_REPLICAS": str(NATS_REPLICAS_MAX)})
    assert top.nats_replicas == NATS_REPLICAS_MAX


def test_built_once_per_process() -> None:
    assert get_settings() is get_settings()

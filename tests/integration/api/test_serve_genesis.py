"""``flopledger serve`` seeds the genesis of a new store from FLOP_OPERATOR_IDS and
FLOP_POLICY_JSON; on a store that has one, the log's rules are in force (a log line says the
settings differ), and the API, the sealer and the gateway all apply the log's rules."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from adapters.keyfile import (
    get_deposit_authority_key_path,
    get_log_key_path,
    load_identity,
    load_or_create_identity,
)
from adapters.store.factory import open_event_store
from api.bootstrap import build_deps
from domain.errors import Rejection
from flopledger.commands.serve import prepare_store
from flopledger.settings import Settings, SettingsError
from operations.sealer import Sealer
from proofs.identity import Identity

OPERATOR = Identity.from_seed(b"serve-operator".ljust(32, b"\0"))
OTHER = Identity.from_seed(b"serve-other".ljust(32, b"\0"))


def get_log_identity(settings: Settings) -> Identity:
    return load_or_create_identity(get_log_key_path(settings.data_dir, settings.log_key_file))


def _settings(tmp_path: Path, policy: dict[str, int | bool], *operators: str) -> Settings:
    key = tmp_path / "log_key.hex"
    key.write_text(OPERATOR.seed().hex() + "\n")
    return Settings(
        data_dir=tmp_path,
        log_key_file=key,
        operator_ids=operators or (OPERATOR.id,),
        policy_overrides=policy,
    )


async def test_a_new_store_gets_its_genesis_from_the_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"slash_bps": 700}, OPERATOR.id, OTHER.id)
    settings = msgspec.structs.replace(settings, deposit_authority_id=OTHER.id)
    with capture_logs() as logs:
        await prepare_store(settings)
    assert [entry["event"] for entry in logs] == ["genesis_recorded"]
    store = await open_event_store(settings.event_store_url)
    try:
        policy = await build_deps(store, settings).service.get_policy()
        assert policy.slash_bps == 700 and policy.operators == (OPERATOR.id, OTHER.id)
        assert (policy.log_key, policy.deposit_authority) == (OPERATOR.id, OTHER.id)
        assert (await store.head()).position == 1
    finally:
        await store.close()


async def test_an_existing_genesis_beats_other_settings_and_says_so(tmp_path: Path) -> None:
    await prepare_store(_settings(tmp_path, {"slash_bps": 700}))
    later = _settings(tmp_path, {"slash_bps": 900}, OPERATOR.id, OTHER.id)
    with capture_logs() as logs:
        await prepare_store(later)
    assert [entry["event"] for entry in logs] == ["genesis_rules_in_force"]
    assert logs[0]["operators"] == [OPERATOR.id]
    store = await open_event_store(later.event_store_url)
    try:
        service = build_deps(store, later).service
        policy = await service.get_policy()
        assert policy.slash_bps == 700 and policy.operators == (OPERATOR.id,)
        assert (await store.head()).position == 1  # nothing was written the second time
        # OTHER is an operator in FLOP_OPERATOR_IDS only: the sealer signing as it is refused.
        sealer = Sealer(store, OTHER, clock_ns=lambda: 1_800_000_000 * 10**9)
        with pytest.raises(Rejection) as refused:
            await sealer.seal_once(force=True)
        assert refused.value.code == "operator_only"
    finally:
        await store.close()


async def test_a_log_key_outside_the_operators_cannot_seed(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {}, OTHER.id)
    assert get_log_identity(settings).id == OPERATOR.id
    with pytest.raises(SettingsError, match="cannot sign the genesis"):
        await prepare_store(settings)


async def test_without_operator_ids_two_keys_apart_are_the_operators(tmp_path: Path) -> None:
    # Issue 16, item 5: the log key and the deposit authority (its key file created under
    # the data directory, mode 0600) are the operators, and the genesis names each.
    settings = Settings(data_dir=tmp_path)
    await prepare_store(settings)
    authority_file = get_deposit_authority_key_path(tmp_path, None)
    assert authority_file.stat().st_mode & 0o777 == 0o600
    log_key, authority = get_log_identity(settings).id, load_identity(authority_file).id
    store = await open_event_store(settings.event_store_url)
    try:
        policy = await build_deps(store, settings).service.get_policy()
        assert policy.operators == (log_key, authority) and log_key != authority
        assert (policy.log_key, policy.deposit_authority) == (log_key, authority)
    finally:
        await store.close()


async def test_operators_without_the_deposit_authority_leave_it_unnamed_and_say_so(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, {})
    with capture_logs() as logs:
        await prepare_store(settings)
    assert [entry["event"] for entry in logs] == ["genesis_recorded", "deposit_authority_unnamed"]
    assert not get_deposit_authority_key_path(tmp_path, None).exists()


async def test_a_named_deposit_authority_outside_the_operators_cannot_seed(
    tmp_path: Path,
) -> None:
    settings = msgspec.structs.replace(_settings(tmp_path, {}), deposit_authority_id=OTHER.id)
    with pytest.raises(SettingsError, match="not in FLOP_OPERATOR_IDS"):
        await prepare_store(settings)


async def test_the_log_key_cannot_be_the_deposit_authority(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {})
    settings = msgspec.structs.replace(settings, deposit_authority_key_file=settings.log_key_file)
    with pytest.raises(SettingsError, match="deposit authority is the log key"):
        await prepare_store(settings)

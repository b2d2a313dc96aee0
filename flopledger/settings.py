"""One settings object for every entry point, read from ``FLOP_*`` environment variables.

Built and validated once per process (``get_settings``; ``flopledger``'s entry point builds it
before it runs a subcommand): a bad value stops the process with one line naming the
variable. ``load_settings(environ)`` builds one from a mapping (tests). What the variables
mean: README, "Configuration". ``FLOP_OPERATOR_IDS`` and ``FLOP_POLICY_JSON`` are kept as
settings here, whatever reads them.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

from api.limit_bounds import (
    ACTOR_COMMANDS_BURST,
    ACTOR_COMMANDS_PER_S,
    SSE_STREAMS_MAX,
    SSE_STREAMS_PER_CLIENT_MAX,
)
from domain.policy import NETWORK_ID_CHARS_MAX, NETWORK_ID_PATTERN, LedgerPolicy
from operations.sealer import SEAL_EVERY_RECORDS, SEAL_EVERY_S
from proofs.identity import is_actor_id

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "flopledger"
POLICY_ENV = "FLOP_POLICY_JSON"
POLICY_JSON_BYTES_MAX = 4_096
POLICY_INT_MAX = 2**63 - 1
_POLICY_FIELDS = frozenset(LedgerPolicy.__struct_fields__) - {"operators"}
_POLICY_KEY_LIST_FIELDS = frozenset({"completion_signers"})
"""Policy fields that hold actor ids (a JSON list of base58 Ed25519 keys)."""
PolicyOverrides = dict[str, int | bool | list[str]]
"""``FLOP_POLICY_JSON``'s fields: numbers, flags, or (a tuple field) a list of strings."""
DEFAULT_API_URL = "http://127.0.0.1:8080"
SEAL_EVERY_RECORDS_MAX = 10_000_000
NATS_REPLICAS_MAX = 5
"""JetStream's limit on a stream's replicas."""
API_LIMIT_MAX = 1_000_000
SEAL_INTERVAL_S_MIN = 0.05
SEAL_INTERVAL_S_MAX = 86_400.0
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


class SettingsError(ValueError):
    """A FLOP_* variable has a value we cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Runtime configuration (README, "Configuration")."""

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    nats_url: str | None = None
    nats_replicas: int = 1
    """``FLOP_NATS_REPLICAS``: replicas of the streams a process creates (FLOP_EVENTS by the
    relay, FLOP_OBJECTS by the API, the relay's lock bucket): 3 on a three-node cluster."""
    log_level: str = "info"
    operator_ids: tuple[str, ...] = ()
    log_key_file: Path | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_workers: int = 1
    api_url: str = DEFAULT_API_URL
    """The API that agents, validators and the ``job``/``node`` commands talk to."""
    api_sse_streams_max: int = SSE_STREAMS_MAX
    """Event streams one API process keeps open (``FLOP_API_SSE_STREAMS_MAX``; issue 16)."""
    api_sse_streams_per_client_max: int = SSE_STREAMS_PER_CLIENT_MAX
    """Event streams one client address keeps open (``FLOP_API_SSE_STREAMS_PER_CLIENT_MAX``)."""
    api_actor_commands_per_s: float = ACTOR_COMMANDS_PER_S
    """Sustained signed commands a second per actor (``FLOP_API_ACTOR_COMMANDS_PER_S``)."""
    api_actor_commands_burst: int = ACTOR_COMMANDS_BURST
    """Commands an idle actor may send at once (``FLOP_API_ACTOR_COMMANDS_BURST``)."""
    solana_rpc: str | None = None
    """Solana JSON-RPC for the bridge and the audit's anchor checks; None: LiteSVM."""
    seal_enabled: bool = True
    """``flopledger serve`` runs the sealer (``FLOP_SEAL``)."""
    seal_every_records: int = SEAL_EVERY_RECORDS
    seal_interval_s: float = SEAL_EVERY_S
    policy_overrides: PolicyOverrides = msgspec.field(default_factory=dict)
    """``LedgerPolicy`` fields that differ from the defaults (FLOP_POLICY_JSON)."""
    network_id: str = ""
    """``FLOP_NETWORK_ID``: the network a new genesis names (issue 16, item 9); empty:
    derived from the log key (``flopledger.genesis.compute_default_network_id``)."""
    deposit_authority_key_file: Path | None = None
    """``FLOP_DEPOSIT_AUTHORITY_KEY_FILE`` (issue 16, item 5): the key the gateway credits
    deposits with; unset: ``<data dir>/deposit_authority_key.hex``."""
    deposit_authority_id: str = ""
    """``FLOP_DEPOSIT_AUTHORITY_ID``: the deposit authority a new genesis names, when the
    process writing it does not hold that key (``flopledger.genesis.get_deposit_authority_id``)."""
    completion_key_file: Path | None = None
    """``FLOP_COMPLETION_KEY_FILE`` (``serve --completion-key``; issue 18): the key the API
    signs ``completion.open``/``completion.abort`` with (a completion signer of the policy);
    unset: the OpenAI-compatible completion routes answer 503."""

    @property
    def event_store_url(self) -> str:
        """The store to open: FLOP_DATABASE_URL, else SQLite under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'events.sqlite3'}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (``FLOP_DATA_DIR``, ``FLOP_DATABASE_URL``, ...)."""
    env = os.environ if environ is None else environ
    database_url = env.get("FLOP_DATABASE_URL") or None
    if database_url and not database_url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise SettingsError(
            f"FLOP_DATABASE_URL={database_url!r}: use postgresql://user@host/db or sqlite:///path"
        )
    level = env.get("FLOP_LOG_LEVEL", "info").lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise SettingsError(f"FLOP_LOG_LEVEL={level!r}: use debug, info, warning or error")
    operator_ids = tuple(
        part.strip() for part in env.get("FLOP_OPERATOR_IDS", "").split(",") if part.strip()
    )
    log_key_file = env.get("FLOP_LOG_KEY_FILE") or None
    deposit_key_file = env.get("FLOP_DEPOSIT_AUTHORITY_KEY_FILE") or None
    completion_key_file = env.get("FLOP_COMPLETION_KEY_FILE") or None
    api_port = _get_int(env, "FLOP_API_PORT", 8080, 0, 65535)
    api_workers = _get_int(env, "FLOP_API_WORKERS", 1, 1, 64)
    seal_flag = env.get("FLOP_SEAL", "1").strip().lower()
    if seal_flag not in _BOOLEANS:
        raise SettingsError(f"FLOP_SEAL={seal_flag!r}: use 1 or 0")
    return Settings(
        data_dir=Path(env.get("FLOP_DATA_DIR") or DEFAULT_DATA_DIR).expanduser(),
        database_url=database_url,
        nats_url=env.get("FLOP_NATS_URL") or None,
        nats_replicas=_get_int(env, "FLOP_NATS_REPLICAS", 1, 1, NATS_REPLICAS_MAX),
        log_level=level,
        operator_ids=operator_ids,
        log_key_file=Path(log_key_file).expanduser() if log_key_file else None,
        api_host=env.get("FLOP_API_HOST") or "127.0.0.1",
        api_port=api_port,
        api_workers=api_workers,
        api_url=env.get("FLOP_API_URL") or DEFAULT_API_URL,
        api_sse_streams_max=_get_int(
            env, "FLOP_API_SSE_STREAMS_MAX", SSE_STREAMS_MAX, 1, API_LIMIT_MAX
        ),
        api_sse_streams_per_client_max=_get_int(
            env, "FLOP_API_SSE_STREAMS_PER_CLIENT_MAX", SSE_STREAMS_PER_CLIENT_MAX, 1, API_LIMIT_MAX
        ),
        api_actor_commands_per_s=_get_float(
            env, "FLOP_API_ACTOR_COMMANDS_PER_S", ACTOR_COMMANDS_PER_S, 0.001, API_LIMIT_MAX
        ),
        api_actor_commands_burst=_get_int(
            env, "FLOP_API_ACTOR_COMMANDS_BURST", ACTOR_COMMANDS_BURST, 1, API_LIMIT_MAX
        ),
        solana_rpc=env.get("FLOP_SOLANA_RPC") or None,
        seal_enabled=_BOOLEANS[seal_flag],
        seal_every_records=_get_int(
            env, "FLOP_SEAL_EVERY_RECORDS", SEAL_EVERY_RECORDS, 1, SEAL_EVERY_RECORDS_MAX
        ),
        seal_interval_s=_get_float(
            env, "FLOP_SEAL_INTERVAL_S", SEAL_EVERY_S, SEAL_INTERVAL_S_MIN, SEAL_INTERVAL_S_MAX
        ),
        policy_overrides=get_policy_overrides(env),
        network_id=_get_network_id(env),
        deposit_authority_key_file=(
            Path(deposit_key_file).expanduser() if deposit_key_file else None
        ),
        deposit_authority_id=_get_actor_id(env, "FLOP_DEPOSIT_AUTHORITY_ID"),
        completion_key_file=(
            Path(completion_key_file).expanduser() if completion_key_file else None
        ),
    )


def _get_actor_id(env: Mapping[str, str], name: str) -> str:
    value = (env.get(name) or "").strip()
    if value and not is_actor_id(value):
        raise SettingsError(f"{name}={value!r}: expected a base58 Ed25519 key (an actor id)")
    return value


def _get_network_id(env: Mapping[str, str]) -> str:
    value = (env.get("FLOP_NETWORK_ID") or "").strip()
    if value and (len(value) > NETWORK_ID_CHARS_MAX or not re.match(NETWORK_ID_PATTERN, value)):
        raise SettingsError(
            f"FLOP_NETWORK_ID={value!r}: use 1..{NETWORK_ID_CHARS_MAX} lower-case letters, "
            "digits, dots and dashes (e.g. mainnet, devnet-7)"
        )
    return value


@functools.cache
def get_settings() -> Settings:
    """This process's settings, built from the environment on the first call (which raises
    SettingsError on a bad value) and the same object afterwards."""
    return load_settings()


def get_policy_overrides(env: Mapping[str, str]) -> PolicyOverrides:
    """``FLOP_POLICY_JSON``: a JSON object of ``LedgerPolicy`` fields (not ``operators``,
    which FLOP_OPERATOR_IDS sets), e.g. ``{"verdict_commit_window_ns": 2000000000}``; a
    tuple field as a JSON list (``{"completion_signers": ["<base58 key>"]}``). Unknown
    fields, wrong types, numbers outside 0..2**63-1, a key list holding something else than
    keys and a zero quorum denominator are refused."""
    raw = env.get(POLICY_ENV) or ""
    if not raw:
        return {}
    if len(raw) > POLICY_JSON_BYTES_MAX:
        raise SettingsError(f"{POLICY_ENV}: longer than {POLICY_JSON_BYTES_MAX} characters")
    try:
        overrides = msgspec.json.decode(raw, type=PolicyOverrides)
        msgspec.convert(overrides, LedgerPolicy)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SettingsError(f"{POLICY_ENV}: {exc}") from None
    unknown = sorted(set(overrides) - _POLICY_FIELDS)
    if unknown:
        raise SettingsError(f"{POLICY_ENV}: unknown LedgerPolicy fields {unknown}")
    not_keys = sorted(
        name
        for name, value in overrides.items()
        if name in _POLICY_KEY_LIST_FIELDS
        and not (isinstance(value, list) and all(is_actor_id(key) for key in value))
    )
    if not_keys:
        raise SettingsError(f"{POLICY_ENV}: {not_keys} must list base58 Ed25519 keys")
    numbers = {k: v for k, v in overrides.items() if isinstance(v, int) and not isinstance(v, bool)}
    out_of_range = sorted(k for k, v in numbers.items() if not 0 <= v <= POLICY_INT_MAX)
    if out_of_range:
        raise SettingsError(f"{POLICY_ENV}: {out_of_range} must be 0..{POLICY_INT_MAX}")
    if overrides.get("quorum_denominator", 1) == 0:
        raise SettingsError(f"{POLICY_ENV}: quorum_denominator must be positive")
    return overrides


def _get_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value}: expected {low}..{high}")
    return value


def _get_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value}: expected {low}..{high}")
    return value

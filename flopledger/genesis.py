"""Seeding a store's genesis from the settings: what ``serve`` and ``flopledger db genesis`` do.

``FLOP_OPERATOR_IDS`` (default: the log key alone) and ``FLOP_POLICY_JSON`` are read only
here, to write the genesis of a store that has none; from then on every process reads the
operators and policy from the log (``domain.network``). The genesis is signed by the log key,
which must be one of the operators it names.

Issue 16, item 5: the genesis names two operator keys apart (``LedgerPolicy.log_key``, the
signer, which alone seals tree heads; ``LedgerPolicy.deposit_authority``, which alone credits
deposits: the gateway's key). The deposit authority is ``FLOP_DEPOSIT_AUTHORITY_ID``, else the
key in ``FLOP_DEPOSIT_AUTHORITY_KEY_FILE`` (``<data dir>/deposit_authority_key.hex``), created
when no operators are configured (one host holds both: the devnet, a local run). Without
``FLOP_OPERATOR_IDS`` the operators are these two keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec

from adapters.keyfile import get_deposit_authority_key_path, load_or_create_identity
from domain.errors import Rejection
from domain.network import NetworkRules
from domain.policy import LedgerPolicy
from domain.services.ledger_service import LedgerService
from flopledger.network import encode_genesis_body
from flopledger.settings import PolicyOverrides, Settings, SettingsError
from proofs.envelope import sign_command
from proofs.identity import Identity, is_actor_id

GENESIS_KIND = "network.genesis"
DEFAULT_NETWORK_ID_HEX = 16


class GenesisRefused(Exception):
    """The store cannot get a genesis from these settings (a one-line reason)."""


@dataclass(frozen=True)
class GenesisOutcome:
    """The rules in force after seeding, and whether this call wrote the genesis."""

    rules: NetworkRules
    created: bool
    seed: LedgerPolicy

    @property
    def seed_differs(self) -> bool:
        """Whether the settings' policy or operators differ from the log's (the log's rule)."""
        return self.rules.current != self.seed


def build_policy(
    settings: Settings,
    *,
    signer_id: str | None = None,
    deposit_authority_id: str | None = None,
    name_log_key: bool = True,
) -> LedgerPolicy:
    """The seed policy: defaults, FLOP_POLICY_JSON's overrides and the operators of
    FLOP_OPERATOR_IDS (when unset: ``signer_id``, the log key that signs the genesis, and
    ``deposit_authority_id``). The signer is named the log key (unless not ``name_log_key``:
    a late genesis declares the rules of records no named key governed) and
    ``deposit_authority_id`` the deposit authority (issue 16, item 5); SettingsError when
    they are one key, or when an explicitly configured deposit authority is not among the
    operators."""
    for operator in settings.operator_ids:
        if not is_actor_id(operator):
            raise SettingsError(f"FLOP_OPERATOR_IDS: {operator!r} is not a base58 Ed25519 key")
    if signer_id and deposit_authority_id == signer_id:
        raise SettingsError(
            "the deposit authority is the log key: give FLOP_DEPOSIT_AUTHORITY_KEY_FILE another "
            "key than FLOP_LOG_KEY_FILE (the key that seals the log must not also mint)"
        )
    default_operators = tuple(key for key in (signer_id, deposit_authority_id) if key)
    operators = settings.operator_ids or default_operators
    fields: dict[str, object] = {**settings.policy_overrides, "operators": list(operators)}
    log_key = signer_id or (operators[0] if operators else "")
    fields["network_id"] = settings.network_id or compute_default_network_id(log_key)
    if signer_id and name_log_key:
        fields["log_key"] = signer_id
    if deposit_authority_id and deposit_authority_id in operators:
        fields["deposit_authority"] = deposit_authority_id
    elif deposit_authority_id and is_deposit_authority_configured(settings):
        raise SettingsError(
            f"the deposit authority {deposit_authority_id} is not in FLOP_OPERATOR_IDS: add it "
            "(it credits deposits as an operator)"
        )
    return msgspec.convert(fields, LedgerPolicy)


def get_deposit_authority_id(settings: Settings) -> str | None:
    """The deposit authority a new genesis names (issue 16, item 5): FLOP_DEPOSIT_AUTHORITY_ID,
    else the key in its key file (created when no operators are configured, as on a devnet
    that holds every key); None when there is none to name."""
    if settings.deposit_authority_id:
        return settings.deposit_authority_id
    path = get_deposit_authority_key_path(settings.data_dir, settings.deposit_authority_key_file)
    if path.exists() or not settings.operator_ids:
        return load_or_create_identity(path).id
    return None


def is_deposit_authority_configured(settings: Settings) -> bool:
    """Whether the deployment named its deposit authority explicitly (an id or a key file)."""
    return bool(settings.deposit_authority_id or settings.deposit_authority_key_file)


def compute_default_network_id(log_key: str) -> str:
    """A network id of the deployment whose log key is ``log_key`` (issue 16, item 9), when
    FLOP_NETWORK_ID names none: two deployments with different keys never share one."""
    if not log_key:
        return ""
    return f"flop-{hashlib.sha256(log_key.encode()).hexdigest()[:DEFAULT_NETWORK_ID_HEX]}"


async def ensure_genesis(
    service: LedgerService,
    signer: Identity,
    seed: LedgerPolicy,
    *,
    now_ns: int,
    prior_records_allowed: bool = False,
) -> GenesisOutcome:
    """The store's rules; when it has no genesis, write one from ``seed`` signed by
    ``signer``. A store that already holds records gets one only with
    ``prior_records_allowed`` (it then declares the rules that governed those records)."""
    rules = await service.get_rules()
    if rules.has_genesis:
        return GenesisOutcome(rules=rules, created=False, seed=seed)
    head = await service.store.head()
    if head.position and not prior_records_allowed:
        raise GenesisRefused(
            f"the store holds {head.position} records and no genesis: declare the rules that "
            "governed them with `flopledger db genesis`"
        )
    if signer.id not in seed.operators:
        raise GenesisRefused(
            f"the log key {signer.id} is not in FLOP_OPERATOR_IDS: it cannot sign the genesis"
        )
    envelope = sign_command(
        signer,
        GENESIS_KIND,
        encode_genesis_body(seed, prior_records=head.position),
        nonce=f"genesis-{head.position}-{now_ns}",
        issued_at_ns=now_ns,
        network=seed.network_id,
    )
    try:
        await service.execute(envelope, now_ns=now_ns)
    except Rejection as exc:
        rules = await service.get_rules()
        if rules.has_genesis:  # another process wrote it first
            return GenesisOutcome(rules=rules, created=False, seed=seed)
        raise GenesisRefused(f"{exc.code}: {exc.message}") from exc
    return GenesisOutcome(rules=await service.get_rules(), created=True, seed=seed)


async def change_rules(
    service: LedgerService,
    signer: Identity,
    *,
    overrides: PolicyOverrides | None = None,
    operators: tuple[str, ...] | None = None,
    now_ns: int,
) -> int:
    """Record a policy change (``overrides`` applied to the policy in force) or an operator
    change, signed by ``signer`` (an operator in force); the position of its record."""
    if (overrides is None) == (operators is None):
        raise ValueError("change either the policy or the operators")
    if operators is not None:
        kind, body = "network.change_operators", {"operators": list(operators)}
    else:
        current = await service.get_policy()
        changed = msgspec.convert(
            {**msgspec.structs.asdict(current), **(overrides or {})}, LedgerPolicy
        )
        kind, body = "network.change_policy", {"policy": encode_genesis_body(changed)["policy"]}
    network = await service.get_network_id()
    envelope = sign_command(
        signer, kind, body, nonce=f"rules-{now_ns}", issued_at_ns=now_ns, network=network
    )
    return (await service.execute(envelope, now_ns=now_ns)).first_position

"""Who may cause which event: the audit's authorization rules, independent of the handlers.

The handlers enforce these rules when a command runs; the audit re-checks them on the stored
history, so that an event inserted or edited after the fact (with a re-computed hash chain)
is still caught. The rules are deliberately coarse where the handlers change often (which
stream types a command kind may touch) and exact where money or verdicts are concerned:

- a debit of ``user:X`` (``Debited`` or a debit-side ``HoldPlaced``) is signed by X;
- money leaves the boundary account only through ``account.deposit`` by an operator (or
  ``withdrawal.void``, an operator's refund of a payout the chain refused), and enters it
  only through ``account.withdraw``;
- a verdict is recorded by the validator named in it, who is assigned to the job;
- jobs are submitted by their consumer, claimed and answered by their node;
- nodes and validators are registered by their own key, managed by their owner;
- operator-only kinds are signed by an operator in force at their position (the store's
  network records, ``domain.network``: never a setting);
- the network's rules change only through their own kinds, in their own stream.
"""

from __future__ import annotations

import functools
from typing import Any

from domain.api_keys import API_KEY_STREAM_TYPE, ApiKey, compute_charge_refusal
from domain.beacon import BEACON_STREAM_ID, BEACON_STREAM_TYPE
from domain.chain_credits import CHAIN_CREDIT_STREAM_TYPE
from domain.commands import OpenCompletion
from domain.completions import COMPLETION_STREAM_TYPE
from domain.encryption_keys import ENCRYPTION_KEY_STREAM_TYPE
from domain.ledger import BOUNDARY_ACCOUNT
from domain.log import LOG_STREAM_ID
from domain.models import MODEL_STREAM_TYPE, RegisteredModel
from domain.network import NETWORK_STREAM_ID, NETWORK_STREAM_TYPE
from domain.objects import OBJECT_STREAM_TYPE
from domain.policy import LedgerPolicy

ACCOUNT_STREAMS = frozenset({"account", "directory"})
KINDS_CACHED_MAX = 256
"""Command kinds whose allowed stream types are remembered (a few dozen kinds exist)."""

# Which stream types each command kind may append to: exact for money and the log, by
# family for the job, node, validator and stake kinds (their handlers change often).
# The beacon (``domain.beacon``): work kinds ask it for randomness, and its own kinds close
# epochs, which opens rounds (and may send a job back to the market, refunding it).
WORK_STREAMS = ACCOUNT_STREAMS | {"job", "node", "validator", "decision", BEACON_STREAM_TYPE}
KIND_STREAM_TYPES: dict[str, frozenset[str]] = {
    "account.deposit": ACCOUNT_STREAMS | {CHAIN_CREDIT_STREAM_TYPE},  # issue 16, item 3
    "account.withdraw": ACCOUNT_STREAMS,
    "log.seal": frozenset({"log"}),
    "log.cosign": frozenset({"log"}),
    "log.anchor": frozenset({"log"}),
    "withdrawal.submit": frozenset({"withdrawal"}),
    "withdrawal.confirm": frozenset({"withdrawal"}),
    "withdrawal.void": ACCOUNT_STREAMS | {"withdrawal"},  # issue 16, item 7
    "network.genesis": frozenset({NETWORK_STREAM_TYPE}),
    "network.change_policy": frozenset({NETWORK_STREAM_TYPE}),
    "network.change_operators": frozenset({NETWORK_STREAM_TYPE}),
    # rules v5: a signer that is neither a node nor an operator pays the log fee for it
    "object.record_stored": ACCOUNT_STREAMS | {OBJECT_STREAM_TYPE},
    "key.register": frozenset({ENCRYPTION_KEY_STREAM_TYPE}),  # issue 17, item 2
    "model.register": frozenset({MODEL_STREAM_TYPE}),  # issue 18, item 2
    # issue 18, item 1: delegated API keys
    "apikey.create": frozenset({API_KEY_STREAM_TYPE}),
    "apikey.revoke": frozenset({API_KEY_STREAM_TYPE}),
}
# issue 18: a completion's commands touch it, its key, its node (the charge tally, a slash),
# the accounts and the beacon (its sampling draw); closing an epoch decides the sampling.
COMPLETION_STREAMS = ACCOUNT_STREAMS | {
    COMPLETION_STREAM_TYPE,
    API_KEY_STREAM_TYPE,
    "node",
    BEACON_STREAM_TYPE,
}
FAMILY_STREAM_TYPES: dict[str, frozenset[str]] = {
    "job.": WORK_STREAMS,
    "node.": WORK_STREAMS,
    "validator.": WORK_STREAMS,
    "stake.": WORK_STREAMS,
    "canary.": WORK_STREAMS | {"canary"},
    "beacon.": WORK_STREAMS | {COMPLETION_STREAM_TYPE},
    "completion.": COMPLETION_STREAMS,
    # issue 15: a liveness report appends to its epoch; a close also to the decided nodes
    "liveness.": ACCOUNT_STREAMS | {"liveness", "node"},
}


OPERATOR_KINDS = frozenset(
    {
        "account.deposit",
        "node.attestation.decide",
        "log.seal",
        "log.anchor",
        "withdrawal.submit",
        "withdrawal.confirm",
        "withdrawal.void",
        "network.change_policy",
        "network.change_operators",
        "canary.seal",
        "canary.reveal",
        "model.register",  # issue 18, item 2
    }
)

COMPLETION_ABORT_KINDS = frozenset({"completion.abort", "completion.expire"})
COMPLETION_RELEASE_KINDS = COMPLETION_ABORT_KINDS | {"completion.commit"}

# Events only some kinds may cause, whatever the stream rules allow.
RESTRICTED_EVENTS: dict[tuple[str, str], frozenset[str]] = {
    ("job", "VerdictRecorded"): frozenset({"job.record_verdict"}),
    ("log", "TreeHeadSigned"): frozenset({"log.seal"}),
    (BEACON_STREAM_TYPE, "Contributed"): frozenset({"beacon.contribute"}),
    ("log", "WitnessCosigned"): frozenset({"log.cosign"}),
    ("log", "LogAnchored"): frozenset({"log.anchor"}),
    ("withdrawal", "WithdrawalVoided"): frozenset({"withdrawal.void"}),
    (NETWORK_STREAM_TYPE, "GenesisDeclared"): frozenset({"network.genesis"}),
    (NETWORK_STREAM_TYPE, "PolicyChanged"): frozenset({"network.change_policy"}),
    (NETWORK_STREAM_TYPE, "OperatorsChanged"): frozenset({"network.change_operators"}),
    # issue 14, attack 5: decisions, fraud proofs and canaries (validator.audit_fraud)
    ("decision", "DecisionRecorded"): frozenset({"job.record_verdict"}),
    ("decision", "FraudProven"): frozenset({"job.prove_fraud", "canary.reveal"}),
    ("decision", "CanaryRevealed"): frozenset({"canary.reveal"}),
    ("canary", "CanarySealed"): frozenset({"canary.seal"}),
    ("canary", "SealRevealed"): frozenset({"canary.reveal"}),
    # issue 15: liveness epochs (validator.audit_reputation)
    ("liveness", "ReportRecorded"): frozenset({"liveness.report"}),
    ("liveness", "LivenessEpochClosed"): frozenset({"liveness.close"}),
    ("node", "NodeUptimeRecorded"): frozenset({"liveness.close"}),
    # issue 16, item 6: object-stored records
    (OBJECT_STREAM_TYPE, "ObjectStored"): frozenset({"object.record_stored"}),
    # issue 16, item 3: one credit per chain transaction
    (CHAIN_CREDIT_STREAM_TYPE, "ChainCreditRecorded"): frozenset({"account.deposit"}),
    # issue 17, item 2: encryption keys, job key releases, claims that lapse without a key
    (ENCRYPTION_KEY_STREAM_TYPE, "EncryptionKeyRegistered"): frozenset({"key.register"}),
    (ENCRYPTION_KEY_STREAM_TYPE, "EncryptionKeyRotated"): frozenset({"key.register"}),
    ("job", "KeyReleased"): frozenset({"job.release_key"}),
    ("job", "ClaimLapsed"): frozenset({"job.expire"}),
    # issue 18, item 2: registered language models
    (MODEL_STREAM_TYPE, "ModelRegistered"): frozenset({"model.register"}),
    # issue 18, item 1: delegated API keys
    (API_KEY_STREAM_TYPE, "ApiKeyCreated"): frozenset({"apikey.create"}),
    (API_KEY_STREAM_TYPE, "ApiKeyRevoked"): frozenset({"apikey.revoke"}),
    # issue 18, items 3-4: LLM completions
    ("node", "ModelsAdvertised"): frozenset({"node.advertise_models"}),
    ("validator", "CheckModelsDeclared"): frozenset({"validator.declare_models"}),
    ("node", "CompletionCharged"): frozenset({"completion.commit"}),
    (API_KEY_STREAM_TYPE, "SpendReserved"): frozenset({"completion.open"}),
    (API_KEY_STREAM_TYPE, "SpendReleased"): COMPLETION_RELEASE_KINDS,
    (COMPLETION_STREAM_TYPE, "CompletionOpened"): frozenset({"completion.open"}),
    (COMPLETION_STREAM_TYPE, "CompletionCommitted"): frozenset({"completion.commit"}),
    (COMPLETION_STREAM_TYPE, "CompletionAborted"): COMPLETION_ABORT_KINDS,
    (COMPLETION_STREAM_TYPE, "CompletionVerdictCommitted"): frozenset(
        {"completion.commit_verdict"}
    ),
    (COMPLETION_STREAM_TYPE, "CompletionVerdictRecorded"): frozenset({"completion.record_verdict"}),
}

# Kinds that may debit the boundary account (money entering the ledger): deposits and the
# refund of a voided withdrawal (its amount and owner: ``validator.audit_chain``).
BOUNDARY_DEBIT_KINDS = frozenset({"account.deposit", "withdrawal.void"})

# Kinds whose target (body field) must be owned by the actor, and that field's name.
OWNER_KINDS: dict[str, str] = {
    "stake.bond": "target",
    "stake.unbond": "target",
    "stake.withdraw": "target",
    "node.attestation.challenge": "node_id",
    "node.unjail": "node_id",
    "node.deregister": "node_id",
}

# (stream type, event type) -> the data field that must name the actor.
ACTOR_FIELDS: dict[tuple[str, str], str] = {
    ("job", "JobSubmitted"): "consumer",
    ("job", "JobClaimed"): "node_id",
    ("job", "ResultCommitted"): "node_id",
    ("job", "VerdictRecorded"): "validator_id",
    ("log", "WitnessCosigned"): "validator_id",
    (BEACON_STREAM_TYPE, "Contributed"): "validator_id",
    ("liveness", "ReportRecorded"): "validator_id",
    (OBJECT_STREAM_TYPE, "ObjectStored"): "uploader",
    (ENCRYPTION_KEY_STREAM_TYPE, "EncryptionKeyRegistered"): "actor",
    (ENCRYPTION_KEY_STREAM_TYPE, "EncryptionKeyRotated"): "actor",
    ("job", "KeyReleased"): "sender",
    (MODEL_STREAM_TYPE, "ModelRegistered"): "registered_by",
    # a delegation spends its consumer's account: created and revoked by that consumer alone
    (API_KEY_STREAM_TYPE, "ApiKeyCreated"): "consumer",
    (API_KEY_STREAM_TYPE, "ApiKeyRevoked"): "consumer",
    # issue 18: a completion is opened by its signer, committed by its node
    (COMPLETION_STREAM_TYPE, "CompletionOpened"): "opened_by",
    (COMPLETION_STREAM_TYPE, "CompletionCommitted"): "node_id",
    (COMPLETION_STREAM_TYPE, "CompletionAborted"): "aborted_by",
    (COMPLETION_STREAM_TYPE, "CompletionVerdictCommitted"): "validator_id",
    (COMPLETION_STREAM_TYPE, "CompletionVerdictRecorded"): "validator_id",
}
SELF_STREAM_EVENTS = frozenset(
    {
        ("node", "Registered"),
        ("validator", "Registered"),
        ("node", "AttestationSubmitted"),
        ("node", "ModelsAdvertised"),  # issue 18: a node advertises with its own key
        ("validator", "CheckModelsDeclared"),  # and a validator declares with its own
    }
)
# Kinds that may debit a stake account: unbonding (owner), slashing (verdicts, expiries,
# equivocation reports): every family kind but bonding and withdrawing.
STAKE_DEBIT_EXCLUDED_KINDS = frozenset({"stake.bond", "stake.withdraw"})


def find_violation(
    kind: str,
    actor: str,
    stream_type: str,
    stream_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    operators: frozenset[str] | None,
    principals: frozenset[str],
) -> str | None:
    """Why ``actor``'s command of ``kind`` may not cause this event, or None when it may.

    ``operators`` are the operators in force at the record's position; None only before a
    late genesis (a store written before rules were recorded), where the caller checks the
    operator-only kinds once the genesis has declared who the operators were.
    ``principals`` are the ids whose money the actor may move: itself and, for owner
    kinds, the owner of the node or validator it manages.
    """
    allowed_streams = get_allowed_stream_types(kind)
    if allowed_streams is None:
        return f"command kind {kind!r} is not one the audit knows"
    if stream_type not in allowed_streams:
        return f"{kind} may not append to a {stream_type} stream"
    if stream_type == "log" and stream_id != LOG_STREAM_ID:
        return f"log events belong to {LOG_STREAM_ID}, not {stream_id}"
    if stream_type == BEACON_STREAM_TYPE and stream_id != BEACON_STREAM_ID:
        return f"beacon events belong to {BEACON_STREAM_ID}, not {stream_id}"
    if stream_type == NETWORK_STREAM_TYPE and stream_id != NETWORK_STREAM_ID:
        return f"network events belong to {NETWORK_STREAM_ID}, not {stream_id}"
    restricted = RESTRICTED_EVENTS.get((stream_type, event_type))
    if restricted is not None and kind not in restricted:
        return f"{event_type} may only be caused by {sorted(restricted)}, not {kind}"
    if operators is not None and kind in OPERATOR_KINDS and actor not in operators:
        return f"{kind} is operator-only and {actor} is not an operator"
    if (stream_type, event_type) in SELF_STREAM_EVENTS and stream_id != actor:
        return f"{event_type} of {stream_id} must be signed by {stream_id}, not {actor}"
    field = ACTOR_FIELDS.get((stream_type, event_type))
    if field is not None and data.get(field) != actor:
        return f"{event_type}.{field} is {data.get(field)!r} but the command is signed by {actor}"
    if stream_type == "account":
        return _money_violation(kind, actor, stream_id, event_type, data, principals)
    return None


@functools.lru_cache(maxsize=KINDS_CACHED_MAX)
def get_allowed_stream_types(kind: str) -> frozenset[str] | None:
    """The stream types a command kind may append to; None for a kind the audit does not know."""
    exact = KIND_STREAM_TYPES.get(kind)
    if exact is not None:
        return exact
    family = kind.split(".", 1)[0] + "."
    return FAMILY_STREAM_TYPES.get(family)


def _money_violation(
    kind: str,
    actor: str,
    account_id: str,
    event_type: str,
    data: dict[str, Any],
    principals: frozenset[str],
) -> str | None:
    is_debit = event_type == "Debited" or (
        event_type == "HoldPlaced" and data.get("side") == "debit"
    )
    if not is_debit and event_type != "Credited":
        return None
    if is_debit and account_id.startswith("user:") and account_id[5:] not in principals:
        return f"{kind} by {actor} debits {account_id}"
    if is_debit and account_id == BOUNDARY_ACCOUNT and kind not in BOUNDARY_DEBIT_KINDS:
        return f"money entered the ledger through {kind}, not account.deposit"
    if (
        event_type == "Credited"
        and account_id == BOUNDARY_ACCOUNT
        and kind not in ("account.withdraw",)
    ):
        return f"money left the ledger through {kind}, not account.withdraw"
    if (
        is_debit
        and account_id.startswith("stake:")
        and (
            kind in STAKE_DEBIT_EXCLUDED_KINDS or get_allowed_stream_types(kind) == ACCOUNT_STREAMS
        )
    ):
        return f"{kind} debits stake account {account_id}"
    return None


def find_delegation_violation(
    command: OpenCompletion,
    actor: str,
    *,
    key: object,
    model: object,
    policy: LedgerPolicy | None,
    now_ns: int,
) -> str | None:
    """Why a ``completion.open`` may not spend its key's consumer's money, or None when its
    delegation allowed it (issue 18): signed by a completion signer of the policy in force,
    under a key that exists, for a registered model, and accepted by
    ``compute_charge_refusal`` for the escrow at the command's time (the key as it stood
    before the command). A patched API that opens past a cap, a revocation or an expiry is
    caught here, re-execution or not. ``key`` and ``model`` are the replayed aggregates."""
    if policy is not None and actor not in (policy.completion_signers or policy.operators):
        return f"completion.open by {actor}, who is no completion signer"
    if not isinstance(key, ApiKey):
        return f"completion.open names api key {command.key_id}, which does not exist"
    if not isinstance(model, RegisteredModel):
        return f"completion.open names model {command.model_id}, which is not registered"
    escrow = model.compute_price(
        input_tokens=command.prompt_tokens_max, output_tokens=command.max_tokens
    )
    refusal = compute_charge_refusal(key.get_delegation(), amount=escrow, now_ns=now_ns)
    if refusal is not None:
        return (
            f"completion.open of {escrow} under api key {command.key_id} "
            f"(spent {key.spent} of {key.spend_limit}): its delegation refuses it ({refusal})"
        )
    return None

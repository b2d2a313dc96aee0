"""Operator powers, minimal and visible (issue 16, item 5; rules v4).

The operators' powers are split between keys the genesis names (``LedgerPolicy.log_key``,
``LedgerPolicy.deposit_authority``): only the log key seals tree heads and only the deposit
authority credits deposits, so the key that can rewrite the log's heads cannot mint. An
operator override (an operator deciding what validators otherwise decide) carries a reason,
which the audit lists in its summary. Empty names keep the older rule (any operator).
"""

from __future__ import annotations

from domain.errors import Rejection, RejectionCode, Unauthorized
from domain.policy import RULES_V4, LedgerPolicy

OVERRIDE_KINDS = frozenset({"node.attestation.decide"})
"""Commands by which an operator decides what the validators' rounds otherwise decide."""


def is_log_key(policy: LedgerPolicy, actor: str) -> bool:
    """Whether ``actor`` may seal tree heads under ``policy``'s naming of the log key (any
    operator when it names none, or before rules v4)."""
    return policy.rules_version < RULES_V4 or not policy.log_key or actor == policy.log_key


def is_deposit_authority(policy: LedgerPolicy, actor: str) -> bool:
    """Whether ``actor`` may credit deposits under ``policy``'s naming of the deposit
    authority (any operator when it names none, or before rules v4)."""
    return (
        policy.rules_version < RULES_V4
        or not policy.deposit_authority
        or actor == policy.deposit_authority
    )


def check_log_key(policy: LedgerPolicy, actor: str) -> None:
    """Only the named log key seals tree heads (``log_key_only``)."""
    if not is_log_key(policy, actor):
        raise Unauthorized(
            f"{actor} is not the log key {policy.log_key}: only it seals tree heads",
            code=RejectionCode.LOG_KEY_ONLY,
        )


def check_deposit_authority(policy: LedgerPolicy, actor: str) -> None:
    """Only the named deposit authority credits deposits (``deposit_authority_only``)."""
    if not is_deposit_authority(policy, actor):
        raise Unauthorized(
            f"{actor} is not the deposit authority {policy.deposit_authority}: only it "
            "credits deposits",
            code=RejectionCode.DEPOSIT_AUTHORITY_ONLY,
        )


def check_override_reason(policy: LedgerPolicy, reason: str) -> None:
    """An operator override names its reason (``override_reason_required``)."""
    if policy.rules_version >= RULES_V4 and not reason.strip():
        raise Rejection(
            "an operator override carries its reason (the audit summary lists it): set reason",
            code=RejectionCode.OVERRIDE_REASON_REQUIRED,
        )

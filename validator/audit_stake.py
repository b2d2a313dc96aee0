"""The audit's stake rules (issue 14): who funds a bond, and one slash per evidence.

- A bond is signed by the owner of the node or validator it stakes and debits the signer's
  account. A ``StakeBonded`` written under that rule names its funder (``funded_by``); the
  audit checks the rule for those records, and, once the store holds one, that every later
  bond names its funder too (a record stripped of it would pass as one written before).
  Bonds written before the rule (no ``funded_by``) are checked by ``audit_rules`` as they
  were: signed by the node or validator or its owner.
- A validator is slashed at most once per evidence key (what the handler enforces on the
  aggregate, checked again on the stored events).

Pure functions: each returns why a record breaks a rule, or None.
"""

from __future__ import annotations

from typing import Any

from domain.ledger import user_account

STAKE_BONDED_EVENTS = frozenset({("node", "StakeBonded"), ("validator", "StakeBonded")})
VALIDATOR_SLASHED = ("validator", "ValidatorSlashed")
REGISTER_VALIDATOR = "validator.register"


def find_bond_violation(
    actor: str, target: Any, funded_by: str, *, is_owner_rule_in_force: bool, kind: str = ""
) -> str | None:
    """Why ``actor``'s bond to ``target`` (its aggregate before the bond) breaks the
    owner-signed rule, or None. ``funded_by`` is the record's field ("" before the rule)."""
    if not funded_by:
        if is_owner_rule_in_force:
            return "a bond written after owner-signed bonds took force names no funder"
        return None
    owner = getattr(target, "owner", None)
    if kind == REGISTER_VALIDATOR and actor == getattr(target, "id", None):
        owner = actor  # a registration's stake is its own key's money (issue 16, item 8)
    if actor != owner:
        return f"bond signed by {actor}, not by the owner {owner}"
    if funded_by != user_account(actor):
        return f"bond funded by {funded_by}, not by its signer's account {user_account(actor)}"
    return None


def find_slash_violation(validator: Any, evidence_key: str) -> str | None:
    """Why slashing ``validator`` for ``evidence_key`` breaks one-slash-per-evidence."""
    if evidence_key in getattr(validator, "slashed_for", ()):
        return f"validator {getattr(validator, 'id', '?')} slashed twice for {evidence_key}"
    return None

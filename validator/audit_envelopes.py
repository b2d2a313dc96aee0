"""The audit's envelope rules of issue 16: each record is signed for its network (item 9),
and every operator override is listed with its reason in the summary (item 5).

Under rules v4 every envelope names the network its rules name (the same rule the ledger
applies, ``domain.services.envelope_rules``); records under older rules carry none and are
judged by their own rules, so stored histories keep auditing clean.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.commands import Command
from domain.network import NetworkRules
from domain.operator_powers import OVERRIDE_KINDS
from domain.services.envelope_rules import get_expected_network
from proofs.envelope import CommandEnvelope


def find_network_problem(
    envelope: CommandEnvelope, command: Command, rules: NetworkRules
) -> str | None:
    """Why ``envelope`` breaks the network rule in force before its record, or None."""
    expected = get_expected_network(command, rules)
    if expected is None or envelope.network == expected:
        return None
    signed_for = repr(envelope.network) if envelope.network else "no network"
    return f"{envelope.kind} is signed for {signed_for}, the network is {expected!r}"


OVERRIDES_LISTED_MAX = 100
"""Operator overrides the audit summary lists one by one (all are counted)."""


class OperatorOverride(msgspec.Struct, frozen=True):
    """An operator deciding what the validators otherwise decide (issue 16, item 5)."""

    position: int
    kind: str
    actor: str
    reason: str


def find_override(
    position: int, envelope: CommandEnvelope, command: Command, rules: NetworkRules
) -> OperatorOverride | None:
    """The override ``envelope`` makes, when it is one signed by an operator in force."""
    if envelope.kind not in OVERRIDE_KINDS or not rules.has_genesis:
        return None
    if envelope.actor not in rules.current.operators:
        return None
    reason = str(getattr(command, "reason", ""))
    return OperatorOverride(position, envelope.kind, envelope.actor, reason)


def summarize_overrides(overrides: list[OperatorOverride]) -> dict[str, Any]:
    """The audit summary's view: how many, and the first ``OVERRIDES_LISTED_MAX``."""
    listed = [msgspec.to_builtins(o) for o in overrides[:OVERRIDES_LISTED_MAX]]
    return {"count": len(overrides), "listed": listed}

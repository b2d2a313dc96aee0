"""The audit's envelope rules of issue 16 (item 9): each record is signed for its network.

Under rules v4 every envelope names the network its rules name (the same rule the ledger
applies, ``domain.services.envelope_rules``); records under older rules carry none and are
judged by their own rules, so stored histories keep auditing clean.
"""

from __future__ import annotations

from domain.commands import Command
from domain.network import NetworkRules
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

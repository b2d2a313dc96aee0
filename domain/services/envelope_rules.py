"""Which network an envelope must be signed for (issue 16, item 9), under the rules in force.

From rules v4 the ledger refuses an envelope signed for another network than the one its
rules name (``network_mismatch``): a command signed for a devnet cannot be replayed on
another deployment. A genesis declares the network, so its own envelope must be signed for
the network it declares. Records under older rules carry no network and keep running.
"""

from __future__ import annotations

from domain import commands as c
from domain.network import NetworkRules
from domain.policy import RULES_V4, LedgerPolicy
from proofs.envelope import CommandEnvelope, check_network


def get_expected_network(command: c.Command, rules: NetworkRules) -> str | None:
    """The network id the envelope of ``command`` must name, or None under rules before v4."""
    policy: LedgerPolicy
    if isinstance(command, c.DeclareGenesis) and not rules.has_genesis:
        policy = command.policy
    elif rules.has_genesis:
        policy = rules.current
    else:
        return None  # no rules in force: the command is refused as genesis_missing
    if policy.rules_version < RULES_V4:
        return None
    return policy.network_id


def check_envelope_network(
    envelope: CommandEnvelope, command: c.Command, rules: NetworkRules
) -> None:
    """Raise ForeignNetwork when ``envelope`` is not signed for the network in force."""
    expected = get_expected_network(command, rules)
    if expected is not None:
        check_network(envelope, expected)

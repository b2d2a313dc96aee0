"""The audit's quorum thresholds (issue 14, attack 9), for records written under rules v2.

- A job asks for at least ``redundancy_min`` validators (checked at ``JobSubmitted``).
- A certificate that decided a round is signed by validators holding at least
  quorum_numerator/quorum_denominator of the round's drawn stake (the weights recorded when
  they were drawn), by at least ``quorum_signers_min`` of them, and, for a job, by none whose
  owner is the job's provider (the node's owner judging its own result).

Records written under rules v1 (``LedgerPolicy.rules_version`` 1, or before a late genesis:
such stores were written before rules were recorded) keep their rules: any one valid signer.
Pure functions: each returns why a record breaks a rule, or None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.policy import LedgerPolicy
from domain.verdicts import QUORUM_RULES_VERSION, VerdictRound, has_quorum


def is_quorum_rule_in_force(policy: LedgerPolicy | None) -> bool:
    """Whether records governed by ``policy`` (None: no genesis yet) have the thresholds."""
    return policy is not None and policy.rules_version >= QUORUM_RULES_VERSION


def find_redundancy_violation(policy: LedgerPolicy, redundancy: int) -> str | None:
    """Why a job submitted with ``redundancy`` under ``policy`` breaks the minimum."""
    if redundancy < policy.redundancy_min:
        return f"a job asked for {redundancy} validators, fewer than {policy.redundancy_min}"
    return None


def find_threshold_violation(
    policy: LedgerPolicy,
    verdict_round: VerdictRound,
    signers: Sequence[int],
    *,
    owners: Mapping[str, str],
    provider: str,
) -> str | None:
    """Why a certificate signed by the round's validators at indices ``signers`` does not
    decide under ``policy``; ``owners`` maps validator ids to their owners, ``provider`` is
    the judged job's provider ("" for an attestation)."""
    validators, weights = verdict_round.validators, verdict_round.weights
    signed = [validators[i] for i in signers]
    signed_weight = sum(weights[i] for i in signers)
    if not has_quorum(
        signed_weight=signed_weight,
        drawn_weight=sum(weights),
        signers=len(signed),
        policy=policy,
    ):
        return (
            f"{len(signed)} signers with {signed_weight} of {sum(weights)} drawn stake are no "
            f"quorum ({policy.quorum_numerator}/{policy.quorum_denominator} of the stake and "
            f"{policy.quorum_signers_min} signers needed)"
        )
    owned = [v for v in signed if provider and owners.get(v) == provider]
    if owned:
        return f"validator {owned[0]} is owned by the job's provider {provider}"
    return None


def get_owners(aggregates: Mapping[str, Any], validator_ids: Sequence[str]) -> dict[str, str]:
    """The recorded owner of each validator (replayed aggregates)."""
    return {v: str(getattr(aggregates.get(v), "owner", "")) for v in validator_ids}

"""The audit's rules of issue 14, attack 5, for records written under rules version 2:

- **validators paid for every decided job**: the command that decides a job's round (pass
  or fail) records its ``JobDecision`` with the certificate's signers, and pays each of them
  (each fee leg names a signer's owner and that account was credited at least as much in the
  same command); a pass pays each signer its full fee share of the price;
- **a fraud slash is re-checkable**: a ``FraudProven`` event's evidence proves the judged
  result wrong when the audit runs the ledger's deterministic check again
  (``domain.services.fraud_checks``), and every validator slashed under a fraud evidence key
  was a pass voter of a decision proven wrong in that same command.

Pure functions: each returns why a record breaks a rule, or None.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from domain.fraud import FRAUD_EVIDENCE_PREFIX
from domain.ledger import user_account
from domain.policy import LedgerPolicy
from domain.services.fraud import decode_evidence
from domain.services.fraud_checks import check_fraud_evidence
from domain.settlement import compute_validator_fee_share
from proofs.quorum import decode_qc, signer_indices

DECISION_RECORDED = ("decision", "DecisionRecorded")


class Decided(NamedTuple):
    """A job round a command decided, as the audit saw it just before the decision."""

    passed: bool
    signers: tuple[str, ...]
    """The certificate's signers."""
    pass_votes: tuple[tuple[str, bytes], ...]
    """The revealed pass verdicts: (validator, BLS signature)."""
    price: int
    """The price of the attempt decided (a rejected job is reassigned at once: price 0)."""


FRAUD_PROVEN = ("decision", "FraudProven")


def compute_certificate_signers(certificate: bytes, validators: tuple[str, ...]) -> tuple[str, ...]:
    """The validators whose bits a certificate sets (empty when it does not decode)."""
    try:
        indices = signer_indices(decode_qc(certificate), len(validators))
    except msgspec.MsgspecError:
        return ()
    return tuple(validators[i] for i in indices or ())


def find_decision_violation(
    event: Any,
    *,
    decided: dict[str, Decided],
    owners: dict[str, str],
    credits: dict[str, int],
    policy: LedgerPolicy,
) -> str | None:
    """Why a ``DecisionRecorded`` breaks pay-for-every-decision, or None. ``decided`` maps
    the jobs this command decided to what their rounds show; ``owners`` validator ids
    to owners; ``credits`` what this command credited so far, by account."""
    if event.job_id not in decided:
        return f"a decision of {event.job_id} recorded by a command that decided no round of it"
    passed, signers, pass_votes, price = decided[event.job_id]
    if (event.passed, tuple(event.signers)) != (passed, signers):
        return f"the decision of {event.job_id} is not its certificate's verdict and signers"
    if tuple((v.validator_id, v.signature) for v in event.pass_votes) != pass_votes:
        return f"the decision of {event.job_id} does not list the round's pass votes"
    expected = {user_account(owners.get(v, "")) for v in signers}
    legs = [(p.account, p.amount) for p in event.fees]
    share = compute_validator_fee_share(price, len(signers), policy)
    # Zero legs are left out: a share of 0, or a fail whose node's slash held nothing.
    is_unpaid_allowed = share == 0 or not passed
    if legs or not is_unpaid_allowed:
        accounts = {account for account, _ in legs}
        if accounts != expected or len(legs) != len(accounts):
            return f"the decision of {event.job_id} does not pay each signer once"
    for account, amount in legs:
        if passed and amount != share:
            return f"{account} was paid {amount} for passing {event.job_id}, not {share}"
        if not 0 < amount <= share:
            return f"{account} was paid {amount} for failing {event.job_id} (share {share})"
        if credits.get(account, 0) < amount:
            return f"{account} was not credited its fee of {amount} for {event.job_id}"
    return None


def find_fraud_violation(
    event: Any, *, decision: Any, job: Any, kind: str, actor: str
) -> str | None:
    """Why a ``FraudProven`` (recorded by a ``kind`` command signed by ``actor``) does not
    prove its decision's result wrong, or None. A fraud proof names its signer as the
    challenger; only a canary reveal records a canary."""
    if job is None or decision is None:
        return "a fraud proof of an unknown job or decision"
    if event.challenger != actor or event.canary != (kind == "canary.reveal"):
        return f"the fraud proof names {event.challenger} (canary {event.canary}), not {kind}"
    try:
        evidence = decode_evidence(event.evidence)
    except msgspec.MsgspecError as exc:
        return f"the recorded fraud evidence does not decode: {exc}"
    finding = check_fraud_evidence(
        job_id=decision.job_id,
        node_id=decision.node_id,
        workload=job.workload,
        commitment=decision.commitment,
        evidence=evidence,
    )
    if finding is not None:
        return f"the recorded fraud proof does not hold: {finding[1]}"
    return None


def find_fraud_slash_violation(
    validator_id: str, evidence_key: str, proven: dict[str, tuple[str, ...]]
) -> str | None:
    """Why a validator's slash under a fraud evidence key has no proof behind it: ``proven``
    maps the evidence keys this command proved to their pass voters."""
    if not evidence_key.startswith(FRAUD_EVIDENCE_PREFIX + ":"):
        return None
    if validator_id not in proven.get(evidence_key, ()):
        return f"{validator_id} slashed for {evidence_key} with no fraud proof of its pass vote"
    return None

"""The audit's claim and stake-take rules (issue 14, attacks 4 and 6), for records written
under ``rules_version`` 2 or later (``domain.claims`` states the rules):

- at every claim (``ClaimReserved``) the node was active, ran fewer claimed jobs than its
  capacity, its bonded stake covered its open reserves and this one, and the reserve was
  what the policy says (the slash a rejection would take then, the claim bond of the job);
- every ``JobClaimed`` has its ``ClaimReserved`` in the same command;
- a result was committed by an active node whose bonded stake covered its open reserves,
  on a claim it ran (``ClaimCommitted``);
- an unbond left the bonded stake at or above what the open claims reserve;
- a forfeited claim bond was at most the claim's bond, named the job's consumer, and was
  credited to the consumer out of the node's stake accounts in the same command;
- a take (slash, forfeit) never exceeded the stake plus the unbonding stake, each part
  within its own;
- after a command that changed a node or validator, its ``stake:`` and ``unbonding:``
  accounts hold what the aggregate counts.

``ClaimAudit`` keeps what one command did; the functions are pure and return why a record
breaks a rule, or None.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from domain.claims import compute_claim_bond, compute_slash_amount
from domain.ledger import stake_account, unbonding_account, user_account
from domain.node import ACTIVE
from domain.policy import RULES_V1, LedgerPolicy

CLAIM_RULES_VERSION = RULES_V1 + 1
TAKE_EVENTS = frozenset(
    {("node", "NodeSlashed"), ("node", "ClaimBondForfeited"), ("validator", "ValidatorSlashed")}
)
FORFEIT_TRANSFER_MARK = ":claim_bond:"
STAKE_HOLDER_STREAMS = frozenset({"node", "validator"})


@dataclass
class ClaimAudit:
    """What one command claimed, reserved, forfeited and credited (reset per command)."""

    claimed: list[str] = field(default_factory=list)
    reserved: set[str] = field(default_factory=set)
    forfeited: Counter[tuple[str, str]] = field(default_factory=Counter)
    credited: Counter[tuple[str, str]] = field(default_factory=Counter)
    holders: set[str] = field(default_factory=set)

    def check_event(
        self,
        key: tuple[str, str],
        aggregate: Any,
        event: Any,
        aggregates: dict[str, Any],
        policy: LedgerPolicy,
    ) -> str | None:
        """Why this event (of ``aggregate`` before it) breaks a claim rule, or None."""
        if key[0] in STAKE_HOLDER_STREAMS:
            self.holders.add(getattr(aggregate, "id", "") or event.originator_id)
        if key == ("job", "JobClaimed"):
            self.claimed.append(getattr(aggregate, "id", ""))
            return None
        if key in TAKE_EVENTS:
            violation = find_take_violation(aggregate, event.amount, event.from_unbonding)
            if violation is not None or key != ("node", "ClaimBondForfeited"):
                return violation
            job = aggregates.get(event.job_id)
            self.forfeited[(event.to_account, aggregate.id)] += event.amount
            return find_forfeit_violation(aggregate, job, event)
        if key == ("node", "ClaimReserved"):
            self.reserved.add(event.job_id)
            return find_claim_violation(aggregate, aggregates.get(event.job_id), event, policy)
        if key == ("node", "UnbondRequested"):
            return find_unbond_violation(aggregate, event.amount, policy)
        if key == ("node", "ClaimCommitted"):
            claim = aggregate.claims.get(event.job_id)
            if claim is None or claim.committed:
                return f"node {aggregate.id} committed {event.job_id}, no running claim of its"
        if key == ("job", "ResultCommitted"):
            return find_commit_violation(aggregates.get(event.node_id), event.node_id)
        return None

    def note_credit(self, account_id: str, data: dict[str, Any]) -> None:
        """An account credit: a forfeited bond's leg when its transfer id says so."""
        transfer_id = str(data.get("transfer_id", ""))
        counterparty = str(data.get("counterparty", ""))
        if FORFEIT_TRANSFER_MARK in transfer_id:
            holder = counterparty.split(":", 1)[-1]
            if counterparty in (stake_account(holder), unbonding_account(holder)):
                self.credited[(account_id, holder)] += int(data.get("amount", 0))

    def end_command(self, aggregates: dict[str, Any]) -> str | None:
        """Why the command as a whole breaks a claim rule, or None (``aggregates`` as the
        command left them)."""
        for job_id in self.claimed:
            if job_id not in self.reserved:
                return f"{job_id} was claimed without a claim reservation on its node"
        if self.forfeited != self.credited:
            return (
                f"forfeited claim bonds {dict(self.forfeited)} are not what the consumers "
                f"were credited {dict(self.credited)}"
            )
        for holder_id in sorted(self.holders):
            violation = find_stake_account_violation(aggregates, holder_id)
            if violation is not None:
                return violation
        return None


def find_claim_violation(node: Any, job: Any, event: Any, policy: LedgerPolicy) -> str | None:
    """Why ``node`` (before the event) could not take the claim ``event`` reserves."""
    if getattr(node, "state", None) != ACTIVE:
        return f"node {node.id} claimed {event.job_id} while {getattr(node, 'state', None)}"
    if event.job_id in node.claims:
        return f"node {node.id} reserved {event.job_id} twice"
    if node.count_claims_running() >= node.claim_capacity():
        return (
            f"node {node.id} claimed {event.job_id} running {node.count_claims_running()} "
            f"claimed jobs, its capacity"
        )
    reserve = event.slash_at_risk + event.claim_bond
    if node.stake < node.reserved_stake() + reserve:
        return (
            f"node {node.id} claimed {event.job_id} with bonded stake {node.stake}, short of "
            f"its open reserves {node.reserved_stake()} and this claim's {reserve}"
        )
    slash = compute_slash_amount(node.stake, node.unbonding, policy)
    bond = compute_claim_bond(getattr(job, "max_price", 0), policy)
    if (event.slash_at_risk, event.claim_bond) != (slash, bond):
        return (
            f"claim of {event.job_id} reserved slash {event.slash_at_risk} and bond "
            f"{event.claim_bond}; the policy says {slash} and {bond}"
        )
    return None


def find_commit_violation(node: Any, node_id: str) -> str | None:
    """Why ``node`` (as it stands at the commit) could not commit a result."""
    if getattr(node, "state", None) != ACTIVE:
        return f"node {node_id} committed a result while {getattr(node, 'state', None)}"
    if node.stake < node.reserved_stake():
        return (
            f"node {node_id} committed a result with bonded stake {node.stake} short of "
            f"its open reserves {node.reserved_stake()}"
        )
    return None


def find_unbond_violation(node: Any, amount: int, policy: LedgerPolicy) -> str | None:
    floor = node.get_unbond_floor(policy)
    if node.stake - amount < floor:
        return f"node {node.id} unbonded {amount} of {node.stake} below its claims' {floor}"
    return None


def find_forfeit_violation(node: Any, job: Any, event: Any) -> str | None:
    claim = node.claims.get(event.job_id)
    if claim is None:
        return f"node {node.id} forfeited a bond for {event.job_id}, which it does not hold"
    if event.amount > claim.claim_bond:
        return f"forfeit of {event.amount} exceeds the claim bond {claim.claim_bond}"
    consumer = user_account(getattr(job, "consumer", ""))
    if event.to_account != consumer:
        return f"claim bond of {event.job_id} went to {event.to_account}, not {consumer}"
    return None


def find_take_violation(holder: Any, amount: int, from_unbonding: int) -> str | None:
    """Why taking ``amount`` (``from_unbonding`` of it unbonding) from ``holder`` is wrong."""
    stake, unbonding = getattr(holder, "stake", 0), getattr(holder, "unbonding", 0)
    if not 0 <= amount <= stake + unbonding:
        return f"take of {amount} from {holder.id} exceeds stake {stake} + unbonding {unbonding}"
    if not 0 <= from_unbonding <= min(amount, unbonding) or amount - from_unbonding > stake:
        return (
            f"take of {amount} from {holder.id} splits {from_unbonding} unbonding / "
            f"{amount - from_unbonding} bonded of {unbonding} / {stake}"
        )
    return None


def find_stake_account_violation(aggregates: dict[str, Any], holder_id: str) -> str | None:
    """Why the ledger's stake accounts of ``holder_id`` disagree with its aggregate."""
    holder = aggregates.get(holder_id)
    for account_id, expected in (
        (stake_account(holder_id), getattr(holder, "stake", 0)),
        (unbonding_account(holder_id), getattr(holder, "unbonding", 0)),
    ):
        account = aggregates.get(account_id)
        balance = getattr(account, "balance", 0)
        if balance != expected:
            return f"{account_id} holds {balance}, but {holder_id} counts {expected}"
    return None

"""The audit's final checks over rebuilt state (DESIGN.md's ledger invariants) and its summary.

Per-command invariants (money conserved, no account but the boundary below zero, a hold
closed at most once, every slash cites evidence) are checked during the replay by
``validator.audit``; what needs the whole state is checked here: all balances sum to zero,
pending debits equal pending credits, every finished job has a closed escrow, and every
node's stake equals its stake account.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from domain.job import FINISHED_STATES, Job
from domain.ledger import escrow_account, stake_account, user_account
from domain.log import LOG_STREAM_ID
from domain.node import Node
from validator.audit import LEDGER_INVARIANTS, READ_MODEL, AuditFailed, Replayer
from validator.audit_accounts import AccountState

# Accounts listed by balance in the human summary (the JSON report lists every account).
SUMMARY_ACCOUNTS_MAX = 20


def check_final_invariants(replayer: Replayer) -> None:
    """Raise AuditFailed for the first invariant the rebuilt state breaks."""
    accounts = _accounts(replayer)
    head = replayer.head.position
    total = sum(a.balance for a in accounts.values())
    if total != 0:
        raise AuditFailed(head, LEDGER_INVARIANTS, f"balances sum to {total}, not 0")
    debits = sum(a.debits_pending for a in accounts.values())
    credits = sum(a.credits_pending for a in accounts.values())
    if debits != credits:
        raise AuditFailed(head, LEDGER_INVARIANTS, f"pending debits {debits} != {credits}")
    for stream_id, aggregate in replayer.aggregates.items():
        position = replayer.last_positions[stream_id]
        if isinstance(aggregate, Job) and aggregate.state in FINISHED_STATES:
            consumer = accounts.get(user_account(aggregate.consumer))
            escrow = accounts.get(escrow_account(aggregate.id))
            closed = consumer is not None and aggregate.escrow_hold_id in consumer.closed_holds
            if not closed or (escrow is not None and escrow.balance != 0):
                raise AuditFailed(
                    position, LEDGER_INVARIANTS, f"{stream_id} is finished, its escrow is open"
                )
        if isinstance(aggregate, Node):
            stake = accounts.get(stake_account(stream_id))
            balance = stake.balance if stake is not None else 0
            if aggregate.stake != balance:
                raise AuditFailed(
                    position,
                    LEDGER_INVARIANTS,
                    f"node {stream_id} has stake {aggregate.stake}, its account {balance}",
                )
    replayer.counts[LEDGER_INVARIANTS] += 1


def check_balance_snapshot(
    replayer: Replayer, account_id: str, version: int, state: dict[str, Any]
) -> None:
    """Compare a materialized balance (a store snapshot) with the replayed account."""
    history = replayer.balance_history.get(account_id, [])
    if not 1 <= version <= len(history):
        position = replayer.last_positions.get(account_id, replayer.head.position)
        raise AuditFailed(
            position, READ_MODEL, f"snapshot of {account_id} at unknown version {version}"
        )
    position, balance, debits_pending, credits_pending = history[version - 1]
    stored = (state.get("balance"), state.get("debits_pending"), state.get("credits_pending"))
    if stored != (balance, debits_pending, credits_pending):
        raise AuditFailed(
            position,
            READ_MODEL,
            f"read table says {account_id} v{version} has balance {stored[0]}, "
            f"the log gives {balance}",
        )
    replayer.counts[READ_MODEL] += 1


def summarize_state(replayer: Replayer) -> dict[str, Any]:
    """What the log says as of the audited position: streams, jobs, nodes, balances, heads."""
    accounts = _accounts(replayer)
    jobs = Counter(a.state for a in replayer.aggregates.values() if isinstance(a, Job))
    nodes = Counter(a.state for a in replayer.aggregates.values() if isinstance(a, Node))
    log = replayer.aggregates.get(LOG_STREAM_ID)
    return {
        "position": replayer.head.position,
        "head_hash": replayer.head.hash.hex(),
        "commands": replayer.commands,
        "streams": dict(Counter(replayer.stream_types.values())),
        "jobs_by_state": dict(jobs),
        "nodes_by_state": dict(nodes),
        "accounts": {k: accounts[k].balance for k in sorted(accounts)},
        "total_balance": sum(a.balance for a in accounts.values()),
        "tree_heads": len(replayer.log.heads),
        "last_tree_size": replayer.log.last_size,
        "cosignatures": replayer.log.cosignatures,
        "anchors": len(replayer.log.anchors),
        "log_version": log.version if log is not None else 0,
        "network": _network(replayer),
    }


def _network(replayer: Replayer) -> dict[str, Any]:
    """Who declared the rules, where, and the operators in force at the audited position."""
    rules = replayer.rules
    return {
        "genesis_position": rules.genesis_position,
        "genesis_signer": replayer.genesis_signer,
        "operators": list(rules.current.operators) if rules.has_genesis else [],
        "rule_changes": max(len(rules.entries) - 1, 0),
    }


def _accounts(replayer: Replayer) -> dict[str, AccountState]:
    return {k: a for k, a in replayer.aggregates.items() if isinstance(a, AccountState)}

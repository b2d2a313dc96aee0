"""Handlers of liveness epochs (``domain.liveness``, rules v3): probers' reports and closings.

A report is one prober's results for the nodes it is assigned in one epoch; the epoch's
first report freezes its snapshot of probers (the active validators then, with their owners
and regions). Closing decides every reported node by a majority of its assigned probers and
records one ``NodeUptimeRecorded`` per decided node, which counts for its reputation.
"""

from __future__ import annotations

from domain import commands as c
from domain.errors import Rejection, RejectionCode
from domain.liveness import (
    LivenessEpoch,
    NodeUptime,
    Prober,
    ProbeReport,
    check_epoch_timing,
    check_report_shape,
    compute_node_uptime,
    compute_probers,
    require_prober,
)
from domain.node import Node
from domain.policy import RULES_V3, LedgerPolicy
from domain.services.context import CommandContext
from domain.services.directories import list_members
from domain.services.unit_of_work import UnitOfWork
from domain.validators import Validator


async def handle_report_liveness(
    uow: UnitOfWork, cmd: c.ReportLiveness, ctx: CommandContext
) -> str:
    """An assigned prober reports its nodes of ``cmd.epoch``, once."""
    _require_rules(ctx.policy)
    report = ProbeReport(tuple(cmd.nodes), cmd.up, tuple(cmd.rtt_us))
    check_report_shape(report)
    epoch = await uow.get(LivenessEpoch, LivenessEpoch.stream_id(cmd.epoch))
    if epoch is None:
        check_epoch_timing(cmd.epoch, now_ns=ctx.now_ns, policy=ctx.policy, closing=False)
        probers = await get_probers(uow, ctx.policy)
        epoch = LivenessEpoch.open(cmd.epoch, probers=probers, now_ns=ctx.now_ns)
        uow.add(epoch)
    for node_id in report.nodes:
        node = await uow.require(Node, node_id)
        assigned = compute_probers(
            cmd.epoch,
            node_id,
            epoch.probers,
            count=ctx.policy.liveness_probers,
            node_owner=node.owner,
        )
        require_prober(ctx.actor, node_id, assigned, cmd.epoch)
    epoch.record_report(validator_id=ctx.actor, report=report, policy=ctx.policy, now_ns=ctx.now_ns)
    return epoch.id


async def handle_close_liveness(uow: UnitOfWork, cmd: c.CloseLiveness, ctx: CommandContext) -> str:
    """Anyone decides an epoch whose reports are in: one close, one uptime per decided node."""
    _require_rules(ctx.policy)
    epoch = await uow.require(LivenessEpoch, LivenessEpoch.stream_id(cmd.epoch))
    nodes = epoch.reported_nodes()
    decided: list[tuple[Node, NodeUptime]] = []
    for node_id in nodes:
        node = await uow.require(Node, node_id)
        assigned = compute_probers(
            cmd.epoch,
            node_id,
            epoch.probers,
            count=ctx.policy.liveness_probers,
            node_owner=node.owner,
        )
        outcome = compute_node_uptime(node_id, assigned, epoch.reports, epoch.probers)
        if outcome is not None:
            decided.append((node, outcome))
    epoch.close(
        outcomes=[outcome for _, outcome in decided],
        nodes=nodes,
        policy=ctx.policy,
        now_ns=ctx.now_ns,
    )
    for node, outcome in decided:
        node.record_uptime(cmd.epoch, outcome, now_ns=ctx.now_ns)
    return epoch.id


async def get_probers(uow: UnitOfWork, policy: LedgerPolicy) -> tuple[Prober, ...]:
    """The active validators now, in order of registration: an epoch's snapshot."""
    probers = []
    for validator_id in await list_members(uow, "validators"):
        validator = await uow.require(Validator, validator_id)
        if validator.is_active(policy):
            probers.append(Prober(validator_id, validator.owner, validator.region))
    return tuple(probers)


def _require_rules(policy: LedgerPolicy) -> None:
    if policy.rules_version < RULES_V3:
        raise Rejection(
            f"liveness epochs are rules v{RULES_V3}; this ledger runs v{policy.rules_version}",
            code=RejectionCode.LIVENESS_NEEDS_RULES_V3,
        )

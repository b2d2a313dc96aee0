"""Hardware attestation under rules v3: timed challenges, UUID groups, failures and misses.

A challenge (the owner's request or a re-challenge) carries the probes the protocol sizes
from the node's models (``domain.devices.compute_probe_specs``) and opens its verdict round at
once: the beacon draws the validators, who time the node themselves. GPU UUIDs are
self-reported, so a UUID proves nothing alone: every node that reports a UUID the challenged
node reports (up to ``CHALLENGE_GROUP_NODES_MAX``, those that can be challenged now) is
challenged in the same command with the same ``group``, so their rounds are drawn from the
same beacon epoch and their validators probe in the same slots; one device cannot answer
two probes at once. A failed challenge revokes the attestation (``domain.node``); the slash
for repeated misses is ``domain.services.attestation_misses``.
"""

from __future__ import annotations

import hashlib

from domain.devices import compute_probe_specs
from domain.node import DEREGISTERED, GpuClaim, Node
from domain.policy import CHALLENGE_GROUP_NODES_MAX
from domain.services.context import CommandContext
from domain.services.directories import add_member, list_members
from domain.services.rounds import ATTESTATION_ROUND, open_round
from domain.services.unit_of_work import UnitOfWork

SEED_TAG_V3 = b"flopledger/attestation/v3"


def compute_uuid_directory(uuid: str) -> str:
    """The directory of the nodes that ever reported GPU ``uuid``."""
    return f"gpu:{uuid}"


async def add_to_uuid_directories(
    uow: UnitOfWork, node_id: str, gpus: tuple[GpuClaim, ...], known: tuple[GpuClaim, ...] = ()
) -> None:
    """List ``node_id`` under each UUID of ``gpus`` it was not listed under for ``known``."""
    listed = {gpu.uuid for gpu in known}
    for uuid in dict.fromkeys(gpu.uuid for gpu in gpus if gpu.uuid and gpu.uuid not in listed):
        await add_member(uow, compute_uuid_directory(uuid), node_id)


async def challenge_timed(uow: UnitOfWork, node: Node, ctx: CommandContext) -> None:
    """Challenge ``node`` and the nodes sharing one of its GPU UUIDs, in one command."""
    peers = await find_uuid_peers(uow, node, now_ns=ctx.now_ns)
    nonce = ctx.command_id[:32]
    group = nonce if peers else ""
    head = await uow.head()
    for subject in (node, *peers):
        # A seed per node, from the log head and this command: none can precompute it.
        seed = hashlib.sha256(
            SEED_TAG_V3 + head.hash + ctx.command_id.encode() + subject.id.encode()
        )
        subject.challenge_attestation(
            nonce=nonce,
            seed=seed.hexdigest(),
            size=0,
            deadline_ns=ctx.now_ns + ctx.policy.attestation_window_ns,
            now_ns=ctx.now_ns,
            probes=compute_probe_specs(tuple(gpu.model for gpu in subject.gpus), policy=ctx.policy),
            group=group,
        )
        # Without any validator to draw, the round stays closed and an operator decides.
        await open_round(
            uow, ATTESTATION_ROUND, subject, count=ctx.policy.attestation_validators, ctx=ctx
        )


async def find_uuid_peers(uow: UnitOfWork, node: Node, *, now_ns: int) -> list[Node]:
    """The other nodes reporting one of ``node``'s GPU UUIDs now that can be challenged now,
    in order of registration under each UUID, at most ``CHALLENGE_GROUP_NODES_MAX``."""
    peers: dict[str, Node] = {}
    for uuid in dict.fromkeys(gpu.uuid for gpu in node.gpus if gpu.uuid):
        for member in await list_members(uow, compute_uuid_directory(uuid)):
            if len(peers) >= CHALLENGE_GROUP_NODES_MAX:
                return list(peers.values())
            if member == node.id or member in peers:
                continue
            peer = await uow.require(Node, member)
            reports = any(gpu.uuid == uuid for gpu in peer.gpus)
            if peer.state != DEREGISTERED and reports and peer.can_be_challenged(now_ns):
                peers[member] = peer
    return list(peers.values())

"""A provider node with several GPUs, registered and made active through signed commands as
``LocalNetwork.register_active_node`` does for one (the claim rule bounds open claims by the
devices a node registered)."""

from __future__ import annotations

from domain.node import Node
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, b64
from proofs.identity import Identity

GPU = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}


async def register_active_node(
    net: LocalNetwork, node: Identity, *, gpus: int, stake: int, price: int, region: str
) -> None:
    """Register with ``gpus`` devices, bond ``stake`` and pass attestation (operator)."""
    body = {"region": region, "gpus": [GPU] * gpus, "gpu_class": "datacenter", "price": price}
    await net.run(node, "node.register", body)
    await net.run(node, "stake.bond", {"target": node.id, "amount": stake})
    await net.run(node, "node.attestation.challenge", {"node_id": node.id})
    current = await get_aggregate(net.store, Node, node.id)
    assert current is not None and current.challenge is not None
    digest = b64(bytes(32))
    await net.run(
        node,
        "node.attestation.submit",
        {
            "node_id": node.id,
            "nonce": current.challenge.nonce,
            "inventory_digest": digest,
            "commitment": digest,
            "timings_ns": [1_000_000],
        },
    )
    await net.run(net.operator, "node.attestation.decide", {"node_id": node.id, "accepted": True})

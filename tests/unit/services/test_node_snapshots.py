"""A busy node is loaded from its snapshot and the records after it, to the same state as a
replay of its whole stream (``domain.node_snapshots``)."""

from __future__ import annotations

from adapters.store.memory import MemoryEventStore
from domain.events import rebuild
from domain.node import Node
from domain.node_snapshots import NODE_SNAPSHOT_EVERY_EVENTS
from domain.policy import LedgerPolicy
from domain.services.loading import load_aggregate
from domain.snapshots import compute_snapshot_id
from flopledger.network import LocalNetwork
from proofs.identity import Identity

NODE, CONSUMER = Identity.from_seed(bytes([131]) * 32), Identity.from_seed(bytes([132]) * 32)


async def test_a_node_loads_from_its_snapshot_to_the_replayed_state() -> None:
    store = MemoryEventStore()
    net = LocalNetwork.create(store, policy=LedgerPolicy(node_stake_min=1_000))
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    await net.deposit(CONSUMER, 10**9)
    while len(await store.read_stream(NODE.id)) < NODE_SNAPSHOT_EVERY_EVENTS + 5:
        job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
        await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
        await net.run(NODE, "job.release", {"job_id": job_id})

    snapshot = await store.get_snapshot(compute_snapshot_id(NODE.id))
    assert snapshot is not None and snapshot.version >= NODE_SNAPSHOT_EVERY_EVENTS
    loaded = await load_aggregate(store, Node, NODE.id)
    assert loaded.snapshot_version == snapshot.version
    replayed = rebuild(await store.read_stream(NODE.id), Node)
    assert loaded.aggregate is not None and replayed is not None
    assert loaded.aggregate.version == replayed.version
    public = [name for name in vars(replayed) if not name.startswith("_")]
    assert {n: getattr(loaded.aggregate, n) for n in public} == {
        n: getattr(replayed, n) for n in public
    }

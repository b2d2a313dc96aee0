"""A small but complete history for audit tests: deposits, nodes, validators, a settled job,
a withdrawal, sealed tree heads with witness co-signatures, and anchors on a fake chain."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from adapters.store.sqlite import SqliteEventStore
from domain.job import Job
from domain.log import encode_anchor_memo
from domain.policy import LedgerPolicy
from domain.ports import EventStore
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from operations.sealer import AnchorReceipt, Sealer
from proofs.identity import Identity
from validator.audit_run import ChainMemo
from validator.witness import make_cosign_envelopes

NODE = Identity.from_seed(b"audit-node".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"audit-consumer".ljust(32, b"\0"))


@dataclass
class FakeChain:
    """Anchors as memos keyed by a made-up signature (the LiteSVM tests use a real chain)."""

    memos: dict[str, ChainMemo] = field(default_factory=dict)
    slot: int = 100

    async def anchor(self, size: int, root: bytes) -> AnchorReceipt:
        memo = encode_anchor_memo(size, root)
        signature = hashlib.sha256(memo.encode()).hexdigest()
        self.slot += 1
        self.memos[signature] = ChainMemo(memo=memo, slot=self.slot)
        return AnchorReceipt(chain_signature=signature, slot=self.slot)

    async def get_memo(self, signature: str) -> ChainMemo | None:
        return self.memos.get(signature)


@dataclass
class History:
    net: LocalNetwork
    validators: list[ValidatorKeys]
    chain: FakeChain
    job_id: str


async def build_history(store: EventStore, *, policy: LedgerPolicy | None = None) -> History:
    net = LocalNetwork.create(store, policy=policy or LedgerPolicy(withdrawal_min=1))  # small sums
    chain = FakeChain()
    validators = [make_validator_keys(i) for i in range(3)]
    for keys in validators:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    sealer = Sealer(store, net.operator, clock_ns=lambda: net.now_ns, anchor=chain.anchor)
    await sealer.seal_once(force=True)
    await net.deposit(CONSUMER, 5_000)
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, b"\x2a" * 32)
    job = await get_aggregate(store, Job, job_id)
    assert job is not None and job.round is not None
    assigned = [k for k in validators if k.identity.id in job.round.validators]
    await net.vote_round(job_id, [(keys, True) for keys in assigned])
    await net.run(CONSUMER, "account.withdraw", {"amount": 1_500})
    net.advance(1)
    await sealer.seal_once(force=True)
    await cosign_all(net, validators)
    return History(net=net, validators=validators, chain=chain, job_id=job_id)


def build_sqlite_history(path: Path) -> History:
    """``build_history`` into a new SQLite store at ``path`` (the tamper tests' clean store)."""

    async def build() -> History:
        store = await SqliteEventStore.open(path)
        try:
            return await build_history(store)
        finally:
            await store.close()

    return asyncio.run(build())


async def cosign_all(net: LocalNetwork, validators: list[ValidatorKeys]) -> None:
    """Every validator replays the log as a witness and co-signs every head it checked."""
    records = await net.store.read_all(1, 10_000)
    for keys in validators[:2]:
        for envelope in make_cosign_envelopes(
            keys.identity, keys.bls_secret, records, issued_at_ns=net.now_ns
        ):
            await net.service.execute(envelope, now_ns=net.now_ns)

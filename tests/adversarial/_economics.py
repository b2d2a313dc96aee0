"""The economics simulation of issue 14: strategies, actors and the market they play in.

Every actor signs its own commands through the command bus (``LocalNetwork`` over the memory
store) with its own keys and accounts; nothing is reached into. A round: jailed nodes
that served their time unjail; the consumer submits jobs and the operators plant their
canaries (``_economics_watch``); every node (in a seeded random order) claims one job;
nodes do their work (or not) and commit; the assigned validators judge (the honest ones
with the real ``verify_result``), commit and reveal; the challenger proves wrong pass votes
and the operators reveal their canaries; the clock passes the result window and missed
claims and stalled rounds are cranked. The clock is simulated, so the default policy's
windows stand as they are.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.job import CLAIMED, FINISHED_STATES, RESULT_COMMITTED, SUBMITTED, Job
from domain.ledger import stake_account, unbonding_account, user_account
from domain.node import JAILED, Node
from domain.policy import SECOND_NS, LedgerPolicy
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, b64, make_validator_keys
from proofs.identity import Identity
from tests.adversarial import _economics_watch as watch
from tests.adversarial import _economics_work as work

REGION = "eu-west"
PRICE = 400
MAX_PRICE = 1_000
NODE_CAPITAL, NODE_STAKE = 20_000, 6_000
VALIDATOR_CAPITAL, VALIDATOR_STAKE = 10_000, 5_000
CONSUMER_CAPITAL = 10_000_000
PLANTER_CAPITAL = 100_000
COMPUTE_COST = 200
"""Off-ledger cost of computing one whole job (power, hardware): half the node's price."""
VERIFY_COST = 2
"""Off-ledger cost of one honest check of a result (a few items re-run)."""
JOB_DEADLINE_S = 3_600
REDUNDANCY = 3
SYBIL_NODES = 3
HONEST_NODES, HONEST_VALIDATORS, COLLUDING_VALIDATORS = 2, 4, 2
CLAIM_TRIES_MAX = 64
"""Open jobs a node looks at per round before it gives up claiming (a bound on the loop)."""

NODE_STRATEGIES = ("honest", "lazy", "copying", "vanishing", "colluding")


@dataclass
class Actor:
    """One economic actor: its strategy, the keys it signs with, what it put in, what it
    spent off the ledger, and what it did."""

    name: str
    strategy: str
    is_node: bool
    nodes: list[Identity] = field(default_factory=list)
    validators: list[ValidatorKeys] = field(default_factory=list)
    deposited: int = 0
    off_ledger_cost: float = 0.0
    claims: int = 0
    others: list[Identity] = field(default_factory=list)
    """Keys that are neither a market node nor a validator (a challenger, a planter's)."""

    @property
    def identities(self) -> list[Identity]:
        return [*self.nodes, *(v.identity for v in self.validators), *self.others]


@dataclass
class World:
    """The network, the actors, the uploaded objects (by SHA-256) and the jobs in play."""

    net: LocalNetwork
    rng: random.Random
    consumer: Identity
    actors: list[Actor]
    artifacts: dict[bytes, bytes] = field(default_factory=dict)
    open_jobs: list[str] = field(default_factory=list)
    all_jobs: list[str] = field(default_factory=list)
    node_actor: dict[str, Actor] = field(default_factory=dict)
    validator_actor: dict[str, Actor] = field(default_factory=dict)
    copy_sources: dict[str, tuple[bytes, bytes, bytes]] = field(default_factory=dict)
    """The latest honest result of each workload kind, which a copying node commits."""
    proofs: dict[bytes, bytes] = field(default_factory=dict)
    """Every committed result's proof object, by result commitment (what a challenger reads)."""
    deposits: int = 0
    watchers: watch.Watchers | None = None
    new_key: Callable[[], Identity] | None = None


async def build_world(seed: int, policy: LedgerPolicy) -> World:
    """Register every actor with its capital and stake; returns the world at time zero."""
    net = await LocalNetwork.start(MemoryEventStore(), policy=policy)
    ids = iter(range(1_000))

    def key() -> Identity:
        return Identity.from_seed(f"econ-{seed}-{next(ids)}".encode().ljust(32, b"\0"))

    actors = [Actor(f"honest-node-{i}", "honest", True) for i in range(HONEST_NODES)]
    actors += [Actor(s, s, True) for s in NODE_STRATEGIES[1:]]
    actors += [Actor(f"honest-validator-{i}", "honest", False) for i in range(HONEST_VALIDATORS)]
    actors += [Actor(s, s, False) for s in ("always-pass", "always-fail")]
    world = World(net, random.Random(seed), key(), actors, new_key=key)
    await _fund(world, world.consumer, CONSUMER_CAPITAL)
    validator_index = 1_000 * seed
    for actor in actors:
        if actor.is_node:
            count = SYBIL_NODES if actor.strategy == "vanishing" else 1
            for _ in range(count):
                node = key()
                actor.deposited += await _fund(world, node, NODE_CAPITAL // count)
                await net.register_active_node(
                    node, region=REGION, price=PRICE, stake=NODE_STAKE // count
                )
                actor.nodes.append(node)
                world.node_actor[node.id] = actor
        validators = 0 if actor.is_node else 1
        if actor.strategy == "colluding":
            validators = COLLUDING_VALIDATORS  # Sybil validators: each its own owner
        for _ in range(validators):
            keys = make_validator_keys(validator_index := validator_index + 1)
            actor.deposited += await _fund(world, keys.identity, VALIDATOR_CAPITAL)
            await net.register_validator(keys, stake=VALIDATOR_STAKE)
            actor.validators.append(keys)
            world.validator_actor[keys.identity.id] = actor
    await _add_watchers(world)
    return world


async def run_round(world: World, jobs: int) -> None:
    """One round of the market (see the module docstring)."""
    net = world.net
    started_ns = net.now_ns
    await _unjail(world)
    for _ in range(jobs):
        job_id = await _submit(world, work.WORKLOADS[len(world.all_jobs) % len(work.WORKLOADS)])
        world.open_jobs.append(job_id)
        world.all_jobs.append(job_id)
    await _plant_canaries(world, jobs)
    claimed = await _claim(world)
    await _work(world, claimed)
    await _vote(world)
    if world.watchers is not None:
        cost = await watch.watch(world.net, world.watchers, world.proofs)
        _get_actor(world, "challenger").off_ledger_cost += cost * VERIFY_COST
    net.now_ns = max(net.now_ns, started_ns + net.policy.result_window_ns + SECOND_NS)
    await _crank(world)


async def get_job(world: World, job_id: str) -> Job:
    job = await get_aggregate(world.net.store, Job, job_id)
    assert job is not None
    return job


async def _fund(world: World, identity: Identity, amount: int) -> int:
    await world.net.deposit(identity, amount)
    world.deposits += amount
    return amount


async def _submit(world: World, workload: dict[str, Any]) -> str:
    result = await world.net.run(world.consumer, "job.submit", _job_body(world, workload))
    return result.subject


def _job_body(world: World, workload: dict[str, Any]) -> dict[str, Any]:
    """A job of ``workload`` at the policy's minimum redundancy (3 where it names none)."""
    net = world.net
    return {
        "workload": workload,
        "max_price": MAX_PRICE,
        "region": REGION,
        "redundancy": getattr(net.policy, "redundancy_min", REDUNDANCY),
        "deadline_ns": net.now_ns + JOB_DEADLINE_S * SECOND_NS,
    }


async def _add_watchers(world: World) -> None:
    """The challenger and the canary planter (the operators' keys and accounts)."""
    assert world.new_key is not None
    challenger, planter = world.new_key(), world.new_key()
    world.watchers = watch.Watchers(challenger=challenger, planter_consumer=planter)
    world.actors.append(Actor("challenger", "challenger", False, others=[challenger]))
    world.actors.append(Actor("planter", "planter", False, others=[planter]))
    _get_actor(world, "planter").deposited += await _fund(world, planter, PLANTER_CAPITAL)


async def _plant_canaries(world: World, jobs: int) -> None:
    """The operators' canaries for this round's jobs, each with a fresh planter node."""
    watchers = world.watchers
    if watchers is None:
        return
    planter = _get_actor(world, "planter")
    for _ in range(watch.compute_canary_count(watchers, jobs, world.net.policy.canary_rate_bps)):
        assert world.new_key is not None
        node = world.new_key()
        planter.deposited += await _fund(world, node, NODE_CAPITAL)
        await world.net.register_active_node(node, region=REGION, price=PRICE, stake=NODE_STAKE)
        planter.others.append(node)
        job_id = await watch.plant_canary(world.net, watchers, node, _job_body(world, work.MATMUL))
        bundle = watch.make_canary_bundle(job_id, node)
        world.artifacts[bundle.artifact_digest] = bundle.artifact
        world.artifacts[bundle.proof_digest] = bundle.proof
        world.proofs[bundle.commitment] = bundle.proof
        digests = (bundle.commitment, bundle.artifact_digest, bundle.proof_digest)
        await _commit(world, node, job_id, digests)
        world.open_jobs.append(job_id)
        world.all_jobs.append(job_id)


def _get_actor(world: World, name: str) -> Actor:
    return next(a for a in world.actors if a.name == name)


async def _unjail(world: World) -> None:
    for node_id, actor in world.node_actor.items():
        node = await get_aggregate(world.net.store, Node, node_id)
        if node is not None and node.state == JAILED and node.jailed_until_ns <= world.net.now_ns:
            identity = next(n for n in actor.nodes if n.id == node_id)
            await world.net.run(identity, "node.unjail", {"node_id": node_id})


async def _claim(world: World) -> list[tuple[Identity, str]]:
    """Every node, in a seeded random order, claims the first open job it may."""
    nodes = [n for actor in world.actors for n in actor.nodes]
    world.rng.shuffle(nodes)
    claimed = []
    for node in nodes:
        for job_id in world.open_jobs[:CLAIM_TRIES_MAX]:
            if (await get_job(world, job_id)).state != SUBMITTED:
                continue
            try:
                await world.net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
            except Rejection:
                continue
            world.node_actor[node.id].claims += 1
            claimed.append((node, job_id))
            break
    return claimed


async def _work(world: World, claimed: list[tuple[Identity, str]]) -> None:
    """Honest nodes first (a copying node copies a result it has seen), then the others."""
    order = sorted(claimed, key=lambda c: world.node_actor[c[0].id].strategy != "honest")
    for node, job_id in order:
        actor = world.node_actor[node.id]
        job = await get_job(world, job_id)
        workload = {"kind": job.workload.kind, "params": dict(job.workload.params)}
        result = _do(world, actor.strategy, node, job_id, workload)
        actor.off_ledger_cost += result.computed_fraction * COMPUTE_COST
        if result.bundle is not None:
            bundle = result.bundle
            world.artifacts[bundle.artifact_digest] = bundle.artifact
            world.artifacts[bundle.proof_digest] = bundle.proof
            world.proofs[bundle.commitment] = bundle.proof
            digests = (bundle.commitment, bundle.artifact_digest, bundle.proof_digest)
            if actor.strategy == "honest":
                world.copy_sources[job.workload.kind] = digests
            await _commit(world, node, job_id, digests)
        elif actor.strategy == "copying" and job.workload.kind in world.copy_sources:
            await _commit(world, node, job_id, world.copy_sources[job.workload.kind])


def _do(
    world: World, strategy: str, node: Identity, job_id: str, workload: dict[str, Any]
) -> work.Work:
    if strategy == "honest":
        return work.do_honest(job_id, node, workload)
    if strategy == "lazy":
        return work.do_lazy(job_id, node, workload, world.rng)
    if strategy == "colluding":
        return work.do_garbage(job_id, node, workload, world.rng)
    return work.Work(None, 0.0)  # copying (commits another's digests), vanishing


async def _commit(
    world: World, node: Identity, job_id: str, digests: tuple[bytes, bytes, bytes]
) -> None:
    commitment, artifact_digest, proof_digest = digests
    await world.net.run(
        node,
        "job.commit_result",
        {
            "job_id": job_id,
            "commitment": b64(commitment),
            "artifact_digest": b64(artifact_digest),
            "proof_digest": b64(proof_digest),
        },
    )


async def _vote(world: World) -> None:
    """Every assigned validator of every job under a vote decides by its strategy and
    commits; the clock passes the commit window; the votes are revealed in a seeded random
    order until each job is decided."""
    net = world.net
    await net.run_beacon()  # every validator contributes: the waiting draws are made
    ballots: list[tuple[str, ValidatorKeys, bool, bytes]] = []
    deadline = net.now_ns
    for job_id in world.open_jobs:
        job = await get_job(world, job_id)
        if job.state != RESULT_COMMITTED or job.round is None:
            continue
        if job.round.is_commit_phase_over(net.now_ns):
            continue
        deadline = max(deadline, job.round.commit_deadline_ns + 1)
        voters = [v for v in job.validators if v not in job.round.commits]
        world.rng.shuffle(voters)
        for validator_id in voters:
            actor = world.validator_actor[validator_id]
            keys = next(k for k in actor.validators if k.identity.id == validator_id)
            passed = _judge(world, actor, job)
            salt = await net.commit_vote(keys, job_id, passed)
            ballots.append((job_id, keys, passed, salt))
    net.now_ns = max(net.now_ns, deadline)
    for job_id, keys, passed, salt in ballots:
        if (await get_job(world, job_id)).state != RESULT_COMMITTED:
            continue
        await net.reveal_vote(keys, job_id, passed, salt)


def _judge(world: World, actor: Actor, job: Job) -> bool:
    strategy = actor.strategy
    if strategy == "always-pass":
        return True
    if strategy == "always-fail":
        return False
    if strategy == "colluding" and world.node_actor.get(job.node_id) is actor:
        return True
    actor.off_ledger_cost += VERIFY_COST
    return work.verify_job(job, world.artifacts) == "ok"


async def _crank(world: World) -> None:
    """The consumer cranks what is overdue: missed result windows, rounds whose reveal
    window closed, and jobs past their deadline; finished jobs leave the open list."""
    net = world.net
    still_open = []
    for job_id in world.open_jobs:
        job = await get_job(world, job_id)
        overdue = (
            (job.state == CLAIMED and net.now_ns > job.result_due_ns)
            or (
                job.state == RESULT_COMMITTED
                and job.round is not None
                and job.round.is_over(net.now_ns)
            )
            or (job.state == SUBMITTED and net.now_ns > job.deadline_ns)
        )
        if overdue:
            await net.run(world.consumer, "job.expire", {"job_id": job_id})
            job = await get_job(world, job_id)
        if job.state not in FINISHED_STATES:
            still_open.append(job_id)
    world.open_jobs = still_open


def get_wealth_accounts(actor: Actor) -> list[str]:
    """Every account that holds an actor's money: its keys' own, stake and unbonding."""
    return [
        account(identity.id)
        for identity in actor.identities
        for account in (user_account, stake_account, unbonding_account)
    ]

"""Stateful property test of the whole ledger, checked by an independent auditor.

Hypothesis drives random sequences of deposits, withdrawals, job submissions, claims,
results, verdicts (settlement or rejection with slashing), expiries, reassignments, unbonds
and time. After every step the auditor re-derives the money from the raw log, without the
aggregates' code, and checks: all balances sum to zero; no account but the boundary is
negative; every hold is closed at most once; every finished job has a closed escrow; every
slash cites evidence; node stake equals its stake account; and rebuilding every aggregate
from the global log in position order equals rebuilding it from its own stream.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
from collections import Counter, defaultdict
from typing import Any

import msgspec
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from adapters.store.memory import MemoryEventStore
from domain.errors import Rejection
from domain.events import decode_event, rebuild
from domain.job import CLAIMED, FINISHED_STATES, RESULT_COMMITTED, SUBMITTED, Job
from domain.ledger import BOUNDARY_ACCOUNT, stake_account
from domain.node import Node
from domain.policy import LedgerPolicy
from domain.records import GENESIS_HASH, Head, Record, verify_chain
from domain.validators import Validator
from flopledger.network import LocalNetwork, ValidatorKeys, make_validator_keys
from proofs.identity import Identity

EXAMPLES = int(os.environ.get("FLOP_STATEFUL_EXAMPLES", "500"))
NODES = [
    (Identity.from_seed(bytes([40 + i]) * 32), region)
    for i, region in enumerate(("eu-west", "eu-north", "us-east"))
]
CONSUMERS = [Identity.from_seed(bytes([50 + i]) * 32) for i in range(2)]
VALIDATORS = [make_validator_keys(100 + i) for i in range(3)]
POLICY = LedgerPolicy(
    node_stake_min=500,
    validator_stake_min=100,
    region_stagger_ns=5 * 10**9,
    result_window_ns=60 * 10**9,
    reassign_attempts_max=2,
    # Stake stays slashable for a validator's last round and the fraud window after it
    # (issue 14, attack 5: find_policy_problem): no fraud proofs are played here, so the
    # window is 0 and unbonding covers the round's windows with replacements (3 x 120 s).
    unbonding_period_ns=360 * 10**9,
    jail_period_ns=30 * 10**9,
    fraud_window_ns=0,
)
MONEY_EVENTS = {"Debited", "Credited", "HoldPlaced", "HoldPosted", "HoldVoided"}


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        template, next_nonce = _template_network()
        self.net = LocalNetwork(
            store=template.store.copy(),
            policy=template.policy,  # type: ignore[attr-defined]
            operator=template.operator,
            now_ns=template.now_ns,
            _nonces=itertools.count(next_nonce),
        )
        self.auditor = Auditor()
        self.jobs: list[str] = []
        self.commits: dict[tuple[str, str], tuple[bool, bytes, bytes]] = {}
        self.rejections: Counter[str] = Counter()

    def teardown(self) -> None:
        for event_type in (
            "JobSettled",
            "JobRejected",
            "JobRefunded",
            "JobReassigned",
            "NodeSlashed",
            "JobClaimed",
            "StakeWithdrawn",
            "NodeUnjailed",
            "VerdictCommitted",
            "VerdictRecorded",
            "ValidatorsReplaced",
            "ValidatorSlashed",
        ):
            if self.teardown_stats()[event_type]:
                event(f"reached {event_type}")
        for code in self.rejections:
            event(f"rejected {code}")
        self.loop.close()

    def _run(self, coroutine: Any) -> Any:
        try:
            return self.loop.run_until_complete(coroutine)
        except Rejection as rejection:
            self.rejections[rejection.code] += 1
            return None

    @rule(consumer=st.sampled_from(CONSUMERS), amount=st.integers(1, 5_000))
    def deposit(self, consumer: Identity, amount: int) -> None:
        self._run(self.net.deposit(consumer, amount))

    @rule(consumer=st.sampled_from(CONSUMERS), amount=st.integers(1, 3_000))
    def withdraw(self, consumer: Identity, amount: int) -> None:
        self._run(self.net.run(consumer, "account.withdraw", {"amount": amount}))

    @rule(
        consumer=st.sampled_from(CONSUMERS),
        max_price=st.integers(100, 2_000),
        region=st.sampled_from(["eu-west", "us-east", "ap-south"]),
        deadline_s=st.integers(1, 600),
    )
    def submit_job(self, consumer: Identity, max_price: int, region: str, deadline_s: int) -> None:
        job_id = self._run(
            self.net.submit_job(consumer, region=region, max_price=max_price, deadline_s=deadline_s)
        )
        if job_id:
            self.jobs.append(job_id)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), node=st.sampled_from(NODES))
    def claim(self, data: st.DataObject, node: tuple[Identity, str]) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        self._run(self.net.run(node[0], "job.claim", {"job_id": job_id, "node_id": node[0].id}))

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), node=st.sampled_from(NODES), by_claimant=st.booleans())
    def commit_result(
        self, data: st.DataObject, node: tuple[Identity, str], by_claimant: bool
    ) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        job = self.loop.run_until_complete(_get(self.net, Job, job_id))
        committer = node[0]
        if by_claimant and job is not None and job.node_id:
            committer = next(n for n, _ in NODES if n.id == job.node_id)
        self._run(self.net.commit_result(committer, job_id, bytes([len(self.jobs) % 256]) * 32))

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), keys=st.sampled_from(VALIDATORS), passed=st.booleans())
    def commit_verdict(self, data: st.DataObject, keys: ValidatorKeys, passed: bool) -> None:
        """One validator commits a salted verdict (assigned or not, in the window or not)."""
        job_id = data.draw(st.sampled_from(self.jobs))
        job = self.loop.run_until_complete(_get(self.net, Job, job_id))
        if job is None or job.result is None:
            return
        salt = self._run(self.net.commit_vote(keys, job_id, passed))
        if salt is not None:
            self.commits[(job_id, keys.identity.id)] = (passed, salt, job.result.commitment)

    @precondition(lambda self: self.commits)
    @rule(data=st.data(), honest=st.booleans())
    def reveal_verdict(self, data: st.DataObject, honest: bool) -> None:
        """Reveal a recorded commit (or, dishonestly, the opposite verdict with its salt),
        signed over the result it was committed on: after the job was rejected and
        reassigned, that result is stale and the ledger must refuse the reveal."""
        job_id, validator_id = data.draw(st.sampled_from(sorted(self.commits)))
        passed, salt, commitment = self.commits[(job_id, validator_id)]
        keys = next(k for k in VALIDATORS if k.identity.id == validator_id)
        verdict = passed if honest else not passed
        reason = "" if verdict else "x"
        self._run(
            self.net.reveal_vote(keys, job_id, verdict, salt, reason, result_commitment=commitment)
        )

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), keys=st.sampled_from(VALIDATORS), reporter=st.sampled_from(CONSUMERS))
    def equivocate_and_report(
        self, data: st.DataObject, keys: ValidatorKeys, reporter: Identity
    ) -> None:
        """A validator signs both verdicts on one result; anyone reports it (once)."""
        job_id = data.draw(st.sampled_from(self.jobs))
        job = self.loop.run_until_complete(_get(self.net, Job, job_id))
        if job is None or job.result is None:
            return
        self._run(self.net.report_equivocation(reporter, keys, job_id, job.result.commitment))

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), consumer=st.sampled_from(CONSUMERS))
    def expire(self, data: st.DataObject, consumer: Identity) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        self._run(self.net.run(consumer, "job.expire", {"job_id": job_id}))

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def progress_job(self, data: st.DataObject) -> None:
        """Take one job one to four natural steps forward, choosing each detail at random."""
        job_id = data.draw(st.sampled_from(self.jobs))
        for _ in range(data.draw(st.integers(1, 4))):
            self._step_job(data, job_id)

    def _step_job(self, data: st.DataObject, job_id: str) -> None:
        job = self.loop.run_until_complete(_get(self.net, Job, job_id))
        if job is None:
            return
        if job.state == SUBMITTED:
            self.net.advance(data.draw(st.sampled_from([0, 5, 10])))
            node = data.draw(st.sampled_from(NODES))[0]
            self._run(self.net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id}))
        elif job.state == CLAIMED:
            if data.draw(st.booleans()):
                claimant = next(n for n, _ in NODES if n.id == job.node_id)
                self._run(self.net.commit_result(claimant, job_id, bytes([7]) * 32))
            else:
                self.net.advance(61)
                self._run(self.net.run(CONSUMERS[0], "job.expire", {"job_id": job_id}))
        elif job.state == RESULT_COMMITTED:
            assigned = [k for k in VALIDATORS if k.identity.id in job.validators]
            votes = [(k, data.draw(st.booleans())) for k in assigned if data.draw(st.booleans())]
            self._run(self.net.vote_round(job_id, votes, reason="mismatch"))

    @rule(node=st.sampled_from(NODES), amount=st.integers(1, 300))
    def unbond(self, node: tuple[Identity, str], amount: int) -> None:
        self._run(self.net.run(node[0], "stake.unbond", {"target": node[0].id, "amount": amount}))

    @rule(node=st.sampled_from(NODES))
    def withdraw_stake_or_unjail(self, node: tuple[Identity, str]) -> None:
        self._run(self.net.run(node[0], "stake.withdraw", {"target": node[0].id}))
        self._run(self.net.run(node[0], "node.unjail", {"node_id": node[0].id}))

    @rule(seconds=st.sampled_from([1, 5, 30, 61, 300]))
    def advance_time(self, seconds: int) -> None:
        self.net.advance(seconds)

    @invariant()
    def audit(self) -> None:
        records = self.loop.run_until_complete(
            self.net.store.read_all(self.auditor.head.position + 1, 10_000)
        )
        self.auditor.feed(records)

    def teardown_stats(self) -> Counter[str]:
        records = self.loop.run_until_complete(self.net.store.read_all(1, 10_000))
        return Counter(r.event_type for r in records)


async def _get(net: LocalNetwork, cls: type, aggregate_id: str) -> Any:
    return rebuild(await net.store.read_stream(aggregate_id), cls)


class Auditor:
    """Re-derives money and aggregates from raw records, independently of the services."""

    def __init__(self) -> None:
        self.head = Head(position=0, hash=GENESIS_HASH)
        self.balances: defaultdict[str, int] = defaultdict(int)
        self.holds: dict[str, tuple[str, str, int]] = {}
        self.closed: Counter[str] = Counter()
        self.streams: defaultdict[str, list[Record]] = defaultdict(list)
        self.aggregates: dict[str, Any] = {}

    def feed(self, records: list[Record]) -> None:
        self.head = verify_chain(records, self.head)
        for record in records:
            self.streams[record.stream_id].append(record)
            self.aggregates[record.stream_id] = decode_event(record).mutate(
                self.aggregates.get(record.stream_id)
            )
            if record.stream_type == "account" and record.event_type in MONEY_EVENTS:
                self._book(record)
        self._check({r.stream_id for r in records})

    def _book(self, record: Record) -> None:
        data = msgspec.json.decode(record.data)
        if record.event_type == "Debited":
            self.balances[record.stream_id] -= data["amount"]
        elif record.event_type == "Credited":
            self.balances[record.stream_id] += data["amount"]
        elif record.event_type == "HoldPlaced" and data["side"] == "debit":
            self.holds[data["transfer_id"]] = (
                record.stream_id,
                data["counterparty"],
                data["amount"],
            )
        elif record.event_type in ("HoldPosted", "HoldVoided"):
            debit, credit, amount = self.holds[data["transfer_id"]]
            if debit != record.stream_id:
                return
            self.closed[data["transfer_id"]] += 1
            if record.event_type == "HoldPosted":
                self.balances[debit] -= amount
                self.balances[credit] += amount

    def _check(self, touched: set[str]) -> None:
        assert sum(self.balances.values()) == 0, "money must be conserved"
        negative = {a: b for a, b in self.balances.items() if b < 0 and a != BOUNDARY_ACCOUNT}
        assert not negative, f"accounts below zero: {negative}"
        assert all(n == 1 for n in self.closed.values()), f"holds closed twice: {self.closed}"
        for stream_id in touched:
            aggregate = self.aggregates[stream_id]
            from_stream = rebuild(self.streams[stream_id], type(aggregate))
            assert _state(from_stream) == _state(aggregate), f"replay differs for {stream_id}"
            if isinstance(aggregate, Job) and aggregate.state in FINISHED_STATES:
                assert self.closed[aggregate.escrow_hold_id] == 1, f"{stream_id} escrow open"
                assert self.balances[f"escrow:{stream_id}"] == 0
        for stream_id, aggregate in self.aggregates.items():
            if isinstance(aggregate, Node):
                assert aggregate.stake == self.balances[stake_account(stream_id)]
                assert all(
                    msgspec.json.decode(r.data)["evidence"]
                    for r in self.streams[stream_id]
                    if r.event_type == "NodeSlashed"
                )
            if isinstance(aggregate, Validator):
                assert aggregate.stake == self.balances[stake_account(stream_id)]
                keys = [
                    msgspec.json.decode(r.data)["evidence_key"]
                    for r in self.streams[stream_id]
                    if r.event_type == "ValidatorSlashed"
                ]
                assert len(keys) == len(set(keys)), "one piece of evidence slashed twice"


@functools.cache
def _template_network() -> tuple[LocalNetwork, int]:
    """Nodes, validators and funded consumers, built once and forked for every example."""
    net = LocalNetwork.create(MemoryEventStore(), policy=POLICY)

    async def build() -> None:
        for node, region in NODES:
            await net.deposit(node, 5_000)
            await net.register_active_node(node, region=region, price=300, stake=1_000)
        for keys in VALIDATORS:
            await net.deposit(keys.identity, 500)
            await net.register_validator(keys, stake=200)
        for consumer in CONSUMERS:
            await net.deposit(consumer, 6_000)

    asyncio.run(build())
    return net, next(net._nonces)


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


LedgerMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=30, deadline=None
)
TestLedgerMachine = LedgerMachine.TestCase

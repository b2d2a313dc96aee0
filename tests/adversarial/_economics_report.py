"""What the economics simulation measures, read from the ledger and the log afterwards.

Money per actor: the balances of every account its keys hold (own, bonded stake,
unbonding stake) at the end, less what it deposited (``ledger``), less what it spent off
the ledger on computing and checking (``cost``): ``net``. Its fair comparison is what the
same capital earns honestly in the same roles (``baseline``): an honest node's net for the
capital of one node (a Sybil owner splits one node's capital and stake over its nodes) plus
an honest validator's net for each validator it runs.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from domain.events import decode_event
from domain.ledger import BOUNDARY_ACCOUNT, BURN_ACCOUNT, TREASURY_ACCOUNT, user_account
from domain.records import Record
from domain.services.queries import get_balances
from tests.adversarial._economics import CONSUMER_CAPITAL, Actor, World, get_wealth_accounts

WATCHERS = {"challenger": "fraud proofs", "planter": "operators' canaries"}
"""Actors outside the comparison: what they do, in the table's roles column."""
TABLE_ENV = "FLOP_ECON_TABLE"
TABLE_FILE = "flopledger-economics.txt"
READ_BATCH = 1_000


@dataclass
class Outcome:
    """One actor's result in one seeded run."""

    actor: Actor
    ledger: int
    passed: int
    rejected: int
    slashed: int
    forfeited: int

    @property
    def net(self) -> float:
        return self.ledger - self.actor.off_ledger_cost


async def read_log(world: World) -> list[Record]:
    records: list[Record] = []
    while batch := await world.net.store.read_all(len(records) + 1, READ_BATCH):
        records.extend(batch)
    return records


async def measure(world: World, records: list[Record]) -> list[Outcome]:
    """Each actor's money and record, from the balances and the log."""
    balances = {k: a.balance for k, a in (await get_balances(world.net.store)).items()}
    passed: dict[str, int] = defaultdict(int)
    rejected: dict[str, int] = defaultdict(int)
    slashed: dict[str, int] = defaultdict(int)
    forfeited: dict[str, int] = defaultdict(int)
    claimer: dict[str, str] = {}
    for record in records:
        if record.event_type == "JobClaimed":
            claimer[record.stream_id] = decode_event(record).node_id  # type: ignore[attr-defined]
        elif record.event_type == "JobVerified":
            passed[claimer[record.stream_id]] += 1
        elif record.event_type == "JobRejected":
            rejected[claimer[record.stream_id]] += 1
        elif record.event_type.endswith("Slashed"):
            slashed[record.stream_id] += decode_event(record).amount  # type: ignore[attr-defined]
        elif record.event_type == "ClaimBondForfeited":
            forfeited[record.stream_id] += decode_event(record).amount  # type: ignore[attr-defined]
    outcomes = []
    for actor in world.actors:
        ids = [i.id for i in actor.identities]
        wealth = sum(balances.get(account, 0) for account in get_wealth_accounts(actor))
        outcomes.append(
            Outcome(
                actor=actor,
                ledger=wealth - actor.deposited,
                passed=sum(passed[i] for i in ids),
                rejected=sum(rejected[i] for i in ids),
                slashed=sum(slashed[i] for i in ids),
                forfeited=sum(forfeited[i] for i in ids),
            )
        )
    return outcomes


async def find_money_problems(world: World) -> list[str]:
    """Money is conserved: the accounts inside the ledger hold exactly what was deposited
    (the boundary account is its mirror), and every balance sums to zero."""
    balances = {k: a.balance for k, a in (await get_balances(world.net.store)).items()}
    problems = []
    if sum(balances.values()) != 0:
        problems.append(f"balances sum to {sum(balances.values())}, not 0")
    inside = sum(v for k, v in balances.items() if k != BOUNDARY_ACCOUNT)
    if inside != world.deposits:
        problems.append(f"accounts hold {inside}, deposits were {world.deposits}")
    return problems


@dataclass(frozen=True)
class Row:
    """One strategy's line of the table: per actor, summed over the seeds."""

    strategy: str
    roles: str
    actors: int
    claims: float
    passed: float
    rejected: float
    slashed: float
    forfeited: float
    ledger: float
    cost: float
    net: float
    baseline: float


def summarise(runs: Iterable[list[Outcome]]) -> list[Row]:
    """Per strategy and role mix, each actor's mean over actors, summed over runs."""
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    runs = list(runs)
    for outcomes in runs:
        for outcome in outcomes:
            groups[(outcome.actor.strategy, _roles(outcome.actor))].append(outcome)
    honest_node = _mean_net(groups.get(("honest", "node"), []), len(runs))
    honest_validator = _mean_net(groups.get(("honest", "validator"), []), len(runs))
    rows = []
    for (strategy, roles), outcomes in groups.items():
        actor = outcomes[0].actor
        per = len(outcomes) / len(runs)
        baseline = (honest_node if actor.nodes else 0.0) + honest_validator * len(actor.validators)
        rows.append(
            Row(
                strategy=strategy,
                roles=roles,
                actors=int(per),
                claims=sum(o.actor.claims for o in outcomes) / per,
                passed=sum(o.passed for o in outcomes) / per,
                rejected=sum(o.rejected for o in outcomes) / per,
                slashed=sum(o.slashed for o in outcomes) / per,
                forfeited=sum(o.forfeited for o in outcomes) / per,
                ledger=sum(o.ledger for o in outcomes) / per,
                cost=sum(o.actor.off_ledger_cost for o in outcomes) / per,
                net=sum(o.net for o in outcomes) / per,
                baseline=baseline,
            )
        )
    return sorted(rows, key=lambda r: (r.strategy in WATCHERS, r.roles, r.strategy != "honest"))


def format_table(rows: list[Row], title: str, world_lines: list[str]) -> str:
    header = (
        f"{'strategy':<12} {'roles':<22} {'actors':>6} {'claims':>7} {'passed':>7} "
        f"{'rejected':>8} {'slashed':>8} {'bonds':>6} {'ledger':>9} {'cost':>8} {'net':>9} "
        f"{'honest':>9}"
    )
    lines = [title, header, "-" * len(header)]
    for r in rows:
        baseline = "-" if r.strategy in WATCHERS else f"{r.baseline:.0f}"
        lines.append(
            f"{r.strategy:<12} {r.roles:<22} {r.actors:>6} {r.claims:>7.0f} {r.passed:>7.0f} "
            f"{r.rejected:>8.0f} {r.slashed:>8.0f} {r.forfeited:>6.0f} {r.ledger:>9.0f} "
            f"{r.cost:>8.0f} "
            f"{r.net:>9.0f} {baseline:>9}"
        )
    return "\n".join([*lines, *world_lines, ""])


async def describe_world(world: World) -> list[str]:
    """The consumer's, treasury's and burn's balances, for the reader of the table."""
    balances = {k: a.balance for k, a in (await get_balances(world.net.store)).items()}
    consumer = balances.get(user_account(world.consumer.id), 0) - CONSUMER_CAPITAL
    return [
        f"consumer {consumer:+d}, treasury {balances.get(TREASURY_ACCOUNT, 0)}, "
        f"burned {balances.get(BURN_ACCOUNT, 0)} (one run)"
    ]


def write_table(text: str) -> str:
    """Write the table where the lead can read it: ``$FLOP_ECON_TABLE`` or the temp dir."""
    path = os.environ.get(TABLE_ENV) or os.path.join(tempfile.gettempdir(), TABLE_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _roles(actor: Actor) -> str:
    if actor.strategy in WATCHERS:
        return WATCHERS[actor.strategy]
    parts = []
    for count, name in ((len(actor.nodes), "node"), (len(actor.validators), "validator")):
        if count:
            parts.append(name if count == 1 else f"{count} {name}s")
    return " + ".join(parts)


def _mean_net(outcomes: list[Outcome], runs: int) -> float:
    return sum(o.net for o in outcomes) / (len(outcomes) / runs) if outcomes else 0.0

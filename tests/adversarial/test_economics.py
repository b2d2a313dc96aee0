"""Issue 14, economics simulated: under the default policy cheating earns less than honesty.

A seeded market (``tests/adversarial/_economics.py``) of honest, lazy, copying, vanishing
and colluding nodes and honest, always-pass, always-fail and colluding validators, each
an actor with its own keys and accounts, plays rounds of real inference jobs through the
command bus: real results, real proofs, real BLS verdicts, the validators' real check.
Afterwards, per actor: its money on the ledger less its deposits and its off-ledger costs
(``_economics_report.py`` says how it is compared fairly). Asserted: every dishonest
strategy nets less than the honest one with the same capital and roles; money is
conserved; every slash cites evidence that checks. The table is printed (``-s``) and
written to ``$FLOP_ECON_TABLE`` (default: the temp dir's ``flopledger-economics.txt``).

The simulation runs once per test process (``get_simulation``); each test reads its part.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

import pytest

from domain.policy import LedgerPolicy
from tests.adversarial import _economics as sim
from tests.adversarial import _economics_evidence as evidence_check
from tests.adversarial import _economics_report as report

SEEDS = (1, 2, 3)
ROUNDS = 12
JOBS_PER_ROUND = 10
POLICY = LedgerPolicy()
"""The default policy, windows included: the simulated clock moves past them as needed."""

DISHONEST = [
    pytest.param("lazy", "node"),
    pytest.param("copying", "node"),
    pytest.param("vanishing", "3 nodes"),
    pytest.param("colluding", "node + 2 validators"),
    pytest.param("always-pass", "validator"),
    pytest.param("always-fail", "validator"),
]


@dataclass(frozen=True)
class Simulation:
    rows: list[report.Row]
    money_problems: list[str]
    evidence_problems: list[str]
    slashes: int
    table: str


@functools.cache
def get_simulation() -> Simulation:
    """Every seed's market played out, measured, and the table printed and written."""
    return asyncio.run(_simulate())


async def _simulate() -> Simulation:
    runs, money, evidence, notes, slashes = [], [], [], [], 0
    for seed in SEEDS:
        world = await sim.build_world(seed, POLICY)
        for index in range(ROUNDS):
            await sim.run_round(world, JOBS_PER_ROUND)
            found = await report.find_money_problems(world)
            money += [f"seed {seed}, round {index + 1}: {p}" for p in found]
        records = await report.read_log(world)
        found = await evidence_check.find_evidence_problems(world, records)
        evidence += [f"seed {seed}: {p}" for p in found]
        slashes += sum(r.event_type.endswith("Slashed") for r in records)
        runs.append(await report.measure(world, records))
        notes += [f"seed {seed}: {line}" for line in await report.describe_world(world)]
    rows = report.summarise(runs)
    title = (
        f"economics: {len(SEEDS)} seeds x {ROUNDS} rounds x {JOBS_PER_ROUND} jobs, default "
        "policy; per actor, summed over seeds; net = ledger - off-ledger cost; honest = "
        "what the same capital and roles earn honestly"
    )
    table = report.format_table(rows, title, notes)
    path = report.write_table(table)
    print(f"\n{table}(written to {path})")
    return Simulation(rows, money, evidence, slashes, table)


@pytest.mark.parametrize(("strategy", "roles"), DISHONEST)
def test_a_dishonest_strategy_nets_less_than_honesty(strategy: str, roles: str) -> None:
    row = next(r for r in get_simulation().rows if (r.strategy, r.roles) == (strategy, roles))
    assert row.net < row.baseline, (
        f"{strategy} ({roles}) nets {row.net:.0f}, honest {row.baseline:.0f}"
    )


def test_money_is_conserved() -> None:
    """After every round the accounts inside the ledger hold exactly what was deposited."""
    assert get_simulation().money_problems == []


def test_every_slash_cites_evidence_that_checks() -> None:
    simulation = get_simulation()
    assert simulation.slashes > 0  # the market did slash: the check below checked something
    assert simulation.evidence_problems == []

"""The agent's intake forgets a job for good when the ledger says it can never be claimed
(a job its consumer cancelled, rules v5, or one finished), and retries one merely busy."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ledger_api.client import Conflict
from domain.commands import ClaimJob
from node_agent.config import AgentConfig
from node_agent.intake import Intake

NOW_NS = 1_000 * 1_000_000_000


class RefusingLedger:
    def __init__(self, code: str) -> None:
        self.code = code
        self.claims: list[str] = []

    async def send(self, command: ClaimJob) -> None:
        self.claims.append(command.job_id)
        raise Conflict(409, {"code": self.code, "detail": "refused"})


class IdleRunner:
    def is_running(self, job_id: str) -> bool:
        return False

    def is_handed_back(self, job_id: str) -> bool:
        return False


def intake(tmp_path: Path, ledger: RefusingLedger) -> Intake:
    config = AgentConfig(region="eu-west", price=100, api_url="http://api", state_dir=tmp_path)
    return Intake(
        config,
        node_id="n",
        gpu_class="datacenter",
        ledger=ledger,  # type: ignore[arg-type]
        runner=IdleRunner(),  # type: ignore[arg-type]
        clock_ns=lambda: NOW_NS,
    )


@pytest.mark.parametrize("code", ["job_cancelled", "job_refunded", "job_settled"])
async def test_a_finished_job_is_not_claimed_again(tmp_path: Path, code: str) -> None:
    ledger = RefusingLedger(code)
    agent = intake(tmp_path, ledger)
    agent._consider("job-1", "eu-west", NOW_NS, None)
    assert not await agent._claim("job-1")
    agent._consider("job-1", "eu-west", NOW_NS, None)  # heard of again: an old offer, a poll
    assert "job-1" not in agent._candidates
    assert ledger.claims == ["job-1"]


async def test_a_job_in_another_state_is_tried_again_later(tmp_path: Path) -> None:
    ledger = RefusingLedger("too_much_contention")
    agent = intake(tmp_path, ledger)
    agent._consider("job-1", "eu-west", NOW_NS, None)
    assert not await agent._claim("job-1")
    assert "job-1" in agent._candidates

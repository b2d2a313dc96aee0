"""The challenger duty: an honest validator daemon outvoted by two lazy validators that pass
a corrupted matmul proves the pass wrong with a fraud proof; the lazy pair is slashed and
the daemon's owner is paid the challenger's reward. An honest result is never challenged."""

from __future__ import annotations

from pathlib import Path

from domain.job import SETTLED, Job
from domain.ledger import user_account
from domain.policy import BPS
from domain.services.queries import get_aggregate, get_balances
from domain.validators import Validator
from flopledger.network import LocalNetwork
from tests.unit.validator.test_daemon import (
    COPIER,
    EU,
    KEYS,
    DictArtifacts,
    Harness,
    _corrupted,
    _honest,
    _network,
    _records,
)

HONEST, LAZY = 0, (1, 2)
VALIDATOR_STAKE = 1_000


async def _lazy_pass(net: LocalNetwork, job_id: str, harness: Harness) -> None:
    """The honest daemon commits and reveals its verdict; the lazy pair passes unread."""
    daemon = harness.daemons[HONEST]
    salts = [await net.commit_vote(KEYS[i], job_id, True) for i in LAZY]
    await daemon.follow(_records(net, daemon.checkpoint.position))
    await daemon.tick()  # verifies, commits: the commit phase is over (all committed)
    await daemon.follow(_records(net, daemon.checkpoint.position))
    await daemon.tick()  # reveals
    for index, salt in zip(LAZY, salts, strict=True):
        job = await get_aggregate(net.store, Job, job_id)
        assert job is not None
        if job.state == SETTLED:
            return
        await net.reveal_vote(KEYS[index], job_id, True, salt)


async def _stake(net: LocalNetwork, index: int) -> int:
    validator = await get_aggregate(net.store, Validator, KEYS[index].identity.id)
    assert validator is not None
    return validator.stake


async def _owner_balance(net: LocalNetwork, index: int) -> int:
    accounts = await get_balances(net.store)
    account = accounts.get(user_account(KEYS[index].identity.id))
    return account.balance if account else 0


async def test_an_outvoted_honest_validator_proves_the_pass_wrong(tmp_path: Path) -> None:
    net, artifacts = await _network(), DictArtifacts()
    harness = Harness(net, artifacts, tmp_path)
    cheat = await _corrupted(net, COPIER, artifacts)
    await _lazy_pass(net, cheat, harness)
    job = await get_aggregate(net.store, Job, cheat)
    assert job is not None and job.state == SETTLED
    before = await _owner_balance(net, HONEST)

    daemon = harness.daemons[HONEST]
    await daemon.follow(_records(net, daemon.checkpoint.position))
    await daemon.tick()

    assert daemon.challenges_sent == 1
    slash = VALIDATOR_STAKE * net.policy.fraud_slash_bps // BPS
    assert [await _stake(net, i) for i in range(3)] == [
        VALIDATOR_STAKE,
        VALIDATOR_STAKE - slash,
        VALIDATOR_STAKE - slash,
    ]
    reward = slash * net.policy.fraud_challenger_reward_bps // BPS
    assert await _owner_balance(net, HONEST) == before + 2 * reward
    accounts = await get_balances(net.store)
    assert sum(a.balance for a in accounts.values()) == 0


async def test_an_honest_result_is_not_challenged(tmp_path: Path) -> None:
    net, artifacts = await _network(), DictArtifacts()
    harness = Harness(net, artifacts, tmp_path)
    job_id, _ = await _honest(net, EU, artifacts)
    await harness.step()
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SETTLED
    assert all(d.challenges_sent == 0 for d in harness.daemons)
    assert all(d._challenges == [] for d in harness.daemons)

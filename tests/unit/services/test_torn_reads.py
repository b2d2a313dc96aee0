"""A command decided on reads that a concurrent command changed in between is decided again.

Given three committed passing verdicts and one revealed, when the second and third reveals
run concurrently and the third settles the job while the second is between reading the job
and reading the consumer's account, then the second is refused as ``job_settled`` (what a
consistent read says), not ``hold_already_closed`` (what its torn view said).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from domain.errors import Rejection
from domain.job import SETTLED
from domain.ledger import escrow_account, user_account
from domain.ports import EventStore
from domain.records import Record
from domain.services.ledger_service import COMMAND_RETRIES_MAX
from tests.unit.services.test_verdict_services import (
    CONSUMER,
    _committed_job,
    _job,
    _keys,
    _network,
)


class InterleavingStore:
    """Delegates to ``inner``; the first read of ``stream_id`` first runs ``hook``."""

    def __init__(self, inner: EventStore, stream_id: str, hook: Callable[[], Awaitable[Any]]):
        self.inner, self.stream_id, self.hook = inner, stream_id, hook
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]:
        if self.armed and stream_id == self.stream_id:
            self.armed = False
            await self.hook()
        return await self.inner.read_stream(stream_id, from_version)


async def test_a_rejection_on_a_torn_read_is_decided_again() -> None:
    net = await _network()
    job_id = await _committed_job(net)
    keys = _keys((await _job(net, job_id)).validators)
    salts = [await net.commit_vote(k, job_id, True) for k in keys]
    await net.reveal_vote(keys[0], job_id, True, salts[0])

    async def third_reveal_settles() -> None:
        await net.reveal_vote(keys[2], job_id, True, salts[2])

    store = InterleavingStore(net.store, user_account(CONSUMER.id), third_reveal_settles)
    net.store = store  # type: ignore[assignment]
    store.armed = True
    with pytest.raises(Rejection) as refused:
        await net.reveal_vote(keys[1], job_id, True, salts[1])
    assert not store.armed  # the interleaving happened
    assert refused.value.code == "job_settled"
    assert (await _job(net, job_id)).state == SETTLED


async def test_a_rejection_under_endless_change_is_still_that_rejection() -> None:
    """Every read of the account sees a fresh deposit: after the last attempt the withdrawal
    is refused for what it is (``exceeds_available``), never as contention."""
    net = await _network()
    attempts = []

    async def deposit_one() -> None:
        attempts.append(1)
        store.armed = False
        await net.deposit(CONSUMER, 1)
        store.armed = True

    store = InterleavingStore(net.store, user_account(CONSUMER.id), deposit_one)
    net.store = store  # type: ignore[assignment]
    store.armed = True
    with pytest.raises(Rejection) as refused:
        await net.run(CONSUMER, "account.withdraw", {"amount": 10**9})
    assert refused.value.code == "exceeds_available"
    assert len(attempts) >= COMMAND_RETRIES_MAX  # decided again on every attempt


@pytest.mark.parametrize("torn_stream", ["consumer", "escrow"])
async def test_a_settlement_torn_between_its_two_accounts_is_decided_again(
    torn_stream: str,
) -> None:
    """The concurrent settlement lands between the reads of the consumer's account and the
    escrow account (either order): the second reveal sees the hold open on one side and
    closed on the other. It is decided again (``job_settled``), never a failed apply (a
    KeyError on the missing side answered 500 in a devnet run)."""
    net = await _network()
    job_id = await _committed_job(net)
    keys = _keys((await _job(net, job_id)).validators)
    salts = [await net.commit_vote(k, job_id, True) for k in keys]
    await net.reveal_vote(keys[0], job_id, True, salts[0])

    async def third_reveal_settles() -> None:
        await net.reveal_vote(keys[2], job_id, True, salts[2])

    stream = user_account(CONSUMER.id) if torn_stream == "consumer" else escrow_account(job_id)
    store = InterleavingStore(net.store, stream, third_reveal_settles)
    net.store = store  # type: ignore[assignment]
    store.armed = True
    with pytest.raises(Rejection) as refused:
        await net.reveal_vote(keys[1], job_id, True, salts[1])
    assert not store.armed  # the interleaving happened
    assert refused.value.code == "job_settled"
    assert (await _job(net, job_id)).state == SETTLED

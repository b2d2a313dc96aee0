"""The IdempotencyKeys contract: one abstract suite, one subclass per table (memory, PostgreSQL).

``open_keys(ttl_s)`` opens a handle on the table under test; two calls are two API processes
on one store (the memory table, one process's, hands out the same table)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import pytest

from domain.ports import IDEMPOTENCY_KEY_TTL_S, IdempotencyKeys

OpenKeys = Callable[..., Awaitable[IdempotencyKeys]]
CONCURRENT_CLAIMS = 16
SHORT_TTL_S = 0.2


def body(n: int) -> bytes:
    return hashlib.sha256(f"body-{n}".encode()).digest()


class IdempotencyKeysContract:
    """What every IdempotencyKeys table guarantees."""

    @pytest.fixture
    def open_keys(self) -> OpenKeys:
        raise NotImplementedError

    async def test_a_new_key_binds_to_its_body(self, open_keys: OpenKeys) -> None:
        keys = await open_keys()
        assert await keys.claim("k1", body(1))
        assert await keys.claim("k1", body(1))

    async def test_a_bound_key_refuses_another_body_and_stays_bound(
        self, open_keys: OpenKeys
    ) -> None:
        keys = await open_keys()
        assert await keys.claim("k1", body(1))
        assert not await keys.claim("k1", body(2))
        assert await keys.claim("k1", body(1))

    async def test_keys_are_independent(self, open_keys: OpenKeys) -> None:
        keys = await open_keys()
        assert await keys.claim("k1", body(1))
        assert await keys.claim("k2", body(2))
        assert not await keys.claim("k2", body(1))

    async def test_every_handle_sees_one_binding(self, open_keys: OpenKeys) -> None:
        first, second = await open_keys(), await open_keys()
        assert await first.claim("k1", body(1))
        assert not await second.claim("k1", body(2))
        assert await second.claim("k1", body(1))

    async def test_concurrent_claims_of_one_key_have_one_winner(self, open_keys: OpenKeys) -> None:
        handles = [await open_keys() for _ in range(2)]
        results = await asyncio.gather(
            *(handles[n % 2].claim("race", body(n)) for n in range(CONCURRENT_CLAIMS))
        )
        assert sum(results) == 1
        winner = results.index(True)
        assert await handles[0].claim("race", body(winner))
        assert not await handles[1].claim("race", body(winner + 1))

    async def test_an_expired_key_binds_afresh(self, open_keys: OpenKeys) -> None:
        keys = await open_keys(ttl_s=SHORT_TTL_S)
        assert await keys.claim("k1", body(1))
        assert not await keys.claim("k1", body(2))
        await asyncio.sleep(SHORT_TTL_S * 2)
        assert await keys.claim("k1", body(2))
        assert not await keys.claim("k1", body(1))

    async def test_the_default_ttl_keeps_a_key_bound(self, open_keys: OpenKeys) -> None:
        keys = await open_keys(ttl_s=IDEMPOTENCY_KEY_TTL_S)
        assert await keys.claim("k1", body(1))
        await asyncio.sleep(SHORT_TTL_S * 2)
        assert not await keys.claim("k1", body(2))

"""Issue 8's end-to-end scenario (``tests/e2e/test_validators_e2e.py``) with ``flopledger
serve`` and the relay on PostgreSQL instead of a SQLite file: three validator processes,
honest and dishonest nodes, thirty jobs, a validator crash and restart, the audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.objects import ArtifactStore
from adapters.store.factory import migrate_event_store
from tests.conftest_pg import pg_server_url, pg_url  # noqa: F401  (fixtures)
from tests.e2e._network_harness import Network
from tests.e2e.test_validators_e2e import OPERATOR, POLICY, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def pg_network(tmp_path: Path, pg_url: str) -> Iterator[Network]:  # noqa: F811
    asyncio.run(migrate_event_store(pg_url))
    net = Network(root=tmp_path / "net", operator=OPERATOR, policy=POLICY, store_url=pg_url)
    try:
        net.start()
        yield net
    finally:
        net.close()


@pytest.fixture
async def pg_artifacts(pg_network: Network) -> AsyncIterator[ArtifactStore]:
    nc = await connect_nats(pg_network.nats_url, name="e2e-dishonest")
    try:
        yield await ArtifactStore.open(nc)
    finally:
        await close_nats(nc)


async def test_validators_on_postgres(
    pg_network: Network, pg_artifacts: ArtifactStore, tmp_path: Path
) -> None:
    await run_scenario(pg_network, pg_artifacts, tmp_path)

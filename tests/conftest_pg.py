"""Pytest fixtures for PostgreSQL (see ``tests/pg.py`` for where the server comes from).

Load with ``pytest_plugins = ["tests.conftest_pg"]`` (or import the fixtures) in a conftest.
The fixtures are synchronous and run their own short event loops, so they work with any
pytest-asyncio loop scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.pg import create_test_database, drop_test_database, get_server_url


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A server URL on which tests may create their own databases."""
    return asyncio.run(get_server_url())


@pytest.fixture(scope="session")
def pg_session_url(pg_server_url: str) -> Iterator[str]:
    """One fresh database for the whole test session, dropped at its end."""
    url = asyncio.run(create_test_database())
    yield url
    asyncio.run(drop_test_database(url))


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped after it."""
    url = asyncio.run(create_test_database())
    yield url
    asyncio.run(drop_test_database(url))

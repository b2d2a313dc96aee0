"""PostgreSQL for tests: find a server, create uniquely named databases, drop them after.

Where the server comes from, in order: ``FLOP_TEST_DATABASE_URL`` (any database on the
server to use; we only create and drop our own databases there); else the machine's server on
127.0.0.1:5432 when it answers; else a private throwaway cluster started from the PostgreSQL
binaries on the machine (as the ``postgres`` user, or ``nobody``, when running as root) and
stopped when the test process exits. Never a silent skip: without any of these, it fails.

Only databases whose names this process generated (``flop_test_<hex>``) are ever dropped.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

TEST_URL_ENV = "FLOP_TEST_DATABASE_URL"
LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PROBE_TIMEOUT_S = 3.0
CLUSTER_START_TIMEOUT_S = 60
DATABASE_PREFIX = "flop_test_"

_server_url: str | None = None
_created: set[str] = set()


async def get_server_url() -> str:
    """A URL of a PostgreSQL server we may create databases on (found once per process)."""
    global _server_url
    if _server_url is None:
        explicit = os.environ.get(TEST_URL_ENV)
        if explicit:
            _server_url = explicit
        elif await _answers(LOCAL_SERVER_URL):
            _server_url = LOCAL_SERVER_URL
        else:
            _server_url = _start_private_cluster()
    return _server_url


async def create_test_database(prefix: str = DATABASE_PREFIX) -> str:
    """Create an empty, uniquely named database; return its URL."""
    server = await get_server_url()
    name = f"{prefix}{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server, timeout=PROBE_TIMEOUT_S)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    _created.add(name)
    return with_database(server, name)


async def drop_test_database(url: str) -> None:
    """Drop a database made by ``create_test_database`` in this process (others refused)."""
    name = urlsplit(url).path.lstrip("/")
    if name not in _created:
        raise ValueError(f"refusing to drop {name!r}: this test process did not create it")
    conn = await asyncpg.connect(await get_server_url(), timeout=PROBE_TIMEOUT_S)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    _created.discard(name)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


def _start_private_cluster() -> str:
    """initdb + pg_ctl start in a temporary folder; stopped and removed at exit."""
    bindir = _find_bindir()
    root = Path(tempfile.mkdtemp(prefix="flop-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run it as an unprivileged user.
        user = _unprivileged_user()
        shutil.chown(root, user=user)
        run_as = ["runuser", "-u", user, "--"]
    data = root / "data"
    port = _free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, timeout=CLUSTER_START_TIMEOUT_S,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
         "-o", options, "-w", "-t", str(CLUSTER_START_TIMEOUT_S), "start"],
        check=True, capture_output=True, timeout=CLUSTER_START_TIMEOUT_S + 5,
    )  # fmt: skip

    def stop() -> None:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=CLUSTER_START_TIMEOUT_S,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError(
        "no PostgreSQL for the tests: set FLOP_TEST_DATABASE_URL, start a server on "
        "127.0.0.1:5432, or install the server binaries (apt-get install postgresql)"
    )


def _major_version(bindir: str) -> int:
    digits = Path(bindir).parent.name
    return int(digits) if digits.isdigit() else 0


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and neither user postgres nor nobody exists")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

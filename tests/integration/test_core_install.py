"""A core install (``pip install flopledger``, no extras) in a fresh venv without torch: the
CLI's help, ``serve`` answering ``/health``, ``audit`` of a SQLite store, and the one-line
"missing extra" answers of ``agent`` and ``audit --verify-work``. pip resolves the
dependencies as configured on this machine (package index, local mirrors, /opt/wheels);
building the venv takes a minute or two.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from adapters.store.sqlite import SqliteEventStore
from tests.serve_process import running_serve
from tests.unit.audit.scenario import History, build_history

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "proofs", "adapters", "api", "validator", "node_agent", "operations")
VENV_BUILD_TIMEOUT_S = 1_200
COMMAND_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding this tree installed without extras (a copy of the tree is installed, so
    that pip's build leaves nothing in the checkout)."""
    root = tmp_path_factory.mktemp("core-install")
    source = root / "src"
    source.mkdir()
    for name in (*PACKAGES, "flopledger"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        check=True,
        timeout=VENV_BUILD_TIMEOUT_S,
        env=_clean_env(),
        cwd=root,
    )
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what points at the development tree or venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, **extra}


def _flopledger(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "flopledger"), *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env=_clean_env(**env),
        cwd=venv,
    )


def test_the_core_venv_has_no_torch(core_venv: Path) -> None:
    probe = "import importlib.util as u; print(u.find_spec('torch') is None)"
    result = subprocess.run(
        [str(core_venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env=_clean_env(),
        cwd=core_venv,
    )
    assert result.stdout.strip() == "True", result.stderr


@pytest.mark.parametrize("args", [("--help",), ("serve", "--help"), ("audit", "--help")])
def test_help_without_torch(core_venv: Path, args: tuple[str, ...]) -> None:
    result = _flopledger(core_venv, *args)
    assert result.returncode == 0, result.stderr
    assert "flopledger" in result.stdout


def test_serve_answers_health_without_torch(core_venv: Path, tmp_path: Path) -> None:
    env = _clean_env(FLOP_DATA_DIR=str(tmp_path / "data"), FLOP_LOG_LEVEL="warning")
    command = (str(core_venv / "bin" / "flopledger"),)
    with running_serve(env, command=command, cwd=str(tmp_path)) as (url, _process):
        response = httpx.get(f"{url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_audit_of_a_store_without_torch(core_venv: Path, tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"

    async def build() -> History:
        store = await SqliteEventStore.open(path)
        try:
            return await build_history(store)
        finally:
            await store.close()

    history = asyncio.run(build())
    result = _flopledger(
        core_venv,
        "audit",
        "--source",
        f"sqlite:///{path}",
        "--operator",
        history.net.operator.id,
        COLUMNS="200",
        FLOP_DATA_DIR=str(tmp_path / "data"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AUDIT PASSED" in result.stdout


def test_agent_without_its_extra_exits_2_naming_it(core_venv: Path, tmp_path: Path) -> None:
    result = _flopledger(
        core_venv,
        "agent",
        "--key",
        str(tmp_path / "node.key"),
        "--region",
        "eu-west",
        "--price",
        "1",
        "--cpu",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "flopledger agent: needs the agent extra (not installed): pip install 'flopledger[agent]'"
    ]


def test_audit_verify_work_without_its_extra_exits_2_naming_it(
    core_venv: Path, tmp_path: Path
) -> None:
    result = _flopledger(
        core_venv,
        "audit",
        "--source",
        f"sqlite:///{tmp_path / 'history.sqlite3'}",
        "--verify-work",
        "--objects",
        "nats://127.0.0.1:1",
        FLOP_DATA_DIR=str(tmp_path / "data"),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "flopledger audit --verify-work: needs the validator extra (not installed): "
        "pip install 'flopledger[validator]'"
    ]


def test_keys_without_torch(core_venv: Path, tmp_path: Path) -> None:
    path = tmp_path / "consumer.key"
    created = _flopledger(core_venv, "keys", "new", "--out", str(path))
    assert created.returncode == 0, created.stderr
    shown = _flopledger(core_venv, "keys", "show", "--key", str(path))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == json.loads(created.stdout)["id"]

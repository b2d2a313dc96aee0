"""The core CLI with torch absent (imports of ``torch`` and ``pynvml`` fail in the child):
``--help`` imports no subcommand, the core subcommands answer ``--help``, and a command whose
extra is missing exits 2 with one line naming it. The real torch-less venv is built by
``tests/integration/test_core_install.py``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flopledger.cli import SUBCOMMANDS

WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None
sys.modules["pynvml"] = None
from flopledger.cli import main
sys.exit(main(sys.argv[1:]))
"""
CORE = (
    "serve",
    "relay",
    "seal",
    "gateway",
    "audit",
    "keys",
    "job",
    "account",
    "object",
    "node",
    "db",
    "demo",
)


def _cli_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_top_level_help_imports_no_subcommand_module() -> None:
    probe = (
        "import contextlib, sys\n"
        "from flopledger.cli import main\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "print('loaded:', sorted(m for m in sys.modules if m.startswith('flopledger.commands.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout


def test_help_without_torch_lists_every_subcommand() -> None:
    result = _cli_without_torch("--help")
    assert result.returncode == 0, result.stderr
    for entry in SUBCOMMANDS:
        assert entry.name in result.stdout


@pytest.mark.parametrize("name", [entry.name for entry in SUBCOMMANDS])
def test_every_subcommand_help_works_without_torch(name: str) -> None:
    result = _cli_without_torch(name, "--help")
    assert result.returncode == 0, result.stderr
    assert f"flopledger {name}" in result.stdout


@pytest.mark.parametrize(
    ("args", "extras"),
    [
        (("agent", "--key", "k", "--region", "eu-west", "--price", "1", "--cpu"), "agent"),
        (("validator", "--key", "k", "--bls-key", "b"), "validator"),
        (("devnet",), "agent,validator"),
    ],
)
def test_a_command_without_its_extra_exits_2_naming_it(args: tuple[str, ...], extras: str) -> None:
    result = _cli_without_torch(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"pip install 'flopledger[{extras}]'" in lines[0]
    assert lines[0].startswith(f"flopledger {args[0]}:")


def test_core_commands_need_no_extra() -> None:
    by_name = {entry.name: entry for entry in SUBCOMMANDS}
    assert all(by_name[name].extras == () for name in CORE)


def test_audit_verify_work_without_torch_exits_2_naming_the_extra() -> None:
    result = _cli_without_torch("audit", "--source", "sqlite:///nowhere.sqlite3", "--verify-work")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "flopledger audit --verify-work: needs the validator extra (not installed): "
        "pip install 'flopledger[validator]'"
    ]

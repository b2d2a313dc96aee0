"""The ``flopledger`` command line as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flopledger.cli import SUBCOMMANDS, main


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flopledger.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_help_lists_every_planned_subcommand() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for entry in SUBCOMMANDS:
        assert entry.name in result.stdout


def test_a_planned_subcommand_without_a_module_says_so_and_exits_2(capsys, monkeypatch) -> None:
    import flopledger.cli as cli

    planned = (
        *cli.SUBCOMMANDS,
        cli.Subcommand("teleport", "no_such_module_yet", "move a job elsewhere"),
    )
    monkeypatch.setattr(cli, "SUBCOMMANDS", planned)
    assert "not built yet" in cli.build_parser().format_help()
    assert main(["teleport"]) == 2
    captured = capsys.readouterr()
    assert "not built yet" in captured.err and captured.out == ""


def test_demo_settles_a_job_and_balances_sum_to_zero(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "FLOP_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    result = _cli("demo", env=env)
    assert result.returncode == 0, result.stderr
    assert "claim_too_early_for_region" in result.stdout
    assert "job is settled, certificate verifies: True" in result.stdout
    sum_line = next(line for line in result.stdout.splitlines() if "│ sum" in line)
    assert sum_line.split("│")[2].strip() == "0"
    assert "hash chain verified" in result.stdout
    assert list((tmp_path / "demo").glob("*.sqlite3"))


def test_a_bad_setting_stops_any_command_with_one_line_naming_it() -> None:
    import os

    result = _cli("audit", "--help", env={**os.environ, "FLOP_SEAL": "maybe"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["flopledger audit: FLOP_SEAL='maybe': use 1 or 0"]

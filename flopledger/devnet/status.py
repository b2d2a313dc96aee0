"""``flopledger devnet status``: every process of the devnet, its pid, health and log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from flopledger.devnet.supervisor import STATUS_FILE

HEALTH_TIMEOUT_S = 2.0
EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_NONE = 3


def read_status(root: Path) -> dict[str, Any] | None:
    """The status file of the devnet under ``root``, or None."""
    try:
        status: dict[str, Any] = json.loads((root / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status


def running_supervisor(root: Path) -> int | None:
    """The pid of a devnet supervisor still running under ``root``, or None."""
    status = read_status(root)
    if status is None or status.get("stopped"):
        return None
    pid = int(status.get("supervisor_pid", 0))
    return pid if pid and is_alive(pid) else None


def stop_orphans(root: Path) -> list[str]:
    """SIGTERM the children a dead supervisor left running (each checked to still be the
    process the status file names, by its command line); returns their names."""
    status = read_status(root)
    if status is None:
        return []
    stopped = []
    for process in status.get("processes", []):
        pid, argv = int(process["pid"]), list(process.get("argv", []))
        if process.get("exit_status") is None and is_alive(pid) and _runs(pid, argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                stopped.append(str(process["name"]))
    return stopped


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runs(pid: int, argv: list[str]) -> bool:
    """True when process ``pid`` runs ``argv`` (guards against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return [part.decode(errors="replace") for part in cmdline if part] == argv


def check_health(url: str) -> str:
    """'ok', or why not ('' when the process has no health URL)."""
    if not url:
        return ""
    try:
        response = httpx.get(url, timeout=HEALTH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok" if response.status_code == httpx.codes.OK else f"HTTP {response.status_code}"


def print_status(root: Path, console: Console) -> int:
    """Print the table; 0 when every process runs and answers, 1 otherwise, 3 if none."""
    status = read_status(root)
    if status is None:
        console.print(f"no devnet under {root} (start one with flopledger devnet)")
        return EXIT_NONE
    supervisor = int(status["supervisor_pid"])
    running = is_alive(supervisor) and not status.get("stopped")
    console.print(
        f"devnet under {root}: supervisor pid {supervisor} "
        + ("[green]running[/]" if running else "[red]not running[/]")
    )
    if status.get("dashboard_url"):
        console.print(f"dashboard {status['dashboard_url']}  store {status.get('store_url')}")
    table = Table()
    for column in ("process", "pid", "running", "health", "log"):
        table.add_column(column)
    healthy = running
    for process in status["processes"]:
        alive = is_alive(int(process["pid"])) and process.get("exit_status") is None
        health = check_health(process.get("health_url", "")) if alive else ""
        healthy = healthy and alive and health in ("ok", "")
        table.add_row(
            process["name"],
            str(process["pid"]),
            "[green]yes[/]" if alive else f"[red]no[/] ({process.get('exit_status')})",
            "[green]ok[/]" if health == "ok" else health,
            process["log"],
        )
    console.print(table)
    if status.get("openai_env"):  # issue 18: the OpenAI client's settings, once a completion worked
        console.print(
            f"OpenAI-compatible endpoint {status.get('openai_base_url')}  settings "
            f"{status['openai_env']}",
            soft_wrap=True,
        )
    for result in status.get("consumer_results", []):  # the own-data jobs' checks
        console.print(str(result.get("line") or f"consumer: {result.get('label')}: not checked"))
    return EXIT_HEALTHY if healthy else EXIT_UNHEALTHY

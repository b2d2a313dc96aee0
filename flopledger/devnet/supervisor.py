"""Start child processes in order with readiness checks, record them, stop them in reverse.

Every child runs in its own session (a Ctrl-C in the terminal reaches the supervisor only,
which then stops the children in order), writes stdout and stderr to
``<root>/logs/<name>.log``, and is listed in ``<root>/status.json`` (pid, command, log,
health URL) for ``flopledger devnet status``. ``stop_all`` sends SIGTERM to each child in
reverse start order and waits for it within the overall deadline, then SIGKILLs what is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

READY_POLL_INTERVAL_S = 0.2
STOP_DEADLINE_S = 45.0
STOP_EACH_MAX_S = 20.0
KILL_WAIT_S = 5.0
LOG_TAIL_CHARS = 2_000
STATUS_FILE = "status.json"
LOGS_DIR = "logs"

_log = structlog.get_logger("flopledger.devnet")


class DevnetError(RuntimeError):
    """A process did not start, or died; the message names it and quotes its log."""


@dataclass(frozen=True)
class ProcessSpec:
    """One child: how to run it and how to tell that it is ready."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    is_ready: Callable[[], bool]
    ready_timeout_s: float = 60.0
    health_url: str = ""


@dataclass
class Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.time)

    @property
    def is_running(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    """The children of one devnet, in start order."""

    def __init__(self, root: Path, stop_requested: threading.Event) -> None:
        self.root = root
        self.logs = root / LOGS_DIR
        self.logs.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self.stop_requested = stop_requested
        self.extra: dict[str, object] = {}

    def start(self, spec: ProcessSpec) -> Child:
        """Start ``spec`` and wait until it is ready (DevnetError if it exits or times out)."""
        child = self._spawn(spec)
        self.wait_until(spec.is_ready, spec.ready_timeout_s, f"{spec.name} to become ready")
        return child

    def start_together(self, specs: Sequence[ProcessSpec]) -> list[Child]:
        """Start every spec at once, then wait until all are ready (within the longest of
        their timeouts): children whose start-up is long (a model to load) overlap."""
        children = [self._spawn(spec) for spec in specs]
        names = ", ".join(spec.name for spec in specs)
        self.wait_until(
            lambda: all(spec.is_ready() for spec in specs),
            max((spec.ready_timeout_s for spec in specs), default=0.0),
            f"{names} to become ready",
        )
        return children

    def _spawn(self, spec: ProcessSpec) -> Child:
        log_path = self.logs / f"{spec.name}.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                list(spec.argv),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=spec.env,
                start_new_session=True,
            )
        child = Child(spec=spec, process=process, log_path=log_path)
        self.children.append(child)
        self.write_status()
        _log.debug("process_started", name=spec.name, pid=process.pid)
        return child

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``condition``; raise DevnetError when a child dies, on timeout or on stop."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            if self.stop_requested.is_set():
                raise DevnetError(f"stopped while waiting for {what}")
            if _safe(condition):
                return
            if time.monotonic() > deadline:
                raise DevnetError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(READY_POLL_INTERVAL_S)

    def stop_all(self, deadline_s: float = STOP_DEADLINE_S) -> dict[str, int | None]:
        """SIGTERM each child in reverse start order within ``deadline_s``; SIGKILL the rest.
        Returns each child's exit status (negative: the signal that ended it)."""
        self.stop([child.spec.name for child in self.children], deadline_s)
        self.kill_all()
        codes = {child.spec.name: child.process.poll() for child in self.children}
        self.write_status(stopped=True)
        return codes

    def stop(self, names: Sequence[str], deadline_s: float = STOP_DEADLINE_S) -> None:
        """SIGTERM the children named, in reverse start order, each waited for in turn."""
        deadline = time.monotonic() + deadline_s
        for child in reversed(self.children):
            if child.spec.name not in names or not child.is_running:
                continue
            _signal(child.process, signal.SIGTERM)
            left = min(STOP_EACH_MAX_S, max(0.0, deadline - time.monotonic()))
            try:
                child.process.wait(timeout=left)
            except subprocess.TimeoutExpired:
                _log.warning("process_stop_timeout", name=child.spec.name, pid=child.process.pid)
        self.write_status()

    def check_alive(self, names: Sequence[str] | None = None) -> None:
        """Raise DevnetError naming the first child that exited, with its log's tail."""
        for child in self.children:
            if names is not None and child.spec.name not in names:
                continue
            code = child.process.poll()
            if code is not None:
                raise DevnetError(
                    f"{child.spec.name} (pid {child.process.pid}) exited with status {code}; "
                    f"its log ({child.log_path}) ends with:\n{read_tail(child.log_path)}"
                )

    def kill_all(self) -> None:
        """SIGKILL every child still running (a forced stop)."""
        for child in self.children:
            if child.is_running:
                _signal(child.process, signal.SIGKILL)
                try:
                    child.process.wait(timeout=KILL_WAIT_S)
                except subprocess.TimeoutExpired:
                    _log.error("process_unkillable", name=child.spec.name, pid=child.process.pid)

    def write_status(self, *, stopped: bool = False) -> None:
        """Write ``status.json``: the supervisor's pid and every child's pid, log and health."""
        status = {
            "supervisor_pid": os.getpid(),
            "stopped": stopped,
            "updated_at": time.time(),
            **self.extra,
            "processes": [
                {
                    "name": c.spec.name,
                    "pid": c.process.pid,
                    "argv": list(c.spec.argv),
                    "log": str(c.log_path),
                    "health_url": c.spec.health_url,
                    "started_at": c.started_at,
                    "exit_status": c.process.poll(),
                }
                for c in self.children
            ],
        }
        path = self.root / STATUS_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status, indent=2))
        temporary.replace(path)


def read_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last ``chars`` characters of a log file ('' if it is missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        return


def _safe(condition: Callable[[], bool]) -> bool:
    """A readiness probe that fails to connect is simply not ready yet."""
    try:
        return condition()
    except (OSError, ValueError, KeyError):
        return False

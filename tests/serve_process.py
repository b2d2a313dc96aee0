"""``flopledger serve`` as a child process for integration tests: start, wait ready, stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO

import httpx

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
READY_POLL_S = 0.1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_serve(
    env: dict[str, str],
    *,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
    command: Sequence[str] = (sys.executable, "-m", "flopledger.cli"),
    cwd: str | None = None,
    stderr: IO[bytes] | None = None,
    stdout: IO[bytes] | int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``flopledger serve`` on a free loopback port until ``/ready`` answers 200; yield its
    URL and process; SIGTERM it and wait on exit (its exit status is ``process.returncode``).
    ``command`` is how ``flopledger`` is started (another venv's console script, say);
    ``stderr`` takes the server's log lines (a file the test reads), ``stdout`` uvicorn's
    access log (``subprocess.DEVNULL``, say). A process the test has
    killed meanwhile is left as it is."""
    port = free_port()
    args = [*command, "serve", "--port", str(port)]
    process = subprocess.Popen(args, env=env, cwd=cwd, stderr=stderr, stdout=stdout)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout_s
    try:
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited during start-up"
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(READY_POLL_S)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=shutdown_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()  # fail the test, leave no server behind
            process.wait()
            raise

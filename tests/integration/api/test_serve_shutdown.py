"""``flopledger serve`` stops on SIGTERM with an event stream open (a rolling restart of a
replica): the stream is cancelled after the graceful period, the process exits 0."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx

from flopledger.commands.serve import GRACEFUL_SHUTDOWN_S
from proofs.identity import Identity
from tests.serve_process import running_serve

OPERATOR_SEED = b"operator".ljust(32, b"\0")
STOP_MARGIN_S = 10.0


def test_serve_stops_with_an_event_stream_open(tmp_path: Path) -> None:
    log_key = tmp_path / "log_key.hex"
    log_key.write_text(OPERATOR_SEED.hex() + "\n")
    env = {
        **os.environ,
        "FLOP_DATA_DIR": str(tmp_path / "data"),
        "FLOP_OPERATOR_IDS": Identity.from_seed(OPERATOR_SEED).id,
        "FLOP_LOG_KEY_FILE": str(log_key),
        "FLOP_LOG_LEVEL": "warning",
    }
    first_record = threading.Event()
    with running_serve(env, shutdown_timeout_s=GRACEFUL_SHUTDOWN_S + STOP_MARGIN_S) as (
        url,
        process,
    ):
        reader = threading.Thread(target=_read_stream, args=(url, first_record), daemon=True)
        reader.start()
        assert first_record.wait(30), "the stream sent nothing"
        stopping = time.monotonic()
    assert process.returncode == 0
    assert time.monotonic() - stopping < GRACEFUL_SHUTDOWN_S + STOP_MARGIN_S


def _read_stream(url: str, first_record: threading.Event) -> None:
    """Follow the log from position 1 (the genesis is there) and keep the stream open."""
    timeout = httpx.Timeout(5.0, read=None)
    try:
        with httpx.stream("GET", f"{url}/v1/events/stream", timeout=timeout) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    first_record.set()
    except httpx.HTTPError:
        return  # the server went away: what the test waits for

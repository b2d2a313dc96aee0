"""The daemon runner (``flopledger.daemon``): given a daemon, when the first signal comes it
stops in order under the deadline; when a second comes it exits at once; when the daemon or a
shutdown step overruns the deadline, it is abandoned and the exit status says so."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
import structlog

from flopledger.daemon import (
    EXIT_FORCED,
    EXIT_OK,
    EXIT_SHUTDOWN_TIMEOUT,
    AsyncDaemon,
    Daemon,
)

SHORT_DEADLINE_S = 0.3


def _send(signum: int = signal.SIGTERM) -> None:
    os.kill(os.getpid(), signum)


class Recorder:
    """Stands in for ``os._exit``: records the status instead of exiting."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


async def test_first_signal_stops_in_order_under_the_deadline() -> None:
    exits, order = Recorder(), []
    daemon = AsyncDaemon("probe", deadline_s=5.0, force_exit=exits)

    async def close(name: str) -> None:
        order.append(name)

    async def main(stop: asyncio.Event) -> int:
        daemon.at_shutdown("store", lambda: close("store"))
        daemon.at_shutdown("nats", lambda: close("nats"))
        asyncio.get_running_loop().call_later(0.05, _send)
        await stop.wait()
        order.append("main")
        return EXIT_OK

    started = time.monotonic()
    assert await daemon.serve(main) == EXIT_OK
    assert order == ["main", "nats", "store"]  # intake stops first, the last opened closes first
    assert daemon.report.finished == ["nats", "store"] and daemon.report.is_in_time
    assert daemon.stopped_by_signal and exits.codes == []
    assert time.monotonic() - started < 5.0


async def test_second_signal_forces_the_exit() -> None:
    exits, forced = Recorder(), []
    daemon = AsyncDaemon("probe", deadline_s=5.0, force_exit=exits)
    daemon.on_force(lambda: forced.append("kill the child server"))

    async def main(stop: asyncio.Event) -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, _send)
        await stop.wait()  # still busy winding down when the second signal comes
        loop.call_later(0.05, _send, signal.SIGINT)
        await asyncio.to_thread(exits.called.wait, 5.0)
        return EXIT_OK

    await daemon.serve(main)
    assert exits.codes == [EXIT_FORCED]
    assert forced == ["kill the child server"]


async def test_a_main_past_the_deadline_is_cancelled_and_the_steps_still_run() -> None:
    closed = []
    daemon = AsyncDaemon("probe", deadline_s=SHORT_DEADLINE_S, force_exit=Recorder())

    async def close() -> None:
        closed.append("store")

    async def main(stop: asyncio.Event) -> int:
        daemon.at_shutdown("store", close)
        asyncio.get_running_loop().call_later(0.05, _send)
        await asyncio.sleep(60)  # ignores the flag
        return EXIT_OK

    started = time.monotonic()
    assert await daemon.serve(main) == EXIT_SHUTDOWN_TIMEOUT
    assert time.monotonic() - started < 0.05 + SHORT_DEADLINE_S + 1.0
    assert closed == [] or closed == ["store"]  # whatever time was left: at most one try
    assert daemon.report.timed_out in (None, "store")


async def test_a_step_past_the_deadline_is_abandoned_and_later_steps_skipped() -> None:
    ran = []
    daemon = AsyncDaemon("probe", deadline_s=SHORT_DEADLINE_S, force_exit=Recorder())

    async def slow() -> None:
        await asyncio.sleep(60)

    async def record(name: str) -> None:
        ran.append(name)

    async def main(stop: asyncio.Event) -> int:
        daemon.at_shutdown("server", lambda: record("server"))
        daemon.at_shutdown("slow", slow)
        daemon.at_shutdown("first", lambda: record("first"))
        return EXIT_OK  # ends on its own: the deadline starts now

    started = time.monotonic()
    assert await daemon.serve(main) == EXIT_SHUTDOWN_TIMEOUT
    assert time.monotonic() - started < SHORT_DEADLINE_S + 1.0
    assert ran == ["first"]
    assert daemon.report.finished == ["first"]
    assert (daemon.report.timed_out, daemon.report.skipped) == ("slow", ["server"])


async def test_a_failing_step_does_not_keep_the_others_from_running() -> None:
    ran = []
    daemon = AsyncDaemon("probe", deadline_s=5.0, force_exit=Recorder())

    async def broken() -> None:
        raise OSError("disk gone")

    async def record() -> None:
        ran.append("server")

    async def main(stop: asyncio.Event) -> int:
        daemon.at_shutdown("server", record)
        daemon.at_shutdown("store", broken)
        return EXIT_OK

    with pytest.raises(OSError, match="disk gone"):
        await daemon.serve(main)
    assert ran == ["server"]


def test_a_failing_daemon_keeps_its_status() -> None:
    daemon = AsyncDaemon("probe", deadline_s=5.0, force_exit=Recorder())

    async def main(stop: asyncio.Event) -> int:
        return 3

    assert daemon.run(main) == 3 and not daemon.stopped_by_signal


def test_blocking_daemon_first_signal_sets_the_flag_and_steps_run_in_order() -> None:
    exits, order = Recorder(), []
    daemon = Daemon("probe", deadline_s=5.0, force_exit=exits)
    daemon.on_stop(lambda: order.append("said stopping"))
    daemon.at_shutdown("store", lambda: order.append("store"))
    daemon.at_shutdown("sealer", lambda: order.append("sealer"))
    before = signal.getsignal(signal.SIGTERM)

    def main(stop: threading.Event) -> int:
        threading.Timer(0.05, _send).start()
        assert stop.wait(5.0)
        order.append("main")
        return EXIT_OK

    assert daemon.run(main) == EXIT_OK
    assert order == ["said stopping", "main", "sealer", "store"]
    assert exits.codes == [] and daemon.report.is_in_time
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored


def test_blocking_daemon_second_signal_forces_the_exit() -> None:
    exits, forced = Recorder(), []
    daemon = Daemon("probe", deadline_s=5.0, force_exit=exits)
    daemon.on_force(lambda: forced.append("kill every process"))

    def main(stop: threading.Event) -> int:
        _send()
        assert stop.is_set()
        _send(signal.SIGINT)
        return EXIT_OK

    daemon.run(main)
    assert exits.codes == [EXIT_FORCED] and forced == ["kill every process"]


def test_blocking_daemon_step_past_the_deadline_is_abandoned() -> None:
    daemon = Daemon("probe", deadline_s=SHORT_DEADLINE_S, force_exit=Recorder())
    release = threading.Event()
    daemon.at_shutdown("after", lambda: None)
    daemon.at_shutdown("hung", lambda: release.wait(60))
    started = time.monotonic()
    try:
        assert daemon.run(lambda stop: EXIT_OK) == EXIT_SHUTDOWN_TIMEOUT
    finally:
        release.set()
    assert time.monotonic() - started < SHORT_DEADLINE_S + 1.0
    assert (daemon.report.timed_out, daemon.report.skipped) == ("hung", ["after"])


def test_a_logged_exception_shows_its_traceback_but_no_local_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The default (rich) renderer printed every frame's locals: a NATS password in the
    API's frame reached api.log with a 500's traceback."""
    from flopledger.daemon import configure_logging

    def connect() -> None:
        nats_url = "nats://api:s3cret-pa55word@127.0.0.1:4222"  # noqa: F841 (a frame's local)
        raise KeyError("escrow:job-1")

    configure_logging("info")
    try:
        try:
            connect()
        except KeyError:
            structlog.get_logger("test").exception("api_internal_error")
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "api_internal_error" in err and "KeyError: 'escrow:job-1'" in err
    assert "in connect" in err  # the traceback is there
    assert "s3cret-pa55word" not in err

"""One way to run a daemon: a signal sets a flag, a second signal forces exit, and shutdown runs
in order under a deadline (as uvicorn's ``server.py``, arq's worker and nats.py's ``drain()``).

The first SIGINT/SIGTERM only sets the stop flag (the daemon stops taking work and winds down);
the second runs the force hooks (kill a child server, say) and exits at once with
``EXIT_FORCED``. From the first signal (or from the daemon's own return, if it ends first)
the rest of the shutdown has ``deadline_s``: the daemon's main must return within it (an async
main still running is cancelled), then the shutdown steps run, the last registered first (the
last resource opened is closed first, as with ``contextlib.ExitStack``), each with what is
left of the deadline; a step that overruns is abandoned and the steps after it are skipped,
and the exit status says so (``EXIT_SHUTDOWN_TIMEOUT``) unless the daemon already failed.

``AsyncDaemon`` runs an ``async def main(stop: asyncio.Event) -> int``; ``Daemon`` runs a
blocking ``main(stop: threading.Event) -> int`` in the main thread (uvicorn, the devnet's
supervisor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import structlog

EXIT_OK = 0
EXIT_SHUTDOWN_TIMEOUT = 1
"""The daemon or a shutdown step did not finish within the deadline (an operating error)."""
EXIT_FORCED = 130
"""A second signal: exit at once (128 + SIGINT, as a shell reports Ctrl-C)."""
SHUTDOWN_DEADLINE_S = 30.0
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)

Hook = Callable[[], object]
AsyncStep = Callable[[], Awaitable[object]]

_log = structlog.get_logger("flopledger.daemon")


def configure_logging(level: str) -> None:
    """A daemon's logs: structlog key-value lines on stderr at ``level`` (FLOP_LOG_LEVEL)."""
    structlog.configure(
        processors=compute_log_processors(),
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def compute_log_processors() -> list[structlog.typing.Processor]:
    """structlog's default chain, with tracebacks rendered WITHOUT local variables: the
    default (rich) renderer prints every frame's locals, and a frame of the API or an agent
    holds secrets (a NATS password in a connection URL, key material), which then sat in
    the process's log file."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
        structlog.dev.ConsoleRenderer(
            colors=_is_colored(), exception_formatter=structlog.dev.plain_traceback
        ),
    ]


def _is_colored() -> bool:
    """structlog's own default: colors on a terminal, NO_COLOR off, FORCE_COLOR on."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or (sys.stdout is not None and sys.stdout.isatty())


@dataclass
class ShutdownReport:
    """What the shutdown did: steps finished, the one that overran, the ones skipped."""

    finished: list[str] = field(default_factory=list)
    timed_out: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def is_in_time(self) -> bool:
        return self.timed_out is None


class _Signals:
    """Counts stop signals: the first sets the flag, the second forces the exit."""

    def __init__(
        self,
        name: str,
        set_flag: Callable[[], None],
        stop_hooks: Sequence[Hook],
        force_hooks: Sequence[Hook],
        force_exit: Callable[[int], object],
    ) -> None:
        self.name, self._set_flag = name, set_flag
        self._stop_hooks, self._force_hooks, self._force_exit = stop_hooks, force_hooks, force_exit
        self.received = 0

    def handle(self, signum: int) -> None:
        self.received += 1
        if self.received == 1:
            _log.info(f"{self.name}_stopping", signal=signum)
            self._set_flag()
            _run_hooks(self.name, self._stop_hooks)
            return
        _log.warning(f"{self.name}_forced_exit", signal=signum)
        _run_hooks(self.name, self._force_hooks)
        self._force_exit(EXIT_FORCED)


class _Hooks:
    def __init__(
        self,
        name: str,
        deadline_s: float,
        signals: Sequence[signal.Signals],
        force_exit: Callable[[int], object],
    ) -> None:
        self.name, self.deadline_s, self._signals = name, deadline_s, tuple(signals)
        self._force_exit = force_exit
        self._stop_hooks: list[Hook] = []
        self._force_hooks: list[Hook] = []
        self.report = ShutdownReport()
        self.stopped_by_signal = False

    def on_stop(self, hook: Hook) -> None:
        """Run ``hook`` at the first signal, after the flag is set (say what happens)."""
        self._stop_hooks.append(hook)

    def on_force(self, hook: Hook) -> None:
        """Run ``hook`` at the second signal, just before the forced exit."""
        self._force_hooks.append(hook)

    def _counter(self, set_flag: Callable[[], None]) -> _Signals:
        def flag() -> None:
            self.stopped_by_signal = True
            set_flag()

        return _Signals(self.name, flag, self._stop_hooks, self._force_hooks, self._force_exit)

    def _status(self, status: int) -> int:
        if self.report.is_in_time or status != EXIT_OK:
            return status
        return EXIT_SHUTDOWN_TIMEOUT


class AsyncDaemon(_Hooks):
    """Runs ``async def main(stop) -> int`` with the stop protocol; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        deadline_s: float = SHUTDOWN_DEADLINE_S,
        signals: Sequence[signal.Signals] = STOP_SIGNALS,
        force_exit: Callable[[int], object] = os._exit,
    ) -> None:
        super().__init__(name, deadline_s, signals, force_exit)
        self._steps: list[tuple[str, AsyncStep]] = []

    def at_shutdown(self, name: str, step: AsyncStep) -> None:
        """Run ``step`` at shutdown (the last registered runs first)."""
        self._steps.append((name, step))

    def run(self, main: Callable[[asyncio.Event], Coroutine[Any, Any, int | None]]) -> int:
        """``asyncio.run`` of ``serve(main)``; a KeyboardInterrupt before the handlers are in
        place counts as a forced exit."""
        try:
            return asyncio.run(self.serve(main))
        except KeyboardInterrupt:
            return EXIT_FORCED

    async def serve(self, main: Callable[[asyncio.Event], Coroutine[Any, Any, int | None]]) -> int:
        """Run ``main(stop)`` in the running loop until it returns, then shut down."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        counter = self._counter(stop.set)
        for signum in self._signals:
            loop.add_signal_handler(signum, counter.handle, signum)
        try:
            task = asyncio.create_task(main(stop), name=f"{self.name}-main")
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            deadline = loop.time() + self.deadline_s
            try:
                status = await self._finish_main(task, deadline)
            finally:
                self.report = await _run_async_steps(self.name, self._steps[::-1], deadline)
            return self._status(status)
        finally:
            for signum in self._signals:
                loop.remove_signal_handler(signum)

    async def _finish_main(self, task: asyncio.Task[int | None], deadline: float) -> int:
        remaining = deadline - asyncio.get_running_loop().time()
        done, _ = await asyncio.wait({task}, timeout=max(remaining, 0.0))
        if not done:
            _log.warning(f"{self.name}_stop_deadline_exceeded", deadline_s=self.deadline_s)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return EXIT_SHUTDOWN_TIMEOUT
        return int(task.result() or EXIT_OK)


class Daemon(_Hooks):
    """Runs a blocking ``main(stop) -> int`` in the main thread; ``stop`` exists before it
    runs (``self.stop``), so that what ``main`` drives can be built with it."""

    def __init__(
        self,
        name: str,
        *,
        deadline_s: float = SHUTDOWN_DEADLINE_S,
        signals: Sequence[signal.Signals] = STOP_SIGNALS,
        force_exit: Callable[[int], object] = os._exit,
    ) -> None:
        super().__init__(name, deadline_s, signals, force_exit)
        self.stop = threading.Event()
        self._steps: list[tuple[str, Hook]] = []

    def at_shutdown(self, name: str, step: Hook) -> None:
        """Run ``step`` at shutdown (the last registered runs first)."""
        self._steps.append((name, step))

    def run(self, main: Callable[[threading.Event], int | None]) -> int:
        """Install the handlers, run ``main(stop)``, then the shutdown steps; restore the
        previous handlers. A library that installs its own handlers while it runs (uvicorn)
        and re-raises the signal when it returns lands in these: the flag, not an exit."""
        counter = self._counter(self.stop.set)
        previous = {
            signum: signal.signal(signum, _handler(counter.handle)) for signum in self._signals
        }
        try:
            try:
                status = int(main(self.stop) or EXIT_OK)
            finally:
                deadline = time.monotonic() + self.deadline_s
                self.report = _run_sync_steps(self.name, self._steps[::-1], deadline)
            return self._status(status)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


async def _run_async_steps(
    name: str, steps: Sequence[tuple[str, AsyncStep]], deadline: float
) -> ShutdownReport:
    """Each step with what is left of the deadline; a step that raises does not keep the
    later ones from running (its error is re-raised once they ran)."""
    loop = asyncio.get_running_loop()
    report, failures = ShutdownReport(), list[BaseException]()
    for index, (step_name, step) in enumerate(steps):
        try:
            await asyncio.wait_for(step(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            return _overran(name, report, step_name, [n for n, _ in steps[index + 1 :]], failures)
        except Exception as exc:  # re-raised below, after the other steps
            _log.error(f"{name}_shutdown_step_failed", step=step_name, error=repr(exc))
            failures.append(exc)
        else:
            report.finished.append(step_name)
    return _done(report, failures)


def _run_sync_steps(
    name: str, steps: Sequence[tuple[str, Hook]], deadline: float
) -> ShutdownReport:
    """Each step in a thread joined with what is left of the deadline (an overrunning step
    is left behind, a daemon thread); errors as in ``_run_async_steps``."""
    report, failures = ShutdownReport(), list[BaseException]()
    for index, (step_name, step) in enumerate(steps):
        failure: list[BaseException] = []
        worker = threading.Thread(
            target=_call_into(step, failure), name=f"{name}-shutdown-{step_name}", daemon=True
        )
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0.0))
        if worker.is_alive():
            return _overran(name, report, step_name, [n for n, _ in steps[index + 1 :]], failures)
        if failure:
            _log.error(f"{name}_shutdown_step_failed", step=step_name, error=repr(failure[0]))
            failures.extend(failure)
        else:
            report.finished.append(step_name)
    return _done(report, failures)


def _overran(
    name: str,
    report: ShutdownReport,
    step: str,
    skipped: list[str],
    failures: list[BaseException],
) -> ShutdownReport:
    report.timed_out, report.skipped = step, skipped
    _log.warning(f"{name}_shutdown_deadline_exceeded", step=step, skipped=skipped)
    return _done(report, failures)


def _done(report: ShutdownReport, failures: list[BaseException]) -> ShutdownReport:
    if failures:
        raise failures[0]
    return report


def _call_into(step: Hook, failure: list[BaseException]) -> Callable[[], None]:
    def call() -> None:
        try:
            step()
        except BaseException as exc:  # handed to the caller's thread, re-raised there
            failure.append(exc)

    return call


def _handler(handle: Callable[[int], None]) -> Callable[[int, FrameType | None], None]:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        handle(signum)

    return on_signal


def _run_hooks(name: str, hooks: Sequence[Hook]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception as exc:  # a signal handler must not die of a hook: log, go on
            _log.error(f"{name}_signal_hook_failed", error=repr(exc))

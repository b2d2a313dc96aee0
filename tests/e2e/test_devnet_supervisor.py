"""The devnet's process supervisor on small stand-in processes: readiness checks, the status
file, a process that dies during start-up named with its log, stop in reverse order, and
children a dead supervisor left behind stopped by the next start."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from flopledger.devnet.status import read_status, stop_orphans
from flopledger.devnet.supervisor import DevnetError, ProcessSpec, Supervisor

# A child that records when it got SIGTERM, then exits 0.
CHILD = """
import signal, sys, time
def stop(*_):
    open(sys.argv[1], "a").write(sys.argv[2] + " " + repr(time.monotonic()) + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[3], "w").write("ready")
while True:
    time.sleep(0.05)
"""


def spec(tmp_path: Path, name: str) -> ProcessSpec:
    ready = tmp_path / f"{name}.ready"
    return ProcessSpec(
        name=name,
        argv=[sys.executable, "-c", CHILD, str(tmp_path / "stops"), name, str(ready)],
        env=dict(os.environ),
        is_ready=ready.exists,
        ready_timeout_s=20,
    )


def test_children_start_ready_and_stop_in_reverse_order(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "devnet", threading.Event())
    for name in ("first", "second", "third"):
        supervisor.start(spec(tmp_path, name))
    status = read_status(tmp_path / "devnet")
    assert status is not None and [p["name"] for p in status["processes"]] == [
        "first",
        "second",
        "third",
    ]
    assert status["supervisor_pid"] == os.getpid() and status["stopped"] is False
    codes = supervisor.stop_all()
    assert codes == {"first": 0, "second": 0, "third": 0}
    stops = [line.split()[0] for line in (tmp_path / "stops").read_text().splitlines()]
    assert stops == ["third", "second", "first"]
    status = read_status(tmp_path / "devnet")
    assert status is not None and status["stopped"] is True
    assert all(p["exit_status"] == 0 for p in status["processes"])


# A child that is ready only once its peer has started: started one at a time, neither would be.
PEER_CHILD = """
import pathlib, sys, time
mine, peer, ready = map(pathlib.Path, sys.argv[1:4])
mine.write_text("started")
while not peer.exists():
    time.sleep(0.05)
ready.write_text("ready")
time.sleep(30)
"""


def test_children_started_together_overlap_their_start_up(tmp_path: Path) -> None:
    """The devnet's agents load SmolLM2 at once (``start_together``): every child runs
    before any is waited for."""
    supervisor = Supervisor(tmp_path / "devnet", threading.Event())
    specs = []
    for name, peer in (("left", "right"), ("right", "left")):
        ready = tmp_path / f"{name}.ready"
        argv = [sys.executable, "-c", PEER_CHILD]
        argv += [str(tmp_path / f"{name}.started"), str(tmp_path / f"{peer}.started"), str(ready)]
        specs.append(ProcessSpec(name=name, argv=argv, env=dict(os.environ), is_ready=ready.exists))
    try:
        children = supervisor.start_together(specs)
        assert [child.spec.name for child in children] == ["left", "right"]
        assert all(child.is_running for child in children)
    finally:
        supervisor.stop_all(deadline_s=10)


def test_a_child_dying_while_started_together_is_named(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "devnet", threading.Event())
    dying = ProcessSpec(
        name="dying",
        argv=[sys.executable, "-c", "import sys; print('model not registered'); sys.exit(2)"],
        env=dict(os.environ),
        is_ready=lambda: False,
    )
    try:
        with pytest.raises(DevnetError, match=r"dying \(pid \d+\) exited with status 2"):
            supervisor.start_together([spec(tmp_path, "healthy"), dying])
    finally:
        supervisor.stop_all(deadline_s=10)


def test_a_child_dying_during_start_up_is_named_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "devnet", threading.Event())
    dying = ProcessSpec(
        name="dying",
        argv=[sys.executable, "-c", "import sys; print('cannot bind'); sys.exit(4)"],
        env=dict(os.environ),
        is_ready=lambda: False,
    )
    with pytest.raises(DevnetError, match=r"dying \(pid \d+\) exited with status 4") as error:
        supervisor.start(dying)
    assert "cannot bind" in str(error.value)
    assert (tmp_path / "devnet" / "logs" / "dying.log").read_text().strip() == "cannot bind"


def test_a_readiness_timeout_is_an_error(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "devnet", threading.Event())
    never = ProcessSpec(
        name="never",
        argv=[sys.executable, "-c", "import time; time.sleep(30)"],
        env=dict(os.environ),
        is_ready=lambda: False,
        ready_timeout_s=0.5,
    )
    with pytest.raises(DevnetError, match="timed out"):
        supervisor.start(never)
    assert supervisor.stop_all(deadline_s=5)["never"] is not None


def test_orphans_of_a_dead_supervisor_are_stopped(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "devnet", threading.Event())
    child = supervisor.start(spec(tmp_path, "orphan"))
    status = json.loads((tmp_path / "devnet" / "status.json").read_text())
    status["supervisor_pid"] = 2**22 + 1  # a supervisor that is gone
    (tmp_path / "devnet" / "status.json").write_text(json.dumps(status))
    assert stop_orphans(tmp_path / "devnet") == ["orphan"]
    assert child.process.wait(timeout=10) == 0
    time.sleep(0.1)
    assert stop_orphans(tmp_path / "devnet") == []

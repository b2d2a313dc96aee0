"""The result spool: every computed result is written to disk before it is uploaded and
committed, and removed only once the ledger holds its commitment. After a crash, or an API
or NATS outage that outlasts the process, the next start delivers what the spool holds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec

SPOOL_ENTRIES_MAX = 1_000
"""Results waiting at most (more would mean deliveries failing for a long time)."""
_JOB_FILE = re.compile(r"^[a-z0-9-]{1,64}\.result$")


class PendingResult(msgspec.Struct, frozen=True, kw_only=True):
    """A computed result not yet acknowledged by the ledger."""

    job_id: str
    commitment: bytes
    artifact: bytes
    proof: bytes
    """The proof object as uploaded: sealed under the result key when ``sealed``."""
    result_due_ns: int
    sealed: bool = False
    """A private job's (issue 17): its keys are released once the result is committed."""


class SpoolFull(Exception):
    """``SPOOL_ENTRIES_MAX`` results are already waiting."""


class ResultSpool:
    """One file per job under ``directory``, written with write-fsync-rename."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def save(self, result: PendingResult) -> None:
        path = self._path(result.job_id)
        if not path.exists() and len(self.list_job_ids()) >= SPOOL_ENTRIES_MAX:
            raise SpoolFull(f"{SPOOL_ENTRIES_MAX} results are waiting in {self.directory}")
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            handle.write(msgspec.msgpack.encode(result))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)

    def load(self, job_id: str) -> PendingResult | None:
        path = self._path(job_id)
        if not path.exists():
            return None
        return msgspec.msgpack.decode(path.read_bytes(), type=PendingResult)

    def remove(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)

    def list_job_ids(self) -> list[str]:
        return sorted(
            p.name.removesuffix(".result")
            for p in self.directory.iterdir()
            if _JOB_FILE.match(p.name)
        )

    def _path(self, job_id: str) -> Path:
        if not _JOB_FILE.match(f"{job_id}.result"):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.directory / f"{job_id}.result"

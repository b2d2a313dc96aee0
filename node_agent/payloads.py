"""The node's side of a data job's payloads (issue 17): its inputs in, its result's key out.

Inputs. A data job names each input object by digest (``domain.workloads.input_digests``).
The node streams each one from the object store (the store checks the digest at the end) and,
for a private job, opens it (``proofs.sealed_object``) with the inputs key the consumer
released to it on the log (``job.release_key``, unwrapped with the node's X25519 key derived
from its Ed25519 key file). The node waits for that release while the job is claimed by it;
without one the claim lapses on the ledger (``ClaimLapsed``: no bond lost, no blame). An
object that is absent, damaged or does not open under the released key means the consumer's
data is not what its job claimed: ``InputsUnusable``, and the node releases the job rather
than compute on something else.

Keys out. A private job's result (the proof object) is sealed under a fresh result key. Once
the result is committed, ``KeyCourier`` wraps the result key to the consumer, and the inputs
and result keys to every validator drawn to judge it (replacements included), each release
recorded on the log: validators open the consumer's own ciphertext themselves, so a node that
ran on other data cannot make them accept. The two keys are kept under the agent's state
directory (``adapters.job_keys``'s format, mode 0600) until the job is decided, so a restarted
agent still releases them; the maintenance tick calls ``resume`` for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from adapters.job_keys import JobKeyError, get_job_key_path, load_job_key, save_job_key
from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.wire import JobView
from adapters.nats.errors import ArtifactCorrupt, ArtifactNotFound
from domain.commands import ExpireJob, RegisterEncryptionKey, ReleaseJobKey
from domain.job_states import CLAIMED, RESULT_COMMITTED, SETTLED, VERIFIED
from domain.workloads import WorkloadParams, input_digests, is_private
from node_agent.ledger_link import Ledger, LedgerUnavailable
from node_agent.sinks import ArtifactSink
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.sealed_object import SealedObjectError, open_chunks_async, unwrap_key, wrap_key

_log = structlog.get_logger("flopledger.agent")

INPUTS = "inputs"
RESULT = "result"
KEY_POLL_S = 0.25
"""How often the node looks for a released inputs key, or for newly drawn validators."""
LAPSE_CRANK_AFTER_S = 125.0
"""Past the ledger's default ``key_release_window_ns`` (120 s) with no key: the node cranks
``job.expire`` itself (nobody else is bound to), so that the lapse frees its device slot."""
LAPSE_CRANK_RETRY_S = 5.0
COURIERS_MAX = 1_000
"""Jobs whose keys are being released at once (bounded like the spool)."""
_RELEASING_STATES = frozenset({RESULT_COMMITTED, VERIFIED, SETTLED})


class InputsUnusable(Exception):
    """The job's input objects cannot be what it claims: absent, damaged, or not opening."""


class JobLeftUs(Exception):
    """While waiting for its inputs key the job stopped being ours (its claim lapsed)."""


class KeyCourier:
    """Loads a data job's inputs and releases a private job's keys (module docstring)."""

    def __init__(
        self,
        *,
        identity: Identity,
        ledger: Ledger,
        artifacts: ArtifactSink,
        state_dir: Path,
        poll_s: float = KEY_POLL_S,
    ) -> None:
        self.identity = identity
        self.ledger = ledger
        self.artifacts = artifacts
        self._inputs_dir = state_dir / "job-keys" / INPUTS
        self._result_dir = state_dir / "job-keys" / RESULT
        self._private, self.public_key = derive_encryption_keypair(identity)
        self._poll_s = poll_s
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def ensure_registered(self) -> None:
        """Register the node's encryption key on first use (or rotate one that is not the
        derived key); a ledger before rules v5 refuses, which only matters to private jobs."""
        if await self.ledger.get_encryption_key(self.identity.id) == self.public_key:
            return
        try:
            await self.ledger.send(RegisterEncryptionKey(public_key=self.public_key))
        except ApiProblem as problem:
            _log.warning("encryption_key_refused", code=problem.code, detail=problem.detail)
            return
        _log.info("encryption_key_registered", node_id=self.identity.id)

    async def load_inputs(self, job: JobView, params: WorkloadParams) -> dict[str, bytes]:
        """Every input object's plaintext by name (JobLeftUs, InputsUnusable)."""
        key = await self.wait_inputs_key(job) if is_private(params) else None
        inputs = {}
        for name, digest in input_digests(params).items():
            try:
                inputs[name] = await self._read(digest, key)
            except (ArtifactNotFound, ArtifactCorrupt) as exc:
                raise InputsUnusable(f"input {name} ({digest}): {type(exc).__name__}") from exc
            except SealedObjectError as exc:
                raise InputsUnusable(
                    f"input {name} ({digest}) does not open under the released key"
                ) from exc
        return inputs

    async def wait_inputs_key(self, job: JobView) -> bytes:
        """The inputs key the consumer released to us for this claim (waiting for it while
        the job stays claimed by us, cranking the lapse once the window is surely past),
        saved for the validators' releases later."""
        crank_at = time.monotonic() + LAPSE_CRANK_AFTER_S
        while True:
            for release in job.key_releases:
                is_ours = (
                    release.purpose == INPUTS
                    and release.sender == job.consumer
                    and release.recipient == self.identity.id
                    and release.attempt == job.attempt
                    and release.recipient_key == self.public_key.hex()
                )
                if not is_ours:
                    continue
                try:
                    key = unwrap_key(
                        bytes.fromhex(release.wrapped), self._private, job_id=job.id, purpose=INPUTS
                    )
                except SealedObjectError as exc:
                    raise InputsUnusable("the released inputs key does not unwrap") from exc
                save_job_key(self._inputs_dir, job.id, key)
                return key
            if job.state != CLAIMED or job.node_id != self.identity.id:
                raise JobLeftUs(f"{job.id} is {job.state} (node {job.node_id})")
            if time.monotonic() >= crank_at:
                crank_at = time.monotonic() + LAPSE_CRANK_RETRY_S
                await self._crank_lapse(job.id)
            await asyncio.sleep(self._poll_s)
            job = await self.ledger.get_job(job.id)

    async def _crank_lapse(self, job_id: str) -> None:
        """``job.expire``: the claim lapses (bond back, no blame) once the window passed."""
        try:
            await self.ledger.send(ExpireJob(job_id=job_id))
        except ApiProblem as problem:  # not due yet by the ledger's clock: later
            _log.info("claim_lapse_refused", job_id=job_id, code=problem.code)
            return
        _log.warning("claim_lapsed_without_inputs_key", job_id=job_id)

    def keep_result_key(self, job_id: str, key: bytes) -> None:
        """Keep the result key until the job is decided (before the result leaves us)."""
        save_job_key(self._result_dir, job_id, key)

    def start(self, job_id: str) -> None:
        """Release the job's keys in the background until the job is decided."""
        if job_id in self._tasks or len(self._tasks) >= COURIERS_MAX:
            return
        task = asyncio.create_task(self._release_loop(job_id), name=f"keys:{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def resume(self, committed: list[JobView]) -> None:
        """After a restart: the jobs we committed whose result key we still hold."""
        for job in committed:
            if job.node_id == self.identity.id and self._has_result_key(job.id):
                self.start(job.id)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self, digest: str, key: bytes | None) -> bytes:
        chunks: AsyncIterator[bytes] = self.artifacts.get_stream(digest)
        if key is not None:
            chunks = open_chunks_async(key, chunks)
        return b"".join([chunk async for chunk in chunks])

    def _has_result_key(self, job_id: str) -> bool:
        with contextlib.suppress(JobKeyError):
            load_job_key(self._result_dir, job_id)
            return True
        return False

    async def _release_loop(self, job_id: str) -> None:
        """Release the result key to the consumer, and both keys to each drawn validator,
        until the job leaves the judging state (then forget the keys)."""
        while True:
            try:
                job = await self.ledger.get_job(job_id)
                if job.node_id != self.identity.id or job.state not in _RELEASING_STATES:
                    break
                await self._release_due(job)
                if job.state != RESULT_COMMITTED:
                    break
            except ApiProblem as problem:
                _log.warning("key_release_refused", job_id=job_id, code=problem.code)
            except LedgerUnavailable as exc:
                _log.warning("key_release_retry", job_id=job_id, error=str(exc))
            except JobKeyError as exc:
                _log.error("job_keys_lost", job_id=job_id, error=str(exc))
                return
            await asyncio.sleep(self._poll_s)
        self._forget(job_id)

    async def _release_due(self, job: JobView) -> None:
        released = {
            (r.recipient, r.purpose, r.recipient_key)
            for r in job.key_releases
            if r.sender == self.identity.id and r.attempt == job.attempt
        }
        due: list[tuple[str, str]] = [(job.consumer, RESULT)]
        if job.state == RESULT_COMMITTED:
            due += [(v, purpose) for v in job.validators for purpose in (INPUTS, RESULT)]
        for recipient, purpose in due:
            directory = self._inputs_dir if purpose == INPUTS else self._result_dir
            if purpose == INPUTS and not get_job_key_path(directory, job.id).exists():
                continue  # a seeded private job has no input objects to open
            recipient_key = await self.ledger.get_encryption_key(recipient)
            if recipient_key is None:
                _log.info("recipient_without_key", job_id=job.id, recipient=recipient)
                continue
            if (recipient, purpose, recipient_key.hex()) in released:
                continue
            data_key = load_job_key(directory, job.id)
            await self.ledger.send(
                ReleaseJobKey(
                    job_id=job.id,
                    attempt=job.attempt,
                    recipient=recipient,
                    purpose=purpose,  # type: ignore[arg-type]  # one of the Literal's two
                    recipient_key=recipient_key,
                    wrapped=wrap_key(data_key, recipient_key, job_id=job.id, purpose=purpose),
                )
            )
            _log.info("job_key_released", job_id=job.id, recipient=recipient, purpose=purpose)

    def _forget(self, job_id: str) -> None:
        for directory in (self._inputs_dir, self._result_dir):
            with contextlib.suppress(JobKeyError, FileNotFoundError):
                get_job_key_path(directory, job_id).unlink()

"""The audit's envelope signatures, checked in worker processes ahead of the replay.

An envelope's Ed25519 signature and stored digest depend on its record alone, not on the
state the replay builds, so they are the one part of the audit that runs in parallel: each
batch read from the source goes to a process pool (``SignaturePool``), whose workers decode
each command's metadata once and return what is wrong with it, while the replay, which stays
sequential (the hash chain, every rule that needs the state), checks the batches before. The
replay asks ``find_envelope_problem`` at the same point and in the same order as it always did
(after the metadata decodes and the command id matches), so a failure is reported at the same
position with the same check; a verdict the pool did not give (a replayer fed directly, a
small source) is computed inline.

The beacon contributions' and job verdicts' BLS signatures are most of what re-execution costs
(the handler verifies each, and so do the audit's checks). ``BlsChecksAhead`` follows the few
records that say what each must verify against (validator keys, the beacon's last value, the
jobs' result commitments) as batches are read, and the pool verifies those signatures too;
their answers go into ``proofs.bls``'s cache (``remember_verified``), where the rules' and the
checks' own ``verify`` finds them. A signature it cannot foresee (or foresees wrongly) is
simply verified inline: the answers are the backend's, only computed earlier and elsewhere.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import msgspec

from domain.beacon import BEACON_STREAM_ID, Beacon, compute_beacon_message
from domain.events import decode_event
from domain.job import Job
from domain.records import Record
from domain.services.ledger_service import CommandMetadata
from domain.validators import Validator
from proofs import bls
from proofs.identity import verify_signature
from proofs.quorum import verdict_message

SIGNATURE_WORKERS_MAX = 8
SIGNATURE_POOL_MIN_RECORDS = 5_000
"""Below this many records the pool's start (a few hundred ms) costs more than it saves."""
ENVELOPE_OK = ""

_METADATA = msgspec.json.Decoder(CommandMetadata)
BlsCheck = tuple[bytes, bytes, bytes]  # (public key, message, signature)
_T = TypeVar("_T")
_FOLLOWED = frozenset(
    {
        (Validator.STREAM_TYPE, "Registered"),
        (Job.STREAM_TYPE, "ResultCommitted"),
        (Job.STREAM_TYPE, "VerdictRecorded"),
    }
)


def find_envelope_problem(metadata: CommandMetadata) -> str:
    """What is wrong with a command's signed envelope (``ENVELOPE_OK``: nothing): the digest the
    store kept must be the envelope's, and the actor's Ed25519 signature must verify."""
    envelope = metadata.envelope
    if metadata.digest != envelope.digest().hex():
        return "stored digest is not the envelope's"
    if not verify_signature(envelope.actor, envelope.signing_payload(), envelope.signature):
        return f"{envelope.kind} signature is invalid"
    return ENVELOPE_OK


def check_metadatas(metadatas: Sequence[bytes]) -> list[str]:
    """``find_envelope_problem`` of each metadata (one per command); undecodable ones get
    ``ENVELOPE_OK`` here, the replay reports them when it decodes them itself."""
    out = []
    for raw in metadatas:
        try:
            metadata = _METADATA.decode(raw)
        except msgspec.MsgspecError:
            out.append(ENVELOPE_OK)
            continue
        out.append(find_envelope_problem(metadata))
    return out


def verify_bls(checks: Sequence[BlsCheck]) -> list[bool]:
    """``bls.verify`` of each check (in a worker process)."""
    return [bls.verify(pk, message, signature) for pk, message, signature in checks]


class BlsChecksAhead:
    """The BLS checks the beacon contributions and the job verdicts of coming batches will
    need (module docstring): each validator's key from its registration, the beacon's last
    value from its start and closings, each job's result commitment, and for each contribution
    or revealed verdict the message it signs."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._last_value: bytes | None = None
        self._commitments: dict[str, bytes] = {}

    def collect(self, batch: Sequence[Record]) -> list[BlsCheck]:
        checks: list[BlsCheck] = []
        for record in batch:
            if record.stream_id == BEACON_STREAM_ID or (record.stream_type, record.event_type) in (
                _FOLLOWED
            ):
                try:
                    event = decode_event(record)
                except (ValueError, TypeError, msgspec.MsgspecError):
                    continue  # the replay reports it
                check = self._follow(event)
                if check is not None:
                    checks.append(check)
        return checks

    def _follow(self, event: object) -> BlsCheck | None:
        if isinstance(event, Validator.Registered):
            self._keys[event.originator_id] = event.bls_public_key
        elif isinstance(event, Beacon.Started):
            self._last_value = event.genesis_value
        elif isinstance(event, Beacon.EpochClosed):
            self._last_value = event.value
        elif isinstance(event, Beacon.Contributed) and self._last_value is not None:
            key = self._keys.get(event.validator_id)
            if key is not None:
                message = compute_beacon_message(event.epoch, self._last_value)
                return (key, message, event.signature)
        elif isinstance(event, Job.ResultCommitted):
            self._commitments[event.originator_id] = event.result.commitment
        elif isinstance(event, Job.VerdictRecorded):
            key = self._keys.get(event.validator_id)
            commitment = self._commitments.get(event.originator_id)
            if key is not None and commitment is not None:
                verdict = event.verdict
                message = verdict_message(event.originator_id, commitment, verdict.passed)
                return (key, message, verdict.signature)
        return None


def get_signature_workers() -> int:
    """Worker processes for the signatures: the cores this process may run on."""
    return max(1, min(SIGNATURE_WORKERS_MAX, len(os.sched_getaffinity(0))))


class SignaturePool:
    """A process pool that checks the envelopes of record batches (see the module docstring)."""

    def __init__(self, workers: int) -> None:
        # fork: workers start in milliseconds with every module loaded and never re-import the
        # caller's __main__ (spawn and forkserver do). They only run check_metadatas, which
        # takes no lock another thread of this process (the store's reader) could hold.
        context = multiprocessing.get_context("fork")
        self.workers = workers
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def submit(
        self, batch: Sequence[Record], *, envelopes: bool, bls_checks: Sequence[BlsCheck]
    ) -> asyncio.Future[dict[bytes, str]]:
        """Start checking the batch: with ``envelopes`` the commands that begin in it, and
        ``bls_checks``. The future maps each command's metadata to its problem (``ENVELOPE_OK``:
        none), once the BLS answers are in ``proofs.bls``'s cache."""
        loop = asyncio.get_running_loop()
        metadatas = list(dict.fromkeys(r.metadata for r in batch)) if envelopes else []
        chunks = self._split(metadatas)
        parts = [loop.run_in_executor(self._executor, check_metadatas, c) for c in chunks]
        bls_chunks = self._split(list(bls_checks))
        bls_parts = [loop.run_in_executor(self._executor, verify_bls, c) for c in bls_chunks]

        async def gather() -> dict[bytes, str]:
            for checks, answers in zip(bls_chunks, bls_parts, strict=True):
                for (pk, message, signature), ok in zip(checks, await answers, strict=True):
                    bls.remember_verified(pk, message, signature, ok)
            results: dict[bytes, str] = {}
            for chunk, part in zip(chunks, parts, strict=True):
                results.update(zip(chunk, await part, strict=True))
            return results

        return asyncio.ensure_future(gather())

    def _split(self, items: list[_T]) -> list[list[_T]]:
        return [c for c in (items[i :: self.workers] for i in range(self.workers)) if c]

    def close(self) -> None:
        """Stop the workers (pending checks are cancelled)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

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
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import msgspec

from domain.records import Record
from domain.services.ledger_service import CommandMetadata
from proofs.identity import verify_signature

SIGNATURE_WORKERS_MAX = 8
SIGNATURE_POOL_MIN_RECORDS = 5_000
"""Below this many records the pool's start (a few hundred ms) costs more than it saves."""
ENVELOPE_OK = ""

_METADATA = msgspec.json.Decoder(CommandMetadata)


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

    def submit(self, batch: Sequence[Record]) -> asyncio.Future[dict[bytes, str]]:
        """Start checking the commands that begin in ``batch``; the future maps each command's
        metadata to its problem (``ENVELOPE_OK``: none)."""
        metadatas = list(dict.fromkeys(r.metadata for r in batch))
        chunks = [c for c in (metadatas[i :: self.workers] for i in range(self.workers)) if c]
        loop = asyncio.get_running_loop()
        parts = [loop.run_in_executor(self._executor, check_metadatas, c) for c in chunks]

        async def gather() -> dict[bytes, str]:
            results: dict[bytes, str] = {}
            for chunk, part in zip(chunks, parts, strict=True):
                results.update(zip(chunk, await part, strict=True))
            return results

        return asyncio.ensure_future(gather())

    def close(self) -> None:
        """Stop the workers (pending checks are cancelled)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

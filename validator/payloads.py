"""A validator's read of a data job's payloads (issue 17): inputs and result, opened.

A data job names its input objects by digest (``domain.workloads.input_digests``); the
validator streams each from the object store (checked against the digest there) and the
result's proof object by the committed ``proof_digest``. For a private job both are sealed
objects (``proofs.sealed_object``): the validator opens them with the keys released to it on
the log (``job.release_key``, from the node or the consumer, for this attempt and its own
registered key: ``domain.key_releases``), which it unwraps with its X25519 key derived from
its Ed25519 key file. It opens the *consumer's* ciphertext itself, so a node that ran on
other data and released another key gets AEAD failures, not a pass.

Typed failures (the verdict's reason): ``inputs_key_not_released`` / ``result_key_not_released``
once the bound passed without a release (``KeysPending`` is raised before, and the daemon
retries), ``inputs_key_invalid`` / ``result_key_invalid`` (no release to us unwraps),
``inputs_sealed_invalid`` / ``result_sealed_invalid`` (the object does not open under the
released key: substituted data, or a wrong key).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from domain.job import Job
from domain.key_releases import INPUTS, RESULT, get_key_releases
from domain.workloads import WorkloadParams, input_digests, is_private
from proofs.sealed_object import SealedObjectError, open_chunks_async, unwrap_key

KEY_WAIT_MARGIN_NS = 1_500_000_000
"""Stop waiting for a key release this long before the round's commit window closes (the
verdict must still be committed in time): past it a missing release is a failure."""


class StreamSource(Protocol):
    def get_stream(self, digest: str) -> AsyncIterator[bytes]: ...


class KeysPending(Exception):
    """A key this validator needs is not released yet, and the bound has not passed."""


@dataclass(frozen=True)
class OpenedPayloads:
    """The plaintext a data job's check runs on, or why it cannot (``failure``)."""

    inputs: dict[str, bytes] | None
    proof: bytes
    failure: str = ""


async def open_payloads(
    job: Job,
    params: WorkloadParams,
    proof_digest: str,
    source: StreamSource,
    *,
    validator_id: str,
    private_key: bytes,
    public_key: bytes,
    now_ns: int,
) -> OpenedPayloads:
    """Fetch (and for a private job, open) the job's inputs and proof object (module
    docstring); KeysPending while a release may still come."""
    if not is_private(params):
        inputs = {name: await _read(source, d, None) for name, d in input_digests(params).items()}
        return OpenedPayloads(inputs=inputs or None, proof=await _read(source, proof_digest, None))
    keys: dict[str, bytes] = {}
    for purpose in (INPUTS, RESULT) if input_digests(params) else (RESULT,):
        key, failure = _find_key(job, purpose, validator_id, private_key, public_key)
        if key is None and not failure:
            if now_ns < _wait_bound_ns(job):
                raise KeysPending(f"{job.id}: the {purpose} key is not released to us yet")
            failure = f"{purpose}_key_not_released"
        if key is None:
            return OpenedPayloads(inputs=None, proof=b"", failure=failure)
        keys[purpose] = key
    try:
        proof = await _read(source, proof_digest, keys[RESULT])
    except SealedObjectError:
        return OpenedPayloads(inputs=None, proof=b"", failure="result_sealed_invalid")
    inputs = {}
    try:
        for name, digest in input_digests(params).items():
            inputs[name] = await _read(source, digest, keys.get(INPUTS))
    except SealedObjectError:
        return OpenedPayloads(inputs=None, proof=proof, failure="inputs_sealed_invalid")
    return OpenedPayloads(inputs=inputs or None, proof=proof)


def compute_proof_digest(proof: bytes) -> bytes:
    """The digest the node's signed manifest names: its plaintext proof's."""
    return hashlib.sha256(proof).digest()


def _find_key(
    job: Job, purpose: str, validator_id: str, private_key: bytes, public_key: bytes
) -> tuple[bytes | None, str]:
    """The first release of ``purpose`` to us (this attempt, our key) that unwraps; a
    failure reason when releases came but none unwraps; (None, "") when none came."""
    came = False
    for release in get_key_releases(job):
        if (release.recipient, release.purpose, release.attempt) != (
            validator_id,
            purpose,
            job.attempt,
        ) or release.recipient_key != public_key:
            continue
        if release.sender not in (job.consumer, job.node_id):
            continue
        came = True
        try:
            return unwrap_key(release.wrapped, private_key, job_id=job.id, purpose=purpose), ""
        except SealedObjectError:
            continue
    return None, f"{purpose}_key_invalid" if came else ""


def _wait_bound_ns(job: Job) -> int:
    verdict_round = job.current_round
    if verdict_round is None:
        return 0
    return int(verdict_round.commit_deadline_ns) - KEY_WAIT_MARGIN_NS


async def _read(source: StreamSource, digest: str, key: bytes | None) -> bytes:
    chunks: AsyncIterator[bytes] = source.get_stream(digest)
    if key is not None:
        chunks = open_chunks_async(key, chunks)
    return b"".join([chunk async for chunk in chunks])

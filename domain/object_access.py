"""Who may read an object through the API (issue 17): pure rules over the ledger's records.

A ciphertext object (marked so at upload) is readable by anyone who can name it: only the
holders of its data key can open it. A plaintext object is readable by its uploader (one
the ledger records, ``object.record_stored``, and that sent the bytes to the API: a record
alone proves nothing, anyone may sign one for a digest read off the public log), or, for a
job named in the request, by the
job's consumer, the node that claimed it and the validators drawn to check it, when the
object is one of the job's inputs or result objects; for a completion named in the request
(issue 18), by its consumer, its node and the validators drawn for its sampled check, when the
object is the completion's bundle (its ``proof_digest``: the prompt and the tokens, which are
the consumer's). Anyone else is refused, whatever the job or completion: naming one gives no
right to an object that is not its own.
"""

from __future__ import annotations

import enum

from domain.completions import Completion
from domain.job import Job
from domain.workloads import WorkloadParamsError, input_digests, parse_params


class ObjectAccess(enum.StrEnum):
    """Why a read is allowed, or that it is not (the stable reason the API logs)."""

    CIPHERTEXT = "ciphertext"
    UPLOADER = "uploader"
    JOB_PARTY = "job_party"
    COMPLETION_PARTY = "completion_party"
    REFUSED = "refused"


def compute_job_object_digests(job: Job) -> frozenset[str]:
    """The hex digests of the job's input objects (named in its params:
    ``domain.workloads.input_digests``) and of the result objects its node committed. A job
    whose params do not parse (one submitted before rules v5 checked them) names no input."""
    try:
        digests = set(input_digests(parse_params(job.workload.kind, job.workload.params)).values())
    except WorkloadParamsError:
        digests = set()
    if job.result is not None:
        digests |= {job.result.artifact_digest.hex(), job.result.proof_digest.hex()}
    return frozenset(digests)


def compute_job_readers(job: Job) -> frozenset[str]:
    """The actors who may read a job's plaintext objects: its consumer, its node (once it
    claimed the job) and the validators drawn for its current round."""
    readers = {job.consumer, *job.validators}
    if job.node_id:
        readers.add(job.node_id)
    return frozenset(readers)


def compute_completion_readers(completion: Completion) -> frozenset[str]:
    """The actors who may read a completion's bundle: its consumer, its node and the
    validators drawn for its sampled check."""
    return frozenset({completion.consumer, completion.node_id, *completion.validators})


def compute_completion_object_digests(completion: Completion) -> frozenset[str]:
    """The hex digest of the completion's bundle, once its node committed one."""
    usage = completion.usage
    return frozenset({usage.proof_digest.hex()}) if usage is not None else frozenset()


def decide_object_access(
    *,
    digest: str,
    encrypted: bool,
    reader: str | None,
    is_uploader: bool,
    job: Job | None,
    completion: Completion | None = None,
) -> ObjectAccess:
    """Whether ``reader`` (None: an unsigned request) may read the object ``digest``; the
    rules in a fixed order: ciphertext, uploader, job party, completion party."""
    if encrypted:
        return ObjectAccess.CIPHERTEXT
    if reader is None:
        return ObjectAccess.REFUSED
    if is_uploader:
        return ObjectAccess.UPLOADER
    if (
        job is not None
        and reader in compute_job_readers(job)
        and digest in compute_job_object_digests(job)
    ):
        return ObjectAccess.JOB_PARTY
    if (
        completion is not None
        and reader in compute_completion_readers(completion)
        and digest in compute_completion_object_digests(completion)
    ):
        return ObjectAccess.COMPLETION_PARTY
    return ObjectAccess.REFUSED

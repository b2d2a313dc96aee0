"""Who may read an object through the API (issue 17): pure rules over the ledger's records.

A ciphertext object (marked so at upload) is readable by anyone who can name it: only the
holders of its data key can open it. A plaintext object is readable by its uploader (one
the ledger records, ``object.record_stored``, and that sent the bytes to the API: a record
alone proves nothing, anyone may sign one for a digest read off the public log), or, for a
job named in the request, by the
job's consumer, the node that claimed it and the validators drawn to check it, when the
object is one of the job's inputs or result objects. Anyone else is refused, whatever the
job: naming a job gives no right to an object that is not the job's.
"""

from __future__ import annotations

import enum

from domain.job import Job
from domain.workloads import WorkloadParamsError, input_digests, parse_params


class ObjectAccess(enum.StrEnum):
    """Why a read is allowed, or that it is not (the stable reason the API logs)."""

    CIPHERTEXT = "ciphertext"
    UPLOADER = "uploader"
    JOB_PARTY = "job_party"
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


def decide_object_access(
    *,
    digest: str,
    encrypted: bool,
    reader: str | None,
    is_uploader: bool,
    job: Job | None,
) -> ObjectAccess:
    """Whether ``reader`` (None: an unsigned request) may read the object ``digest``; the
    rules in a fixed order: ciphertext, uploader, job party."""
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
    return ObjectAccess.REFUSED

"""How long a job's objects are kept in the object store (issue 17; docs/design.md,
"Objects: uploads, downloads, retention").

A job's inputs (issue 17: the consumer's matrices, model, witness) and its result objects
are what a re-verifying audit (``flopledger audit --verify-work``) and a fraud proof (a
Freivalds entry needs rows of A and B) rest on. So they follow the result artifacts'
retention rule (``domain.policy.compute_artifact_retention_ns``: at least 30 days, longer
when the policy's fraud exposure is): kept while the job runs, and for that long after it
finished (settled, refunded); then eligible for deletion by the operator, the only role
that may purge objects. An object that no job names is kept ``UNREFERENCED_OBJECT_GRACE_NS``
after it was recorded (time for the consumer to submit the job that uses it).
"""

from __future__ import annotations

from domain.job import FINISHED_STATES, Job
from domain.policy import SECOND_NS, LedgerPolicy, compute_artifact_retention_ns

UNREFERENCED_OBJECT_GRACE_NS = 7 * 86_400 * SECOND_NS
"""An uploaded object no job names yet is kept this long after its object-stored record."""


def compute_job_objects_retained_until_ns(
    job: Job, *, finished_at_ns: int, policy: LedgerPolicy | None
) -> int | None:
    """Until when the job's input and result objects must be kept; None while the job is
    not finished (kept for as long as it runs). ``finished_at_ns``: when it settled or was
    refunded (its last event); ``policy``: the one it ran under."""
    if job.state not in FINISHED_STATES:
        return None
    return finished_at_ns + compute_artifact_retention_ns(policy)


def is_object_deletable(
    *,
    now_ns: int,
    recorded_at_ns: int,
    retained_until_ns: tuple[int | None, ...],
) -> bool:
    """Whether an object may be deleted now: every job that names it has let it go (none
    is running, each one's retention has passed), and, when no job names it, the grace
    after its record has passed."""
    if not retained_until_ns:
        return now_ns > recorded_at_ns + UNREFERENCED_OBJECT_GRACE_NS
    return all(until is not None and now_ns > until for until in retained_until_ns)

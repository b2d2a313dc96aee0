"""Job key releases (issue 17, item 2; rules v5): who may hand a private job's data keys to
whom, recorded on the job's stream, and the claim that lapses when the inputs key never came.

A private job's inputs and result are sealed objects (``proofs.sealed_object``) under data
keys the ledger never sees. A release records a data key wrapped (HPKE) to a recipient's
registered encryption key (``domain.encryption_keys``). The rules, checked in this order:

1. the job is private (its params say ``encrypted``);
2. the release names the job's current attempt (a key for an earlier claim is stale);
3. the signer may release this purpose to this recipient now:
   - the consumer: the inputs key to the claiming node while the job is claimed, and any key
     to the drawn validators while they judge the result;
   - the claiming node: any key to the drawn validators while they judge, and the result key
     to the consumer once the result is committed (also after it is decided);
4. the consumer releases the inputs key to its node within ``key_release_window_ns`` of the
   claim (later, the claim lapses instead: a node is never left to race a shortened window);
5. the recipient has registered an encryption key and the release names exactly that key;
6. the same wrap to the same key is not recorded twice, and a job holds at most
   ``KEY_RELEASES_PER_JOB_MAX`` releases.

The ledger cannot open the wrapped key; it records who claimed to release what to whom. A
wrap that does not open is the recipient's to show: it holds the key that proves it.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.job_states import CLAIMED, RESULT_COMMITTED, SETTLED, VERIFIED
from domain.policy import LedgerPolicy
from domain.workloads import ENCRYPTED_FIELD

INPUTS: Final = "inputs"
RESULT: Final = "result"
KEY_PURPOSES: Final = (INPUTS, RESULT)
KEY_RELEASES_PER_JOB_MAX: Final = 256
"""Releases one job may hold: its validators (with replacements) for each purpose, a few
claims, key rotations; a bound so that no sender can grow a job's stream without end."""
ENCRYPTED_PARAM: Final = ENCRYPTED_FIELD  # the one name of the private mark (domain.workloads)
CLAIM_LAPSED_REASON: Final = "claim lapsed: no inputs key released to the node"
_RELEASES: Final = "key_releases"


class _Workload(Protocol):
    @property
    def params(self) -> dict[str, str | int | bool]: ...


class Job(Protocol):
    """What these rules read of a job (``domain.job.Job``, which imports this module)."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def consumer(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def workload(self) -> _Workload: ...
    @property
    def round(self) -> Any: ...
    @property
    def validators(self) -> tuple[str, ...]: ...


class KeyRelease(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded release: a data key wrapped by ``sender`` to ``recipient``'s key."""

    sender: str
    recipient: str
    purpose: str
    attempt: int
    recipient_key: bytes
    wrapped: bytes
    at_ns: int


def is_private_params(params: dict[str, str | int | bool]) -> bool:
    """Whether a job's params make it private (its inputs and result sealed)."""
    return params.get(ENCRYPTED_PARAM) is True


def get_key_releases(job: Job) -> tuple[KeyRelease, ...]:
    """The job's releases, oldest first (none kept as no attribute: a history without
    releases replays to the state it recorded)."""
    releases: tuple[KeyRelease, ...] = vars(job).get(_RELEASES, ())
    return releases


def add_key_release(job: Job, release: KeyRelease) -> None:
    vars(job)[_RELEASES] = (*get_key_releases(job), release)


def has_inputs_key(job: Job) -> bool:
    """Whether the consumer released the inputs key to the node of the current claim."""
    return bool(job.node_id) and get_inputs_key_released_at(job, job.node_id) is not None


def get_inputs_key_released_at(job: Job, node_id: str) -> int | None:
    """When the consumer released the inputs key of the job's current attempt to
    ``node_id`` (the first such release), or None when it did not."""
    for r in get_key_releases(job):
        is_inputs = r.purpose == INPUTS and r.sender == job.consumer
        if is_inputs and r.recipient == node_id and r.attempt == job.attempt:
            return r.at_ns
    return None


def is_claim_lapsed(job: Job, *, claimed_at_ns: int, policy: LedgerPolicy, now_ns: int) -> bool:
    """A private job's claim whose inputs key did not come within the window (rules v5)."""
    return (
        job.state == CLAIMED
        and is_private_params(job.workload.params)
        and not has_inputs_key(job)
        and now_ns > claimed_at_ns + policy.key_release_window_ns
    )


def check_key_release(
    job: Job,
    release: KeyRelease,
    *,
    registered_key: bytes | None,
    claimed_at_ns: int,
    policy: LedgerPolicy,
) -> None:
    """Raise the first rule of the module docstring that ``release`` breaks."""
    if not is_private_params(job.workload.params):
        raise Rejection(
            f"job {job.id} is not private: it has no keys to release",
            code=RejectionCode.JOB_NOT_PRIVATE,
        )
    if release.attempt != job.attempt:
        raise InvalidTransition(
            f"job {job.id} is at attempt {job.attempt}, not {release.attempt}",
            code=RejectionCode.KEY_RELEASE_ATTEMPT_MISMATCH,
        )
    _check_route(job, release)
    if (
        release.sender == job.consumer
        and release.recipient == job.node_id
        and release.purpose == INPUTS
        and release.at_ns > claimed_at_ns + policy.key_release_window_ns
    ):
        raise Rejection(
            f"the inputs key of {job.id} was due by {claimed_at_ns + policy.key_release_window_ns}:"
            " the claim lapses (job.expire)",
            code=RejectionCode.KEY_RELEASE_WINDOW_CLOSED,
        )
    if registered_key is None:
        raise Rejection(
            f"{release.recipient} has registered no encryption key",
            code=RejectionCode.ENCRYPTION_KEY_NOT_REGISTERED,
        )
    if release.recipient_key != registered_key:
        raise Rejection(
            f"the release names a key that is not {release.recipient}'s registered one",
            code=RejectionCode.RECIPIENT_KEY_MISMATCH,
        )
    _check_not_recorded(job, release)


def _check_route(job: Job, release: KeyRelease) -> None:
    """Rule 3: the sender's role, the recipient and the purpose in the job's state."""
    is_consumer = release.sender == job.consumer
    is_node = bool(job.node_id) and release.sender == job.node_id
    if not (is_consumer or is_node):
        raise Unauthorized(
            f"{release.sender} is neither the consumer nor the node of {job.id}",
            code=RejectionCode.KEY_RELEASE_SENDER_UNAUTHORIZED,
        )
    judging = job.state == RESULT_COMMITTED and job.round is not None
    to_validator = judging and release.recipient in job.validators
    allowed = to_validator or (
        is_consumer
        and job.state == CLAIMED
        and release.recipient == job.node_id
        and release.purpose == INPUTS
    )
    allowed = allowed or (
        is_node
        and job.state in (RESULT_COMMITTED, VERIFIED, SETTLED)
        and release.recipient == job.consumer
        and release.purpose == RESULT
    )
    if not allowed:
        raise Unauthorized(
            f"{release.sender} may not release the {release.purpose} key of {job.id} "
            f"({job.state}) to {release.recipient}",
            code=RejectionCode.KEY_RELEASE_RECIPIENT_NOT_ALLOWED,
        )


def _check_not_recorded(job: Job, release: KeyRelease) -> None:
    releases = get_key_releases(job)
    same = (release.recipient, release.purpose, release.attempt, release.recipient_key)
    if any((r.recipient, r.purpose, r.attempt, r.recipient_key) == same for r in releases):
        raise InvalidTransition(
            f"the {release.purpose} key of {job.id} was released to {release.recipient}'s "
            "key already",
            code=RejectionCode.KEY_ALREADY_RELEASED,
        )
    if len(releases) >= KEY_RELEASES_PER_JOB_MAX:
        raise Rejection(
            f"job {job.id} holds {KEY_RELEASES_PER_JOB_MAX} key releases, the most it may",
            code=RejectionCode.KEY_RELEASES_EXHAUSTED,
        )


def compute_release_views(job: Job) -> list[dict[str, object]]:
    """The releases as the job's view shows them (keys in hex)."""
    return [
        {
            "sender": r.sender,
            "recipient": r.recipient,
            "purpose": r.purpose,
            "attempt": r.attempt,
            "recipient_key": r.recipient_key.hex(),
            "wrapped": r.wrapped.hex(),
            "at_ns": r.at_ns,
        }
        for r in get_key_releases(job)
    ]

"""A private job on a ``LocalNetwork``, for the key-release tests (issue 17, item 2): actors
with registered encryption keys, a job whose params say ``encrypted``, and releases of real
HPKE-wrapped data keys (``proofs.sealed_object.wrap_key``)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.job import Job
from domain.policy import SECOND_NS
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, ValidatorKeys, b64
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.sealed_object import new_data_key, wrap_key


@dataclass(frozen=True)
class Release:
    """What a release carries, before it is signed."""

    job_id: str
    attempt: int
    recipient: Identity
    purpose: str
    data_key: bytes


async def register_encryption_key(net: LocalNetwork, actor: Identity) -> bytes:
    public = derive_encryption_keypair(actor)[1]
    await net.run(actor, "key.register", {"public_key": b64(public)})
    return public


async def submit_private_job(
    net: LocalNetwork, consumer: Identity, *, max_price: int = 1_000, deadline_s: float = 3_600
) -> str:
    """A matmul job whose params mark it private (``encrypted``)."""
    result = await net.run(
        consumer,
        "job.submit",
        {
            "workload": {
                "kind": "matmul",
                "gpu_class_min": "consumer",
                "params": {"n": 512, "encrypted": True},
            },
            "max_price": max_price,
            "region": "eu-west",
            "redundancy": 3,
            "deadline_ns": net.now_ns + int(deadline_s * SECOND_NS),
        },
    )
    return result.subject


def release_body(
    release: Release, *, recipient_key: bytes | None = None, wrapped: bytes | None = None
) -> dict[str, object]:
    """A ``job.release_key`` body: by default the data key wrapped to the recipient's
    derived key for this job and purpose."""
    public = derive_encryption_keypair(release.recipient)[1]
    wrap = wrapped or wrap_key(
        release.data_key, public, job_id=release.job_id, purpose=release.purpose
    )
    return {
        "job_id": release.job_id,
        "attempt": release.attempt,
        "recipient": release.recipient.id,
        "purpose": release.purpose,
        "recipient_key": b64(recipient_key or public),
        "wrapped": b64(wrap),
    }


async def release_key(net: LocalNetwork, sender: Identity, release: Release) -> None:
    await net.run(sender, "job.release_key", release_body(release))


async def get_job(net: LocalNetwork, job_id: str) -> Job:
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None
    return job


async def claim(net: LocalNetwork, node: Identity, job_id: str) -> Job:
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    return await get_job(net, job_id)


def validator_identity(keys: list[ValidatorKeys], validator_id: str) -> Identity:
    return next(k.identity for k in keys if k.identity.id == validator_id)


__all__ = ["Release", "new_data_key"]

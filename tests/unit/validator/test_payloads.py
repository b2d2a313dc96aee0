"""A validator opens a private data job's inputs and result with the keys released to it
(``validator.payloads``): the consumer's own ciphertext, so a node's substitute key fails."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from domain.key_releases import KeyRelease
from domain.workloads import parse_params
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.sealed_object import new_data_key, seal_bytes, wrap_key
from validator.payloads import KEY_WAIT_MARGIN_NS, KeysPending, open_payloads

VALIDATOR = Identity.from_seed(b"payloads-validator".ljust(32, b"\0"))
DEADLINE_NS = 10_000_000_000
A, B, PROOF = b"plain A bytes", b"plain B bytes", b"plain C bytes"


@dataclass
class Job:
    """What the payload rules read of ``domain.job.Job``."""

    id: str = "job-1"
    consumer: str = "consumer"
    node_id: str = "node"
    attempt: int = 1
    current_round: Any = field(
        default_factory=lambda: SimpleNamespace(commit_deadline_ns=DEADLINE_NS)
    )
    key_releases: tuple[KeyRelease, ...] = ()


class Source:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    async def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        data = self.objects[digest]
        for start in range(0, len(data), 5):
            yield data[start : start + 5]


def _setup(inputs_key: bytes, result_key: bytes) -> tuple[Any, Source, str]:
    sealed = {name: seal_bytes(inputs_key, data) for name, data in (("a", A), ("b", B))}
    proof = seal_bytes(result_key, PROOF)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in sealed.items()}
    params = parse_params(
        "matmul",
        {**digests, "dtype": "float32", "m": 1, "k": 1, "n": 1, "encrypted": True},
    )
    objects = {digests["a"]: sealed["a"], digests["b"]: sealed["b"]}
    proof_digest = hashlib.sha256(proof).hexdigest()
    objects[proof_digest] = proof
    return params, Source(objects), proof_digest


def _release(
    purpose: str, key: bytes, *, sender: str = "node", wrapped: bytes | None = None
) -> KeyRelease:
    public = derive_encryption_keypair(VALIDATOR)[1]
    return KeyRelease(
        sender=sender,
        recipient=VALIDATOR.id,
        purpose=purpose,
        attempt=1,
        recipient_key=public,
        wrapped=wrapped or wrap_key(key, public, job_id="job-1", purpose=purpose),
        at_ns=1,
    )


def _open(job: Job, params: Any, source: Source, proof_digest: str, now_ns: int = 0) -> Any:
    private, public = derive_encryption_keypair(VALIDATOR)
    return asyncio.run(
        open_payloads(
            job,  # type: ignore[arg-type]
            params,
            proof_digest,
            source,
            validator_id=VALIDATOR.id,
            private_key=private,
            public_key=public,
            now_ns=now_ns,
        )
    )


def test_the_released_keys_open_the_consumers_inputs_and_the_result() -> None:
    inputs_key, result_key = new_data_key(), new_data_key()
    params, source, proof_digest = _setup(inputs_key, result_key)
    job = Job(key_releases=(_release("inputs", inputs_key), _release("result", result_key)))
    opened = _open(job, params, source, proof_digest)
    assert (opened.failure, opened.inputs, opened.proof) == ("", {"a": A, "b": B}, PROOF)


def test_a_missing_release_is_waited_for_then_fails_typed() -> None:
    inputs_key, result_key = new_data_key(), new_data_key()
    params, source, proof_digest = _setup(inputs_key, result_key)
    job = Job(key_releases=(_release("result", result_key),))
    with pytest.raises(KeysPending):
        _open(job, params, source, proof_digest, now_ns=DEADLINE_NS - KEY_WAIT_MARGIN_NS - 1)
    late = _open(job, params, source, proof_digest, now_ns=DEADLINE_NS - KEY_WAIT_MARGIN_NS)
    assert late.failure == "inputs_key_not_released"


def test_a_substitute_inputs_key_fails_on_the_consumers_ciphertext() -> None:
    inputs_key, result_key = new_data_key(), new_data_key()
    params, source, proof_digest = _setup(inputs_key, result_key)
    substitute = new_data_key()  # the node's "own inputs" key
    job = Job(key_releases=(_release("inputs", substitute), _release("result", result_key)))
    assert _open(job, params, source, proof_digest).failure == "inputs_sealed_invalid"


def test_a_wrap_that_does_not_open_and_a_strangers_release() -> None:
    inputs_key, result_key = new_data_key(), new_data_key()
    params, source, proof_digest = _setup(inputs_key, result_key)
    garbage = _release("inputs", inputs_key, wrapped=bytes(80))
    job = Job(key_releases=(garbage, _release("result", result_key)))
    assert _open(job, params, source, proof_digest).failure == "inputs_key_invalid"
    stranger = _release("inputs", inputs_key, sender="someone-else")
    job = Job(key_releases=(stranger, _release("result", result_key)))
    late = _open(job, params, source, proof_digest, now_ns=DEADLINE_NS)
    assert late.failure == "inputs_key_not_released"

"""Issue 17: a node that is not the job's node cannot read the consumer's plaintext input
through the API, whatever it signs.

The consumer uploads its A and B in plaintext (a public job) and submits a job naming them;
node A claims it. Node B, registered, staked and attested like A, with valid keys, tries:
reading without naming a job, naming the consumer's job, naming a job of its own, signing
an ``object.record_stored`` for the digest (read off the public log) to pass as an uploader,
and re-signing node A's request as itself. Each read is refused (403, or 401 for a request
that is not what its signer signed) and no byte of the input is returned; node A, the job's
node, reads it. (NATS itself lets every node read every object: private jobs seal their
inputs, issue 17's crypto; this is the API's rule for plaintext.)
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient

from adapters.ledger_api.client import Forbidden
from adapters.ledger_api.objects_client import get_object_bytes, put_object_bytes
from api.app import create_app
from domain import commands as c
from proofs.request_auth import ACTOR_HEADER, sign_request
from tests.unit.api.conftest import (
    SECOND_NS,
    ApiEnv,
    Clock,
    deposit,
    make_deps,
    register_active_node,
    seeded,
)

CONSUMER, NODE_A, NODE_B = seeded("adv-consumer"), seeded("adv-node-a"), seeded("adv-node-b")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ApiEnv]:
    clock, operator = Clock(), seeded("operator")
    deps = make_deps(tmp_path, operator, clock)
    with TestClient(create_app(deps)) as http:
        yield ApiEnv(deps=deps, http=http, clock=clock, operator=operator)


def _matrix(seed: int) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).standard_normal((8, 8)).astype(np.float32))
    return buffer.getvalue()


def _submit(env: ApiEnv, consumer: object, a: str, b: str) -> str:
    params: dict[str, str | int | bool] = {"a": a, "b": b, "dtype": "float32"}
    params |= {"m": 8, "k": 8, "n": 8}
    accepted = env.client(consumer).send(  # type: ignore[arg-type]
        c.SubmitJob(
            workload=c.Workload(kind="matmul", gpu_class_min="consumer", params=params),
            max_price=500,
            region="eu-west",
            deadline_ns=env.clock.now_ns + 3_600 * SECOND_NS,
        )
    )
    return accepted.job_id


def test_another_node_cannot_read_the_consumers_plaintext_input(env: ApiEnv) -> None:
    secret_a, secret_b = _matrix(1), _matrix(2)
    # Rules v5: a job's inputs are the consumer's own uploads, recorded by it (log fees).
    deposit(env, CONSUMER, 10_000)
    a = put_object_bytes(env.client(), CONSUMER, secret_a)
    b = put_object_bytes(env.client(), CONSUMER, secret_b)
    job_id = _submit(env, CONSUMER, a.digest, b.digest)
    for node in (NODE_A, NODE_B):
        register_active_node(env, node)
    env.client(NODE_A).send(c.ClaimJob(job_id=job_id, node_id=NODE_A.id))

    attempts = {
        "no job named": None,
        "the consumer's job": job_id,
    }
    for label, named in attempts.items():
        with pytest.raises(Forbidden) as refused:
            get_object_bytes(env.client(), NODE_B, a.digest, job_id=named)
        assert refused.value.code == "object_read_refused", label

    # A job of its own names other inputs: naming it opens nothing of the consumer's.
    deposit(env, NODE_B, 10_000)
    own_a = put_object_bytes(env.client(), NODE_B, _matrix(3))
    own_job = _submit(env, NODE_B, own_a.digest, own_a.digest)
    with pytest.raises(Forbidden):
        get_object_bytes(env.client(), NODE_B, a.digest, job_id=own_job)

    # A record of the digest, signed by B (the ledger cannot tell who holds the bytes), does
    # not make B an uploader.
    env.client(NODE_B).send(
        c.RecordObjectStored(
            digest=bytes.fromhex(a.digest), size_bytes=a.size_bytes, uploader=NODE_B.id
        )
    )
    with pytest.raises(Forbidden):
        get_object_bytes(env.client(), NODE_B, a.digest)

    # Node A's request, re-addressed to B's id, is not B's signature.
    path = f"/v1/objects/{a.digest}?job={job_id}"
    network = env.client().get_network_id()
    headers = sign_request(NODE_A, "GET", path, network, env.clock.now_ns)
    forged = env.http.get(path, headers=headers | {ACTOR_HEADER: NODE_B.id})
    assert forged.status_code == 401
    assert secret_a not in forged.content

    # The job's node reads it, and so does its consumer.
    assert get_object_bytes(env.client(), NODE_A, a.digest, job_id=job_id) == secret_a
    assert get_object_bytes(env.client(), CONSUMER, b.digest, job_id=job_id) == secret_b

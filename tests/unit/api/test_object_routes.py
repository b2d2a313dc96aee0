"""The object routes (issue 17) on the in-process app with an in-memory object store: a
streamed PUT answers the digest of the bytes, a GET gives them back to whom may read them,
and every refusal is problem+json with its stable code."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from adapters.ledger_api.client import (
    ApiClient,
    ApiProblem,
    Forbidden,
    NotAuthenticated,
    NotFoundProblem,
)
from adapters.ledger_api.objects_client import (
    get_object_bytes,
    get_object_to_file,
    put_object_bytes,
    put_object_file,
)
from api.app import create_app
from api.object_backend import ObjectBackend
from domain import commands as c
from proofs.request_auth import sign_request
from proofs.sealed_object import new_data_key, seal_bytes
from tests.object_fakes import MemoryObjectStore
from tests.unit.api.conftest import (
    SECOND_NS,
    ApiEnv,
    Clock,
    deposit,
    make_deps,
    register_active_node,
    seeded,
)

CONSUMER, NODE, STRANGER = seeded("obj-consumer"), seeded("obj-node"), seeded("obj-stranger")
SMALL_LIMIT_BYTES = 1024


def npy_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).standard_normal((4, 4)).astype(np.float32))
    return buffer.getvalue()


def api(env: ApiEnv, identity: Any = None) -> ApiClient:
    return env.client(identity)


def fake_store(env: ApiEnv) -> MemoryObjectStore:
    store = env.deps.objects._store
    assert isinstance(store, MemoryObjectStore)
    return store


def submit_data_job(env: ApiEnv, a: str, b: str) -> str:
    deposit(env, CONSUMER, 10_000)
    params: dict[str, str | int | bool] = {"a": a, "b": b, "dtype": "float32", "m": 4, "k": 4}
    params["n"] = 4
    workload = c.Workload(kind="matmul", gpu_class_min="consumer", params=params)
    accepted = api(env, CONSUMER).send(
        c.SubmitJob(
            workload=workload,
            max_price=500,
            region="eu-west",
            deadline_ns=env.clock.now_ns + 3_600 * SECOND_NS,
        )
    )
    return accepted.job_id


def test_a_put_answers_the_digest_of_the_bytes_and_a_get_gives_them_back(
    api_env: ApiEnv, tmp_path: Path
) -> None:
    data = npy_bytes(1)
    source = tmp_path / "a.npy"
    source.write_bytes(data)
    seen: list[tuple[int, int | None]] = []
    info = put_object_file(
        api(api_env), api_env.operator, source, progress=lambda d, t: seen.append((d, t))
    )
    assert info.digest == hashlib.sha256(data).hexdigest()
    assert (info.size_bytes, info.encrypted) == (len(data), False)
    assert seen[-1] == (len(data), len(data))
    out = tmp_path / "back.npy"
    get_object_to_file(api(api_env), api_env.operator, info.digest, out)
    assert out.read_bytes() == data
    # The uploader signed its record, so the ledger knows it.
    record = api(api_env).get("/v1/events", {"limit": 1000})
    assert any(item["event_type"].endswith("ObjectStored") for item in record["items"])


def test_a_plaintext_object_is_refused_to_others_and_to_unsigned_reads(api_env: ApiEnv) -> None:
    data = npy_bytes(2)
    info = put_object_bytes(api(api_env), api_env.operator, data)
    with pytest.raises(Forbidden) as refused:
        get_object_bytes(api(api_env), STRANGER, info.digest)
    assert refused.value.code == "object_read_refused"
    with pytest.raises(NotAuthenticated) as unsigned:
        get_object_bytes(api(api_env), None, info.digest)
    assert unsigned.value.code == "request_unsigned"


def test_a_ciphertext_object_is_readable_by_anyone_who_names_it(api_env: ApiEnv) -> None:
    sealed = seal_bytes(new_data_key(), b"the consumer's matrix" * 100)
    info = put_object_bytes(api(api_env), api_env.operator, sealed, encrypted=True)
    assert info.encrypted
    assert get_object_bytes(api(api_env), None, info.digest) == sealed
    response = api_env.http.get(f"/v1/objects/{info.digest}")
    assert response.headers["x-flop-object-encrypted"] == "1"
    assert response.headers["content-length"] == str(len(sealed))


def test_plaintext_marked_ciphertext_is_refused(api_env: ApiEnv) -> None:
    for plain in (npy_bytes(9), b"FLS", b""):
        with pytest.raises(ApiProblem) as refused:
            put_object_bytes(api(api_env), api_env.operator, plain, encrypted=True)
        assert (refused.value.status, refused.value.code) == (422, "object_not_sealed")
    assert fake_store(api_env).objects == {}


def test_the_job_parties_read_its_inputs_and_nobody_else(api_env: ApiEnv) -> None:
    # Rules v5: a job's inputs are the consumer's own uploads (its records pay the log fee).
    deposit(api_env, CONSUMER, 1_000)
    a = put_object_bytes(api(api_env), CONSUMER, npy_bytes(3))
    b = put_object_bytes(api(api_env), CONSUMER, npy_bytes(4))
    other = put_object_bytes(api(api_env), api_env.operator, npy_bytes(5))
    job_id = submit_data_job(api_env, a.digest, b.digest)
    assert get_object_bytes(api(api_env), CONSUMER, a.digest, job_id=job_id) == npy_bytes(3)
    # Naming the job gives no right to an object that is not the job's ...
    with pytest.raises(Forbidden):
        get_object_bytes(api(api_env), CONSUMER, other.digest, job_id=job_id)
    # ... nor to a node that has not claimed it, nor to the job's objects without naming it.
    register_active_node(api_env, NODE)
    with pytest.raises(Forbidden):
        get_object_bytes(api(api_env), NODE, b.digest, job_id=job_id)
    api(api_env, NODE).send(c.ClaimJob(job_id=job_id, node_id=NODE.id))
    assert get_object_bytes(api(api_env), NODE, b.digest, job_id=job_id) == npy_bytes(4)
    with pytest.raises(Forbidden):
        get_object_bytes(api(api_env), NODE, b.digest)
    with pytest.raises(Forbidden):
        get_object_bytes(api(api_env), STRANGER, b.digest, job_id=job_id)
    with pytest.raises(NotFoundProblem) as absent:
        get_object_bytes(api(api_env), NODE, a.digest, job_id="no-such-job")
    assert absent.value.code == "job_not_found"


def test_a_signature_for_one_request_does_not_open_another(api_env: ApiEnv) -> None:
    first = put_object_bytes(api(api_env), api_env.operator, b"first")
    second = put_object_bytes(api(api_env), api_env.operator, b"second")
    network = api(api_env).get_network_id()
    headers = sign_request(
        api_env.operator, "GET", f"/v1/objects/{first.digest}", network, api_env.clock.now_ns
    )
    assert api_env.http.get(f"/v1/objects/{first.digest}", headers=headers).content == b"first"
    response = api_env.http.get(f"/v1/objects/{second.digest}", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "request_signature_invalid"
    api_env.clock.advance(301)
    late = api_env.http.get(f"/v1/objects/{first.digest}", headers=headers)
    assert (late.status_code, late.json()["code"]) == (401, "request_expired")


def test_absent_and_malformed_digests(api_env: ApiEnv) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(NotFoundProblem):
        get_object_bytes(api(api_env), api_env.operator, absent)
    for bad in ("ABCD", "ab" * 31, "AB" * 32, "zz" * 32):
        response = api_env.http.get(f"/v1/objects/{bad}")
        assert response.status_code == 422, bad
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "object_digest_invalid"


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[ApiEnv]:
    """An API whose genesis policy lowers the upload limit."""
    clock, operator = Clock(), seeded("operator")
    overrides: dict[str, int | bool] = {"object_upload_bytes_max": SMALL_LIMIT_BYTES}
    deps = make_deps(tmp_path, operator, clock, policy_overrides=overrides)
    with TestClient(create_app(deps)) as http:
        yield ApiEnv(deps=deps, http=http, clock=clock, operator=operator)


def test_an_upload_over_the_limit_is_413_and_stores_and_records_nothing(
    small_limit: ApiEnv,
) -> None:
    env = small_limit
    head = env.client().get("/v1/events", {"limit": 1000})["items"]
    at_limit = put_object_bytes(api(env), env.operator, b"a" * SMALL_LIMIT_BYTES)
    assert at_limit.size_bytes == SMALL_LIMIT_BYTES
    fake_store(env).objects.clear()
    with pytest.raises(ApiProblem) as refused:
        put_object_bytes(api(env), env.operator, b"a" * (SMALL_LIMIT_BYTES + 1))
    assert (refused.value.status, refused.value.code) == (413, "artifact_too_large")
    # A body that does not declare its length is cut off as it passes the limit.
    network = api(env).get_network_id()
    headers = sign_request(env.operator, "PUT", "/v1/objects", network, env.clock.now_ns)
    response = env.http.put(
        "/v1/objects", content=iter([b"b" * 1000, b"b" * 1000]), headers=headers
    )
    assert response.status_code == 413
    assert response.json()["code"] == "artifact_too_large"
    assert fake_store(env).objects == {}
    after = env.client().get("/v1/events", {"limit": 1000})["items"]
    assert len(after) == len(head) + 1  # the one record of the object at the limit


def test_a_put_needs_a_signed_request_and_a_well_formed_mark(api_env: ApiEnv) -> None:
    unsigned = api_env.http.put("/v1/objects", content=b"data")
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "request_unsigned")
    network = api(api_env).get_network_id()
    headers = sign_request(api_env.operator, "PUT", "/v1/objects", network, api_env.clock.now_ns)
    bad = api_env.http.put(
        "/v1/objects", content=b"data", headers=headers | {"X-Flop-Object-Encrypted": "yes"}
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "object_header_invalid")
    assert fake_store(api_env).objects == {}


def test_without_an_object_store_the_routes_are_503(api_env: ApiEnv) -> None:
    api_env.deps.objects = ObjectBackend()
    response = api_env.http.get("/v1/objects/" + "ab" * 32)
    assert (response.status_code, response.json()["code"]) == (503, "object_store_unavailable")

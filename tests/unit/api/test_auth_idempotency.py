"""Envelope authentication over HTTP (401/403 problems) and Idempotency-Key semantics."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from adapters.store.idempotency import MemoryIdempotencyKeys
from api.errors import PROBLEM_MEDIA_TYPE, problem_type
from proofs.envelope import FRESHNESS_WINDOW_NS, from_command_envelope, sign_command
from proofs.identity import Identity
from tests.unit.api.conftest import ApiEnv, seeded

DEPOSIT_PATH = "/v1/accounts/deposits"


def signed_deposit(
    env: ApiEnv,
    signer: Identity,
    *,
    nonce: str = "nonce-0001",
    amount: int = 10,
    issued_at_ns: int | None = None,
) -> dict[str, Any]:
    envelope = sign_command(
        signer,
        "account.deposit",
        {"account_owner": seeded("consumer").id, "amount": amount, "chain_reference": "test-tx"},
        nonce=nonce,
        issued_at_ns=env.clock.now_ns if issued_at_ns is None else issued_at_ns,
        network=env.client().get_network_id(),
    )
    wire: dict[str, Any] = msgspec.to_builtins(from_command_envelope(envelope))
    return wire


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["type"] == problem_type(code)
    assert problem["instance"] == DEPOSIT_PATH
    assert problem["title"] and problem["detail"]


def test_a_valid_deposit_is_201(api_env: ApiEnv) -> None:
    response = api_env.http.post(DEPOSIT_PATH, json=signed_deposit(api_env, api_env.operator))
    assert response.status_code == 201
    assert response.json()["subject"] == f"user:{seeded('consumer').id}"


def test_bad_signature_is_401(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, api_env.operator)
    signature = bytearray(base64.b64decode(wire["signature"]))
    signature[0] ^= 1
    wire["signature"] = base64.b64encode(bytes(signature)).decode()
    assert_problem(api_env.http.post(DEPOSIT_PATH, json=wire), 401, "signature_invalid")


def test_tampered_body_is_401(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, api_env.operator)
    wire["body"]["amount"] = 10_000
    assert_problem(api_env.http.post(DEPOSIT_PATH, json=wire), 401, "signature_invalid")


def test_actor_who_is_not_an_operator_is_403(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, seeded("mallory"))
    response = api_env.http.post(DEPOSIT_PATH, json=wire)
    assert response.status_code == 403
    assert response.json()["code"] == "operator_only"


def test_actor_that_did_not_sign_is_401(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, seeded("mallory"))
    wire["actor"] = api_env.operator.id
    assert_problem(api_env.http.post(DEPOSIT_PATH, json=wire), 401, "signature_invalid")


def test_expired_envelope_is_401(api_env: ApiEnv) -> None:
    issued = api_env.clock.now_ns - FRESHNESS_WINDOW_NS - 1
    wire = signed_deposit(api_env, api_env.operator, issued_at_ns=issued)
    assert_problem(api_env.http.post(DEPOSIT_PATH, json=wire), 401, "envelope_expired")


def test_replayed_envelope_is_401_and_writes_nothing(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, api_env.operator)
    assert api_env.http.post(DEPOSIT_PATH, json=wire).status_code == 201
    head = api_env.http.get("/v1/events").json()["head_position"]
    assert_problem(api_env.http.post(DEPOSIT_PATH, json=wire), 401, "command_replayed")
    assert api_env.http.get("/v1/events").json()["head_position"] == head


def test_nonce_reused_for_another_body_is_401(api_env: ApiEnv) -> None:
    api_env.http.post(DEPOSIT_PATH, json=signed_deposit(api_env, api_env.operator, amount=1))
    other = signed_deposit(api_env, api_env.operator, amount=2)
    assert_problem(api_env.http.post(DEPOSIT_PATH, json=other), 401, "nonce_already_used")


def test_kind_must_match_the_route(api_env: ApiEnv) -> None:
    response = api_env.http.post("/v1/jobs", json=signed_deposit(api_env, api_env.operator))
    assert response.status_code == 422
    assert response.json()["code"] == "kind_mismatch"


def test_the_signature_is_checked_before_the_route(api_env: ApiEnv) -> None:
    """One verification, by the command bus, before the route's checks look at anything."""
    wire = signed_deposit(api_env, api_env.operator)
    wire["body"]["amount"] = 11
    response = api_env.http.post("/v1/jobs", json=wire)
    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"


def test_path_id_must_match_the_body(api_env: ApiEnv) -> None:
    node = seeded("node-1")
    envelope = sign_command(
        node,
        "node.attestation.challenge",
        {"node_id": node.id},
        nonce="nonce-0001",
        issued_at_ns=api_env.clock.now_ns,
    )
    other = seeded("node-2").id
    response = api_env.http.post(
        f"/v1/nodes/{other}/attestation/challenge",
        json=msgspec.to_builtins(from_command_envelope(envelope)),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "path_mismatch"


def test_same_idempotency_key_and_body_get_the_same_response(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, api_env.operator)
    headers = {"Idempotency-Key": "key-1"}
    first = api_env.http.post(DEPOSIT_PATH, json=wire, headers=headers)
    second = api_env.http.post(DEPOSIT_PATH, json=wire, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert api_env.http.get("/v1/events").json()["head_position"] == first.json()["last_position"]


def test_retry_reaching_a_fresh_process_rebuilds_the_same_response(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, api_env.operator)
    first = api_env.http.post(DEPOSIT_PATH, json=wire, headers={"Idempotency-Key": "k"})
    api_env.deps.idempotency = MemoryIdempotencyKeys()  # as if it reached another process
    second = api_env.http.post(DEPOSIT_PATH, json=wire, headers={"Idempotency-Key": "k"})
    assert (second.status_code, second.json()) == (201, first.json())


def test_same_idempotency_key_with_another_body_is_409(api_env: ApiEnv) -> None:
    headers = {"Idempotency-Key": "key-1"}
    first = signed_deposit(api_env, api_env.operator, nonce="nonce-0001")
    assert api_env.http.post(DEPOSIT_PATH, json=first, headers=headers).status_code == 201
    other = signed_deposit(api_env, api_env.operator, nonce="nonce-0002")
    response = api_env.http.post(DEPOSIT_PATH, json=other, headers=headers)
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"


def test_idempotency_key_too_long_is_422(api_env: ApiEnv) -> None:
    wire = signed_deposit(api_env, api_env.operator)
    response = api_env.http.post(DEPOSIT_PATH, json=wire, headers={"Idempotency-Key": "k" * 129})
    assert response.status_code == 422

"""Denial-of-service limits over HTTP (issue 16, item 8): event streams past a cap are 503
``too_many_streams`` and a signing actor past its rate is 429 ``rate_limited``, both
problem+json with Retry-After; a forged command spends nobody's rate."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from api.errors import PROBLEM_MEDIA_TYPE, problem_type
from api.limits import ActorRateLimiter, LimitExceeded, StreamSlots
from proofs.envelope import from_command_envelope, sign_command
from proofs.identity import Identity
from tests.unit.api.conftest import ApiEnv, deposit, seeded

FEED_TIMEOUT_S = 5
DEPOSIT_PATH = "/v1/accounts/deposits"


@dataclass
class FakeClock:
    now_s: float = 1_000.0

    def __call__(self) -> float:
        return self.now_s


def assert_limited(response: Any, status: int, code: str) -> int:
    """The response is the limit's problem+json; returns its Retry-After seconds."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    problem = response.json()
    assert (problem["status"], problem["code"], problem["type"]) == (
        status,
        code,
        problem_type(code),
    )
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


def open_waiting_stream(env: ApiEnv, done: list[list[str]]) -> threading.Thread:
    """A stream that waits for one record past the head, in a thread."""
    head = env.http.get("/v1/events", params={"limit": 1}).json()["head_position"]

    def read() -> None:
        with env.http.stream(
            "GET", "/v1/events/stream", params={"from": head + 1, "limit": 1}
        ) as response:
            assert response.status_code == 200
            done.append(list(response.iter_lines()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + FEED_TIMEOUT_S
    while env.deps.streams.open == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert env.deps.streams.open == 1
    return reader


def test_a_stream_past_the_per_client_cap_is_503_and_a_slot_frees_when_one_ends(
    api_env: ApiEnv,
) -> None:
    api_env.deps.streams = StreamSlots(streams_max=10, per_client_max=1)
    done: list[list[str]] = []
    reader = open_waiting_stream(api_env, done)
    refused = api_env.http.get("/v1/events/stream", params={"limit": 1})
    assert assert_limited(refused, 503, "too_many_streams") >= 1
    assert "per client" in refused.json()["detail"]
    deposit(api_env, seeded("consumer"), 10)  # the waiting stream gets its record and ends
    reader.join(timeout=FEED_TIMEOUT_S)
    assert not reader.is_alive() and done
    assert api_env.deps.streams.open == 0
    again = api_env.http.get("/v1/events/stream", params={"limit": 1})
    assert again.status_code == 200 and "id: 1" in again.text


def test_a_stream_past_the_process_cap_is_503(api_env: ApiEnv) -> None:
    api_env.deps.streams = StreamSlots(streams_max=1, per_client_max=8)
    done: list[list[str]] = []
    reader = open_waiting_stream(api_env, done)
    refused = api_env.http.get("/v1/events/stream", params={"limit": 1})
    assert_limited(refused, 503, "too_many_streams")
    assert "this server" in refused.json()["detail"]
    deposit(api_env, seeded("consumer"), 10)
    reader.join(timeout=FEED_TIMEOUT_S)
    assert not reader.is_alive()


def signed_deposit(env: ApiEnv, signer: Identity, nonce: str) -> dict[str, Any]:
    envelope = sign_command(
        signer,
        "account.deposit",
        {"account_owner": seeded("consumer").id, "amount": 10, "chain_reference": f"tx-{nonce}"},
        nonce=f"nonce-{nonce}",
        issued_at_ns=env.clock.now_ns,
        network=env.http.get("/v1/network").json()["network_id"],
    )
    wire: dict[str, Any] = msgspec.to_builtins(from_command_envelope(envelope))
    return wire


def test_an_actor_past_its_rate_is_429_with_retry_after_and_others_are_served(
    api_env: ApiEnv,
) -> None:
    clock = FakeClock()
    api_env.deps.rate = ActorRateLimiter(per_s=0.5, burst=2, clock_s=clock)
    operator = api_env.operator
    for index in range(2):
        sent = api_env.http.post(DEPOSIT_PATH, json=signed_deposit(api_env, operator, f"n{index}"))
        assert sent.status_code == 201, sent.text
    limited = api_env.http.post(DEPOSIT_PATH, json=signed_deposit(api_env, operator, "n2"))
    assert assert_limited(limited, 429, "rate_limited") == 2  # one token every 2 s
    other = seeded("consumer")  # another actor has its own bucket (its command is refused
    answer = api_env.http.post(DEPOSIT_PATH, json=signed_deposit(api_env, other, "o1"))
    assert answer.status_code == 403  # by the ledger, not by the rate limit)
    clock.now_s += 2
    retried = api_env.http.post(DEPOSIT_PATH, json=signed_deposit(api_env, operator, "n2"))
    assert retried.status_code == 201, retried.text


def test_forged_commands_spend_nothing_of_the_actor_they_name(api_env: ApiEnv) -> None:
    clock = FakeClock()
    api_env.deps.rate = ActorRateLimiter(per_s=0.5, burst=2, clock_s=clock)
    for index in range(5):
        wire = signed_deposit(api_env, api_env.operator, f"forged{index}")
        signature = bytearray(base64.b64decode(wire["signature"]))
        signature[0] ^= 1
        wire["signature"] = base64.b64encode(bytes(signature)).decode()
        assert api_env.http.post(DEPOSIT_PATH, json=wire).status_code == 401
    for index in range(2):
        real = signed_deposit(api_env, api_env.operator, f"real{index}")
        assert api_env.http.post(DEPOSIT_PATH, json=real).status_code == 201


def test_the_limits_at_their_bounds_and_one_past() -> None:
    slots = StreamSlots(streams_max=3, per_client_max=2)
    slots.acquire("a")
    slots.acquire("a")
    slots.acquire("b")
    for client in ("a", "c"):  # a: its own cap; c: the process's
        with pytest.raises(LimitExceeded) as refused:
            slots.acquire(client)
        assert refused.value.status == 503
    slots.release("a")
    slots.acquire("c")
    assert slots.open == 3
    clock = FakeClock()
    rate = ActorRateLimiter(per_s=1.0, burst=3, clock_s=clock, actors_max=2)
    for _ in range(3):
        rate.spend("x")
    with pytest.raises(LimitExceeded) as limited:
        rate.spend("x")
    assert limited.value.status == 429 and limited.value.retry_after_s == 1
    rate.spend("y")
    clock.now_s += 10
    rate.spend("z")  # a third actor: x, full again, is forgotten to make room
    rate.spend("x")

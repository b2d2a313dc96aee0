"""A job's life through the HTTP API: nodes, deposits, submit with escrow, claim, reads."""

from __future__ import annotations

import msgspec
import pytest

from adapters.ledger_api.client import InvalidRequest, NotFoundProblem
from domain.commands import ClaimJob
from tests.unit.api.conftest import ApiEnv, deposit, register_active_node, seeded, submit_job


def test_node_registers_attests_and_is_listed(api_env: ApiEnv) -> None:
    node = seeded("node-1")
    register_active_node(api_env, node)
    client = api_env.client()
    assert client.get_node(node.id).state == "active"
    listed = client.list_nodes(region="eu-west", state="active", gpu_class="datacenter")
    assert [n.id for n in listed.items] == [node.id]
    assert client.list_nodes(region="us-east").items == []


def test_job_submit_answers_201_with_its_escrow_then_claim(api_env: ApiEnv) -> None:
    node, consumer = seeded("node-1"), seeded("consumer")
    register_active_node(api_env, node)
    deposit(api_env, consumer, 10_000)
    accepted = submit_job(api_env, consumer, max_price=500)
    job_id = accepted.job_id
    assert msgspec.to_builtins(accepted.escrow) == {
        "account": f"escrow:{job_id}",
        "hold_id": f"escrow:{job_id}",
        "amount": 500,
    }
    balance = api_env.client().get_balance(f"user:{consumer.id}")
    assert (balance.balance, balance.available) == (10_000, 9_500)

    api_env.clock.advance(10)
    claimed = api_env.client(node).send(ClaimJob(job_id=job_id, node_id=node.id))
    assert (claimed.kind, claimed.subject) == ("job.claim", job_id)
    client = api_env.client()
    assert client.get_job(job_id).state == "claimed"
    assert [j.id for j in client.list_jobs(state="claimed", node=node.id).items] == [job_id]
    assert client.list_jobs(consumer=consumer.id, state="submitted").items == []


def test_status_codes_of_the_create_routes(api_env: ApiEnv) -> None:
    consumer = seeded("consumer")
    deposit(api_env, consumer, 1_000)
    response = api_env.http.get(f"/v1/accounts/user:{consumer.id}/entries", params={"limit": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["items"][0]["event_type"] == "Opened"
    assert body["next_version"] == 2


def test_reads_of_missing_things_are_404_problems(api_env: ApiEnv) -> None:
    client = api_env.client()
    with pytest.raises(NotFoundProblem) as caught:
        client.get_node(seeded("nobody").id)
    assert caught.value.code == "node_not_found"
    with pytest.raises(NotFoundProblem):
        client.get_job("job-0123")
    with pytest.raises(InvalidRequest) as invalid:
        client.get_node("not-a-key")
    assert invalid.value.code == "validation_failed"

"""``GET /v1/nodes/{id}`` shows the node's reputation scored now and its uptime; a missed
result window counts as a no-show and lowers the score; the node list and the dashboard's
stats carry the score as of the node's last record."""

from __future__ import annotations

from domain import commands as c
from domain.policy import LedgerPolicy
from tests.unit.api.conftest import ApiEnv, deposit, register_active_node, seeded, submit_job


def test_the_node_view_shows_reputation_now_and_a_no_show_lowers_it(api_env: ApiEnv) -> None:
    node, consumer = seeded("node-1"), seeded("consumer")
    register_active_node(api_env, node)
    client = api_env.client()
    before = client.get_node(node.id)
    assert before.reputation is not None and before.uptime is not None
    assert before.reputation.as_of_ns == api_env.clock.now_ns
    assert before.reputation.counts["no_show"] == 0
    assert (before.uptime.epochs_up, before.uptime.epochs_down, before.uptime.last_epoch) == (
        0,
        0,
        -1,
    )

    deposit(api_env, consumer, 10_000)
    job_id = submit_job(api_env, consumer).job_id
    api_env.client(node).send(c.ClaimJob(job_id=job_id, node_id=node.id))
    api_env.clock.advance(LedgerPolicy().result_window_ns / 1e9 + 1)
    api_env.client(consumer).send(c.ExpireJob(job_id=job_id))

    after = client.get_node(node.id)
    assert after.reputation is not None
    assert after.reputation.counts["no_show"] == 1
    assert after.reputation.score_bps < before.reputation.score_bps
    listed = client.list_nodes(region="eu-west").items[0]
    assert listed.reputation is not None
    assert listed.reputation.score_bps == after.reputation.score_bps  # no decay within the hour
    stats = api_env.http.get("/v1/stats").json()
    assert [n["reputation_bps"] for n in stats["nodes"]] == [after.reputation.score_bps]

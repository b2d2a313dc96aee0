"""The event feed (paged and SSE) and the transparency log's proofs, checked with proofs/."""

from __future__ import annotations

import threading
import time

import msgspec

from proofs import merkle
from proofs.tree_head import SignedTreeHead, verify_tree_head
from tests.unit.api.conftest import ApiEnv, deposit, seeded

FEED_TIMEOUT_S = 5


def deposit_a_few(env: ApiEnv, count: int = 2) -> None:
    for index in range(count):
        deposit(env, seeded(f"consumer-{index}"), 100)


def test_events_page_from_a_position(api_env: ApiEnv) -> None:
    deposit_a_few(api_env)
    everything = api_env.http.get("/v1/events", params={"from": 1, "limit": 1000}).json()
    head = everything["head_position"]
    assert [e["position"] for e in everything["items"]] == list(range(1, head + 1))
    page = api_env.http.get("/v1/events", params={"from": 3, "limit": 2}).json()
    assert [e["position"] for e in page["items"]] == [3, 4]
    assert page["next_position"] == 5
    first = everything["items"][0]
    assert first["prev_hash"] == "00" * 32
    assert everything["items"][1]["prev_hash"] == first["hash"]


def test_sse_feed_delivers_events_committed_after_it_opened(api_env: ApiEnv) -> None:
    lines: list[str] = []

    def read_feed() -> None:
        with api_env.http.stream(
            "GET", "/v1/events/stream", params={"from": 1, "limit": 3}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines.extend(response.iter_lines())

    reader = threading.Thread(target=read_feed, daemon=True)
    reader.start()
    time.sleep(0.1)
    assert reader.is_alive(), "the feed must wait for events"
    deposit_a_few(api_env, 1)
    reader.join(timeout=FEED_TIMEOUT_S)
    assert not reader.is_alive()
    assert sse_ids(lines) == ["1", "2", "3"]
    data = [line.split(":", 1)[1] for line in lines if line.startswith("data:")]
    assert msgspec.json.decode(data[0])["position"] == 1
    assert "event: record" in lines


def test_sse_feed_resumes_after_last_event_id(api_env: ApiEnv) -> None:
    deposit_a_few(api_env, 1)
    response = api_env.http.get(
        "/v1/events/stream", params={"limit": 2}, headers={"Last-Event-ID": "4"}
    )
    ids = [
        line.split(":", 1)[1].strip()
        for line in response.text.splitlines()
        if line.startswith("id:")
    ]
    assert ids == ["5", "6"]


def test_tree_head_is_signed_over_the_record_hashes(api_env: ApiEnv) -> None:
    deposit_a_few(api_env)
    events = api_env.http.get("/v1/events", params={"limit": 1000}).json()["items"]
    hashes = [bytes.fromhex(e["hash"]) for e in events]
    head = api_env.http.get("/v1/log/tree-head").json()
    sth = SignedTreeHead(
        size=head["size"],
        root=bytes.fromhex(head["root"]),
        timestamp_ns=head["timestamp_ns"],
        signer=bytes.fromhex(head["signer"]),
        signature=bytes.fromhex(head["signature"]),
    )
    assert verify_tree_head(sth)
    assert sth.size == len(hashes)
    assert sth.root == merkle.root_from_hashes(hashes)


def test_inclusion_proofs_verify(api_env: ApiEnv) -> None:
    deposit_a_few(api_env, 3)
    head = api_env.http.get("/v1/log/tree-head").json()
    for position in (1, 2, head["size"] // 2, head["size"]):
        proof = api_env.http.get("/v1/log/inclusion", params={"position": position}).json()
        assert proof["root"] == head["root"]
        assert merkle.verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]),
            proof["leaf_index"],
            proof["tree_size"],
            [bytes.fromhex(p) for p in proof["proof"]],
            bytes.fromhex(head["root"]),
        )


def test_consistency_proofs_verify_between_old_and_new_heads(api_env: ApiEnv) -> None:
    deposit_a_few(api_env, 1)
    old = api_env.http.get("/v1/log/tree-head").json()
    deposit_a_few(api_env, 3)
    new = api_env.http.get("/v1/log/tree-head").json()
    assert new["size"] > old["size"]
    proof = api_env.http.get(
        "/v1/log/consistency", params={"first": old["size"], "second": new["size"]}
    ).json()
    assert merkle.verify_consistency(
        old["size"],
        new["size"],
        bytes.fromhex(old["root"]),
        bytes.fromhex(new["root"]),
        [bytes.fromhex(p) for p in proof["proof"]],
    )


def test_proof_outside_the_tree_is_404(api_env: ApiEnv) -> None:
    deposit_a_few(api_env, 1)
    size = api_env.http.get("/v1/log/tree-head").json()["size"]
    response = api_env.http.get("/v1/log/inclusion", params={"position": size + 1})
    assert response.status_code == 404
    assert response.json()["code"] == "tree_size_out_of_range"
    response = api_env.http.get("/v1/log/consistency", params={"first": 1, "second": size + 1})
    assert response.status_code == 404


def sse_ids(lines: list[str]) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in lines if line.startswith("id:")]

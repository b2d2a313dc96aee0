"""The devnet consumer releases a private job's inputs key to the node that claimed it, once
per claim (a later claim gets its own), retries while the node has no encryption key
registered, and never releases a public job's or an unclaimed job's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.ledger_api.client import ApiProblem, NotFoundProblem
from adapters.ledger_api.wire import JobView, KeyReleaseView, WorkloadView
from flopledger.devnet import consumer as consumer_module
from flopledger.devnet.consumer import ConsumerJob, OwnDataConsumer
from flopledger.devnet.consumer_data import MATMUL, DataJobSpec
from proofs.identity import Identity

CONSUMER = Identity.from_seed(b"devnet-consumer".ljust(32, b"\0"))
NODE_1, NODE_2 = "node-one", "node-two"
DATA_KEY = bytes(range(32))
PRIVATE = DataJobSpec(region="eu-west", kind=MATMUL, size=8)
PUBLIC = DataJobSpec(region="eu-west", kind=MATMUL, size=8, private=False)


def _view(job_id: str, state: str, node: str | None, attempt: int = 1, **extra: Any) -> JobView:
    return JobView(
        id=job_id,
        consumer=CONSUMER.id,
        state=state,
        workload=WorkloadView(kind=MATMUL, gpu_class_min="cpu", params={}),
        max_price=400,
        region="eu-west",
        redundancy=3,
        deadline_ns=0,
        attempt=attempt,
        node_id=node,
        price=0,
        result_due_ns=0,
        validators=[],
        verdicts={},
        payouts=[],
        version=1,
        **extra,
    )


@dataclass
class Releases:
    """What the patched ``release_job_key`` sent, and the refusals it raises first."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[Exception] = field(default_factory=list)


@pytest.fixture
def releases(monkeypatch: pytest.MonkeyPatch) -> Releases:
    recorder = Releases()

    def release_job_key(client: Any, identity: Identity, **kwargs: Any) -> None:
        if recorder.refusals:
            raise recorder.refusals.pop(0)
        assert identity == CONSUMER
        recorder.sent.append(kwargs)

    monkeypatch.setattr(consumer_module, "release_job_key", release_job_key)
    return recorder


def _consumer(tmp_path: Path, lines: list[str]) -> OwnDataConsumer:
    consumer = OwnDataConsumer("http://127.0.0.1:9", CONSUMER, tmp_path, lines.append)
    consumer.jobs = [
        ConsumerJob(PRIVATE, "job-private", {}, DATA_KEY),
        ConsumerJob(PUBLIC, "job-public", {}, None),
    ]
    return consumer


def test_the_inputs_key_goes_once_to_each_claim(tmp_path: Path, releases: Releases) -> None:
    lines: list[str] = []
    consumer = _consumer(tmp_path, lines)
    consumer.release_keys({"job-private": _view("job-private", "submitted", None)})
    assert releases.sent == []
    claimed = {
        "job-private": _view("job-private", "claimed", NODE_1),
        "job-public": _view("job-public", "claimed", NODE_2),
    }
    consumer.release_keys(claimed)
    consumer.release_keys(claimed)  # the next poll: released already
    assert [(r["job_id"], r["recipient"], r["attempt"], r["purpose"]) for r in releases.sent] == [
        ("job-private", NODE_1, 1, "inputs")
    ]
    assert releases.sent[0]["data_key"] == DATA_KEY
    consumer.release_keys({"job-private": _view("job-private", "claimed", NODE_2, attempt=2)})
    assert [(r["recipient"], r["attempt"]) for r in releases.sent[1:]] == [(NODE_2, 2)]
    assert len([line for line in lines if "released to" in line]) == 2


def test_a_node_without_a_registered_key_is_retried_and_a_refusal_reported_once(
    tmp_path: Path, releases: Releases
) -> None:
    lines: list[str] = []
    consumer = _consumer(tmp_path, lines)
    claimed = {"job-private": _view("job-private", "claimed", NODE_1)}
    releases.refusals.append(NotFoundProblem(404, {"code": "encryption_key_not_found"}))
    consumer.release_keys(claimed)
    assert releases.sent == [] and lines == []
    releases.refusals.extend([ApiProblem(409, {"code": "job_not_claimed"})] * 2)
    consumer.release_keys(claimed)
    consumer.release_keys(claimed)
    assert lines == ["consumer: releasing job-private's key refused: job_not_claimed"]
    consumer.release_keys(claimed)
    assert [r["recipient"] for r in releases.sent] == [NODE_1]


def test_a_release_already_on_the_ledger_is_not_repeated(
    tmp_path: Path, releases: Releases
) -> None:
    consumer = _consumer(tmp_path, [])
    recorded = KeyReleaseView(
        sender=CONSUMER.id,
        recipient=NODE_1,
        purpose="inputs",
        attempt=1,
        recipient_key="00" * 32,
        wrapped="00",
        at_ns=0,
    )
    view = _view("job-private", "claimed", NODE_1, key_releases=[recorded])
    consumer.release_keys({"job-private": view})
    assert releases.sent == []

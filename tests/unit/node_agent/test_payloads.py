"""The node's side of a private data job (``node_agent.payloads``, ``node_agent.work``): the
inputs open with the key the consumer released to it; inputs that do not open get the job
released, never executed; a committed result's keys go to the consumer and the validators."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import torch

from adapters.ledger_api.wire import JobView
from domain import commands as c
from domain.workloads import parse_params
from node_agent import payloads
from node_agent.payloads import InputsUnusable, JobLeftUs, KeyCourier
from node_agent.spool import ResultSpool
from node_agent.work import Worker
from proofs.encryption_keys import derive_encryption_keypair
from proofs.identity import Identity
from proofs.sealed_object import new_data_key, seal_bytes, unwrap_key, wrap_key

NODE = Identity.from_seed(b"payloads-node".ljust(32, b"\0"))
CONSUMER = Identity.from_seed(b"payloads-consumer".ljust(32, b"\0"))
VALIDATOR = Identity.from_seed(b"payloads-validator".ljust(32, b"\0"))
FAR_NS = 2**62
A, B = b"the consumer's A", b"the consumer's B"


class Ledger:
    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.sent: list[c.Command] = []
        self.keys = {who.id: derive_encryption_keypair(who)[1] for who in (CONSUMER, VALIDATOR)}

    async def get_job(self, job_id: str) -> JobView:
        return msgspec.convert(self.job, JobView)

    async def get_encryption_key(self, actor_id: str) -> bytes | None:
        return self.keys.get(actor_id)

    async def send(self, command: c.Command) -> None:
        self.sent.append(command)
        if isinstance(command, c.ReleaseJobKey):
            self.job["key_releases"].append(
                {
                    "sender": NODE.id,
                    "recipient": command.recipient,
                    "purpose": command.purpose,
                    "attempt": command.attempt,
                    "recipient_key": command.recipient_key.hex(),
                    "wrapped": command.wrapped.hex(),
                    "at_ns": 1,
                }
            )

    async def get_node(self, node_id: str) -> None:
        return None

    async def list_jobs(self, **filters: Any) -> list[JobView]:
        return []


class Sink:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.objects[digest] = data
        return digest

    async def put_sealed(self, data: bytes) -> str:
        return await self.put(data)

    async def get(self, digest: str) -> bytes:
        return self.objects[digest]

    async def get_stream(self, digest: str) -> AsyncIterator[bytes]:
        yield self.objects[digest]


def _job(sealed_under: bytes, released: bytes | None) -> tuple[dict[str, Any], Sink]:
    sealed = {"a": seal_bytes(sealed_under, A), "b": seal_bytes(sealed_under, B)}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in sealed.items()}
    node_key = derive_encryption_keypair(NODE)[1]
    releases = []
    if released is not None:
        wrapped = wrap_key(released, node_key, job_id="job-1", purpose="inputs")
        releases.append(
            {
                "sender": CONSUMER.id,
                "recipient": NODE.id,
                "purpose": "inputs",
                "attempt": 1,
                "recipient_key": node_key.hex(),
                "wrapped": wrapped.hex(),
                "at_ns": 1,
            }
        )
    params = {**digests, "dtype": "float32", "m": 1, "k": 1, "n": 1, "encrypted": True}
    job = {
        "id": "job-1",
        "consumer": CONSUMER.id,
        "state": "claimed",
        "region": "eu-west",
        "node_id": NODE.id,
        "workload": {"kind": "matmul", "gpu_class_min": "cpu", "params": params},
        "max_price": 100,
        "redundancy": 1,
        "deadline_ns": FAR_NS,
        "attempt": 1,
        "price": 10,
        "result_due_ns": FAR_NS,
        "validators": [],
        "verdicts": {},
        "payouts": [],
        "version": 1,
        "key_releases": releases,
    }
    return job, Sink({digests[n]: sealed[n] for n in sealed})


def _courier(ledger: Ledger, sink: Sink, tmp_path: Path) -> KeyCourier:
    return KeyCourier(identity=NODE, ledger=ledger, artifacts=sink, state_dir=tmp_path, poll_s=0)


def test_inputs_open_with_the_released_key(tmp_path: Path) -> None:
    key = new_data_key()
    job, sink = _job(key, key)
    ledger = Ledger(job)
    courier = _courier(ledger, sink, tmp_path)
    view = msgspec.convert(job, JobView)
    params = parse_params("matmul", job["workload"]["params"])
    assert asyncio.run(courier.load_inputs(view, params)) == {"a": A, "b": B}


def test_inputs_that_do_not_open_get_the_job_released_unexecuted(tmp_path: Path) -> None:
    job, sink = _job(new_data_key(), new_data_key())  # sealed under one key, released another
    ledger = Ledger(job)
    courier = _courier(ledger, sink, tmp_path)
    worker = Worker(
        identity=NODE,
        ledger=ledger,  # type: ignore[arg-type]
        artifacts=sink,
        spool=ResultSpool(tmp_path / "spool"),
        courier=courier,
    )
    view = msgspec.convert(job, JobView)
    assert asyncio.run(worker.execute(view, torch.device("cpu"))) is None
    [release] = ledger.sent
    assert isinstance(release, c.ReleaseJob) and "does not open" in release.reason
    assert worker.spool.list_job_ids() == []
    assert "job-1" in worker.handed_back  # not claimed again


def test_a_claim_that_lapses_while_waiting_for_the_key(tmp_path: Path) -> None:
    job, sink = _job(new_data_key(), None)
    job["state"] = "submitted"  # ClaimLapsed: back on the market
    courier = _courier(Ledger(job), sink, tmp_path)
    with pytest.raises(JobLeftUs):
        asyncio.run(courier.wait_inputs_key(msgspec.convert(job, JobView)))
    job, sink = _job(new_data_key(), None)
    job["key_releases"] = [
        {**_job(b"k" * 32, b"k" * 32)[0]["key_releases"][0], "wrapped": "00" * 80}
    ]
    with pytest.raises(InputsUnusable):
        asyncio.run(
            _courier(Ledger(job), sink, tmp_path).wait_inputs_key(msgspec.convert(job, JobView))
        )


def test_a_committed_results_keys_go_to_the_consumer_and_each_validator(tmp_path: Path) -> None:
    inputs_key, result_key = new_data_key(), new_data_key()
    job, sink = _job(inputs_key, inputs_key)
    ledger = Ledger(job)
    courier = _courier(ledger, sink, tmp_path)
    asyncio.run(courier.wait_inputs_key(msgspec.convert(job, JobView)))
    courier.keep_result_key("job-1", result_key)
    job.update(state="result_committed", validators=[VALIDATOR.id])

    async def release_until_verified() -> None:
        courier.start("job-1")
        while len(ledger.sent) < 3:
            await asyncio.sleep(0)
        job["state"] = "verified"
        await courier.stop()

    asyncio.run(release_until_verified())
    opened = {}
    for command in ledger.sent:
        assert isinstance(command, c.ReleaseJobKey)
        who = CONSUMER if command.recipient == CONSUMER.id else VALIDATOR
        private = derive_encryption_keypair(who)[0]
        opened[(command.recipient, command.purpose)] = unwrap_key(
            command.wrapped, private, job_id="job-1", purpose=command.purpose
        )
    assert opened == {
        (CONSUMER.id, "result"): result_key,
        (VALIDATOR.id, "inputs"): inputs_key,
        (VALIDATOR.id, "result"): result_key,
    }


def test_a_node_left_without_the_key_cranks_the_lapse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(payloads, "LAPSE_CRANK_AFTER_S", 0.0)
    job, sink = _job(new_data_key(), None)
    ledger = Ledger(job)
    original = ledger.send

    async def send(command: c.Command) -> None:
        await original(command)
        if isinstance(command, c.ExpireJob):
            job.update(state="submitted", node_id=None)  # ClaimLapsed: back on the market

    monkeypatch.setattr(ledger, "send", send)
    with pytest.raises(JobLeftUs):
        asyncio.run(_courier(ledger, sink, tmp_path).wait_inputs_key(msgspec.convert(job, JobView)))
    assert [type(command) for command in ledger.sent] == [c.ExpireJob]


def test_a_restarted_agent_resumes_the_releases_from_the_kept_keys(tmp_path: Path) -> None:
    inputs_key, result_key = new_data_key(), new_data_key()
    job, sink = _job(inputs_key, inputs_key)
    first = _courier(Ledger(job), sink, tmp_path)
    asyncio.run(first.wait_inputs_key(msgspec.convert(job, JobView)))
    first.keep_result_key("job-1", result_key)
    # A new process: a new courier over the same state directory.
    job.update(state="result_committed", validators=[VALIDATOR.id])
    ledger = Ledger(job)
    again = _courier(ledger, sink, tmp_path)

    async def resume_until_released() -> None:
        await again.resume([msgspec.convert(job, JobView)])
        while len(ledger.sent) < 3:
            await asyncio.sleep(0)
        await again.stop()

    asyncio.run(resume_until_released())
    assert sorted((r.recipient, r.purpose) for r in ledger.sent) == sorted(  # type: ignore[attr-defined]
        [(CONSUMER.id, "result"), (VALIDATOR.id, "inputs"), (VALIDATOR.id, "result")]
    )

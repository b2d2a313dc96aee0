"""Encryption keys and job key releases through the HTTP API and its client (issue 17,
item 2), and ``flopledger job release-key``: the consumer waits for the claim, wraps the
job's data key to the claiming node, and the node unwraps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.job_keys import save_job_key
from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem
from adapters.ledger_api.keys_client import (
    ensure_encryption_key,
    get_released_keys,
    release_job_key,
)
from adapters.ledger_api.wire import JobView
from domain import commands as c
from flopledger import cli
from flopledger.commands import job_keys
from proofs.encryption_keys import derive_encryption_keypair
from proofs.sealed_object import new_data_key
from tests.unit.api.conftest import SECOND_NS, ApiEnv, deposit, register_active_node, seeded

NODE, CONSUMER = seeded("keys-node"), seeded("keys-consumer")


def _private_job(env: ApiEnv) -> str:
    register_active_node(env, NODE)
    deposit(env, CONSUMER, 5_000)
    workload = c.Workload(
        kind="matmul", gpu_class_min="consumer", params={"n": 512, "encrypted": True}
    )
    accepted = env.client(CONSUMER).send(
        c.SubmitJob(
            workload=workload,
            max_price=500,
            region="eu-west",
            deadline_ns=env.clock.now_ns + 3_600 * SECOND_NS,
        )
    )
    return accepted.job_id


def _claim(env: ApiEnv, job_id: str) -> None:
    node = env.client(NODE)
    ensure_encryption_key(node, NODE)
    node.send(c.ClaimJob(job_id=job_id, node_id=NODE.id))


def test_register_on_first_use_then_read_the_key(api_env: ApiEnv) -> None:
    client = api_env.client(CONSUMER)
    with pytest.raises(NotFoundProblem) as absent:
        client.get_encryption_key(CONSUMER.id)
    assert absent.value.code == "encryption_key_not_found"
    public = ensure_encryption_key(client, CONSUMER)
    assert public == derive_encryption_keypair(CONSUMER)[1]
    view = client.get_encryption_key(CONSUMER.id)
    assert (view.actor, view.public_key, view.rotations) == (CONSUMER.id, public.hex(), 0)
    head = client.get_tree_head()
    assert ensure_encryption_key(client, CONSUMER) == public  # registered: nothing sent
    assert client.get_tree_head() == head


def test_a_release_to_the_claiming_node_opens_with_its_key(api_env: ApiEnv) -> None:
    job_id = _private_job(api_env)
    _claim(api_env, job_id)
    consumer = api_env.client(CONSUMER)
    data_key = new_data_key()
    release_job_key(
        consumer,
        CONSUMER,
        job_id=job_id,
        attempt=1,
        recipient=NODE.id,
        purpose="inputs",
        data_key=data_key,
    )
    [found] = get_released_keys(api_env.client(NODE), NODE, job_id, purpose="inputs")
    assert (found.data_key, found.release.sender) == (data_key, CONSUMER.id)
    assert get_released_keys(consumer, CONSUMER, job_id) == []  # none addressed to it
    job = consumer.get_job(job_id)
    assert [r.recipient for r in job.key_releases] == [NODE.id]


def test_the_route_refuses_a_release_by_a_stranger(api_env: ApiEnv) -> None:
    job_id = _private_job(api_env)
    _claim(api_env, job_id)
    stranger = seeded("keys-stranger")
    with pytest.raises(ApiProblem) as refused:
        release_job_key(
            api_env.client(stranger),
            stranger,
            job_id=job_id,
            attempt=1,
            recipient=NODE.id,
            purpose="inputs",
            data_key=new_data_key(),
        )
    assert refused.value.code == "key_release_sender_unauthorized"


class _ClaimOnSecondLook(ApiClient):
    """A consumer's client under which the node claims the job while the CLI is waiting."""

    def __init__(self, env: ApiEnv, job_id: str) -> None:
        super().__init__(identity=CONSUMER, http=env.http, clock_ns=env.clock)
        self.env, self.job_id, self.looks = env, job_id, 0

    def get_job(self, job_id: str) -> JobView:
        self.looks += 1
        if self.looks == 2:
            _claim(self.env, self.job_id)
        return super().get_job(job_id)


def _run_cli(monkeypatch: pytest.MonkeyPatch, client: ApiClient, argv: list[str]) -> int:
    monkeypatch.setattr(job_keys, "make_client", lambda args: client)
    monkeypatch.setattr(job_keys.time, "sleep", lambda s: None)
    return cli.main(["job", "release-key", *argv])


def test_cli_waits_for_the_claim_then_releases(
    api_env: ApiEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job_id = _private_job(api_env)
    data_key = new_data_key()
    save_job_key(tmp_path, job_id, data_key)
    client = _ClaimOnSecondLook(api_env, job_id)
    argv = [job_id, "--key", "unused", "--data-dir", str(tmp_path), "--wait-s", "60"]
    assert _run_cli(monkeypatch, client, argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["kind"] == "job.release_key"
    assert "waiting" in err and f"claimed by {NODE.id}" in err
    [found] = get_released_keys(api_env.client(NODE), NODE, job_id, purpose="inputs")
    assert found.data_key == data_key
    # Run again: the key is there already, nothing more is recorded.
    assert _run_cli(monkeypatch, api_env.client(CONSUMER), argv) == 0
    assert "already" in capsys.readouterr().err
    assert len(api_env.client(NODE).get_job(job_id).key_releases) == 1


def test_cli_exit_statuses(
    api_env: ApiEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job_id = _private_job(api_env)
    client = api_env.client(CONSUMER)
    base = ["--key", "unused", "--data-dir", str(tmp_path), "--wait-s", "0"]
    assert _run_cli(monkeypatch, client, [job_id, *base]) == 1  # no key file
    assert "no data key" in capsys.readouterr().err
    save_job_key(tmp_path, job_id, new_data_key())
    assert _run_cli(monkeypatch, client, [job_id, *base]) == 3  # nobody claimed it
    assert "not claimed within 0 s" in capsys.readouterr().err
    assert _run_cli(monkeypatch, client, ["../etc/passwd", *base]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_says_when_the_job_is_past_claiming(
    api_env: ApiEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job_id = _private_job(api_env)
    save_job_key(tmp_path, job_id, new_data_key())
    api_env.clock.advance(3_601)
    api_env.client(CONSUMER).send(c.ExpireJob(job_id=job_id))
    argv = [job_id, "--key", "unused", "--data-dir", str(tmp_path), "--wait-s", "0"]
    assert _run_cli(monkeypatch, api_env.client(CONSUMER), argv) == 1
    assert "there is no claim" in capsys.readouterr().err


def test_a_release_posted_on_another_jobs_route_is_refused(api_env: ApiEnv) -> None:
    first = _private_job(api_env)
    consumer = api_env.client(CONSUMER)
    second = consumer.send(
        c.SubmitJob(
            workload=c.Workload(kind="matmul", params={"n": 256, "encrypted": True}),
            max_price=500,
            region="eu-west",
            deadline_ns=api_env.clock.now_ns + 3_600 * SECOND_NS,
        )
    ).job_id
    _claim(api_env, first)
    ensure_encryption_key(consumer, CONSUMER)
    recipient_key = derive_encryption_keypair(NODE)[1]
    body = c.encode_command_body(
        c.ReleaseJobKey(
            job_id=first,
            attempt=1,
            recipient=NODE.id,
            purpose="inputs",
            recipient_key=recipient_key,
            wrapped=bytes(80),
        )
    )
    with pytest.raises(ApiProblem) as refused:
        consumer.post_signed(f"/v1/jobs/{second}/keys", "job.release_key", body)
    assert refused.value.code == "path_mismatch"
    assert consumer.get_job(second).key_releases == []


def test_a_concurrent_registration_of_the_same_key_is_no_error(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ``job submit``s of one consumer both read "no key" and both register it: the
    second's refusal (``encryption_key_unchanged``) means the key is in place."""
    client = api_env.client(CONSUMER)
    public = derive_encryption_keypair(CONSUMER)[1]
    client.send(c.RegisterEncryptionKey(public_key=public), identity=CONSUMER)

    def stale_read(actor: str) -> object:
        raise NotFoundProblem(404, {"code": "encryption_key_not_found"})

    monkeypatch.setattr(client, "get_encryption_key", stale_read)
    assert ensure_encryption_key(client, CONSUMER) == public
    monkeypatch.undo()
    assert client.get_encryption_key(CONSUMER.id).rotations == 0

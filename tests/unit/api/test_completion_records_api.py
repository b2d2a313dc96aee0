"""LLM completions' ledger records through the HTTP API and its client (issue 18): a node
advertises its warm models (its view shows them), the completion signer opens and aborts, the
node commits, anyone reads the record at ``/v1/completion-records/{id}``; an unknown id is 404,
a malformed one 422, and a refusal keeps its code over HTTP; a validator declares the models
it checks (``validator.declare_models``) and its view shows them."""

from __future__ import annotations

import hashlib

import pytest

from adapters.ledger_api.client import ApiProblem, NotFoundProblem
from domain import commands as c
from domain.policy import LedgerPolicy
from proofs import bls
from tests.unit.api.conftest import ApiEnv, deposit, register_active_node, seeded

CONSUMER, NODE = seeded("completion-consumer"), seeded("completion-node")
MODEL_ID = "tiny-llama-3"
DIGEST = bytes(range(32))
KEY_HASH = hashlib.sha256(b"flk_completion-consumer").digest()
KEY_ID = hashlib.sha256(KEY_HASH).hexdigest()


def _prepare(env: ApiEnv) -> None:
    env.client(env.operator).send(
        c.RegisterModel(
            model_id=MODEL_ID,
            content_digest=DIGEST,
            architecture="llama",
            dtype="float32",
            context_tokens=1_024,
            price_per_1k_input_tokens=1_000,
            price_per_1k_output_tokens=2_000,
        )
    )
    deposit(env, CONSUMER, 10_000)
    env.client(CONSUMER).send(c.CreateApiKey(key_id=KEY_ID, key_hash=KEY_HASH, spend_limit=5_000))
    register_active_node(env, NODE)


def test_advertise_open_commit_and_read_the_record(api_env: ApiEnv) -> None:
    _prepare(api_env)
    node = api_env.client(NODE)
    node.advertise_models(NODE.id, [(MODEL_ID, 2)], "http://127.0.0.1:9400")
    view = node.get_node(NODE.id)
    assert [(m.model_id, m.capacity) for m in view.warm_models] == [(MODEL_ID, 2)]
    assert view.llm_endpoint == "http://127.0.0.1:9400"
    with pytest.raises(ApiProblem) as unchanged:
        node.advertise_models(NODE.id, [(MODEL_ID, 2)], "http://127.0.0.1:9400")
    assert unchanged.value.code == "node_models_unchanged"

    signer = api_env.client(api_env.operator)
    opened = signer.open_completion(
        key_id=KEY_ID,
        model_id=MODEL_ID,
        node_id=NODE.id,
        request_digest=DIGEST,
        prompt_tokens_max=100,
        max_tokens=50,
        greedy=True,
    )
    record = api_env.client().get_completion_record(opened.completion_id)
    assert (record.state, record.escrow, record.consumer, record.node_id) == (
        "opened",
        100 + 50 * 2,
        CONSUMER.id,
        NODE.id,
    )
    assert record.request_digest == DIGEST.hex() and record.greedy
    node.commit_completion(
        opened.completion_id,
        prompt_tokens=30,
        completion_tokens=10,
        commitment=DIGEST,
        proof_digest=DIGEST,
    )
    record = api_env.client().get_completion_record(opened.completion_id)
    assert (record.state, record.prompt_tokens, record.completion_tokens, record.charge) == (
        "cleared",  # no validator to check it
        30,
        10,
        30 + 10 * 2,
    )
    assert record.commitment == DIGEST.hex() and record.proof_digest == DIGEST.hex()
    assert record.committed_at_ns == api_env.clock.now_ns
    assert api_env.client().get_api_key(KEY_ID).spent == 30 + 10 * 2


def test_an_abort_and_the_refusals_over_http(api_env: ApiEnv) -> None:
    _prepare(api_env)
    api_env.client(NODE).advertise_models(NODE.id, [(MODEL_ID, 1)], "https://node.example")
    with pytest.raises(ApiProblem) as refused:
        api_env.client(CONSUMER).open_completion(
            key_id=KEY_ID,
            model_id=MODEL_ID,
            node_id=NODE.id,
            request_digest=DIGEST,
            prompt_tokens_max=10,
            max_tokens=10,
            greedy=False,
        )
    assert (refused.value.status, refused.value.code) == (403, "completion_signer_not_allowed")
    signer = api_env.client(api_env.operator)
    opened = signer.open_completion(
        key_id=KEY_ID,
        model_id=MODEL_ID,
        node_id=NODE.id,
        request_digest=DIGEST,
        prompt_tokens_max=10,
        max_tokens=10,
        greedy=False,
    )
    signer.abort_completion(opened.completion_id, "node failed mid-stream")
    record = signer.get_completion_record(opened.completion_id)
    assert (record.state, record.outcome, record.charge) == ("aborted", "node failed mid-stream", 0)
    assert signer.get_api_key(KEY_ID).spent == 0


def test_an_unknown_record_is_404_and_a_malformed_id_422(api_env: ApiEnv) -> None:
    with pytest.raises(NotFoundProblem) as absent:
        api_env.client().get_completion_record("cmpl-" + "0" * 24)
    assert absent.value.code == "completion_not_found"
    malformed = api_env.http.get("/v1/completion-records/job-123")
    assert malformed.status_code == 422


def test_a_validator_declares_its_models_over_http_and_its_view_shows_them(
    api_env: ApiEnv,
) -> None:
    _prepare(api_env)
    checker = seeded("completion-checker")
    secret = 4_242
    stake = LedgerPolicy().validator_stake_min
    deposit(api_env, checker, stake)
    client = api_env.client(checker)
    client.send(
        c.RegisterValidator(
            bls_public_key=bls.sk_to_pk(secret),
            proof_of_possession=bls.pop_prove(secret),
            stake=stake,
        )
    )
    assert client.get_validator(checker.id).check_models == []
    client.declare_check_models(checker.id, [MODEL_ID])
    assert client.get_validator(checker.id).check_models == [MODEL_ID]
    with pytest.raises(ApiProblem) as unchanged:
        client.declare_check_models(checker.id, [MODEL_ID])
    assert unchanged.value.code == "validator_models_unchanged"
    with pytest.raises(ApiProblem) as stranger:
        api_env.client(CONSUMER).declare_check_models(checker.id, [])
    assert stranger.value.code == "not_the_validator"

"""Sealed tree heads served by the API: heads with their witness co-signatures, proofs
relative to sealed heads (checked with proofs.merkle), POST /v1/log/cosignatures."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from adapters.ledger_api.client import ApiClient, Conflict, InvalidRequest
from adapters.ledger_api.wire import CommandAccepted
from domain.commands import CosignTreeHead, Deposit, RegisterValidator
from domain.log import compute_witness_message
from domain.policy import LedgerPolicy
from operations.sealer import Sealer
from proofs import bls, merkle
from proofs.tree_head import SignedTreeHead, verify_tree_head
from tests.unit.api.conftest import ApiEnv, seeded

WITNESS_BLS_SECRET = bls.key_gen(b"witness-one".ljust(32, b"\0"))


CHAIN_TX = itertools.count()  # one chain transaction per deposit (rules v4 refuse a reuse)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def deposit(env: ApiEnv, count: int) -> None:
    for index in range(count):
        owner = seeded(f"consumer-{index}").id
        env.client(env.operator).send(
            Deposit(
                account_owner=owner, amount=100, chain_reference=f"test-deposit-{next(CHAIN_TX)}"
            )
        )


def seal(env: ApiEnv) -> int:
    """Seal one head through the sealer on the app's own event loop; its size."""
    sealer = Sealer(
        env.deps.store,
        env.operator,
        clock_ns=env.clock,
    )
    result = env.http.blocking_portal.call(lambda: sealer.seal_once(force=True))
    assert result is not None
    return result.size


def register_witness(env: ApiEnv) -> ApiClient:
    witness = seeded("witness")
    stake = LedgerPolicy().validator_stake_min  # rules v4: a validator registers staked
    env.client(env.operator).send(
        Deposit(account_owner=witness.id, amount=stake, chain_reference="test-deposit-witness")
    )
    client = env.client(witness)
    client.send(
        RegisterValidator(
            bls_public_key=bls.sk_to_pk(WITNESS_BLS_SECRET),
            proof_of_possession=bls.pop_prove(WITNESS_BLS_SECRET),
            stake=stake,
        )
    )
    return client


def cosign(client: ApiClient, size: int, root: bytes) -> CommandAccepted:
    signature = bls.sign(WITNESS_BLS_SECRET, compute_witness_message(size, root))
    return client.send(CosignTreeHead(size=size, signature=signature))


def as_sth(head: dict[str, Any]) -> SignedTreeHead:
    return SignedTreeHead(
        size=head["size"],
        root=bytes.fromhex(head["root"]),
        timestamp_ns=head["timestamp_ns"],
        signer=bytes.fromhex(head["signer"]),
        signature=bytes.fromhex(head["signature"]),
    )


def test_in_process_head_until_something_is_sealed(api_env: ApiEnv) -> None:
    deposit(api_env, 1)
    head = api_env.http.get("/v1/log/tree-head").json()
    assert head["source"] == "in_process"
    assert head["cosignatures"] == [] and head["anchor"] is None
    response = api_env.http.get("/v1/log/tree-heads/1")
    assert response.status_code == 404
    assert response.json()["code"] == "tree_head_not_found"


def test_sealed_head_is_served_and_proofs_verify_against_it(api_env: ApiEnv) -> None:
    deposit(api_env, 3)
    size = seal(api_env)
    deposit(api_env, 2)  # records past the sealed head are not in the default tree
    head = api_env.http.get("/v1/log/tree-head").json()
    assert head["source"] == "sealed"
    assert head["size"] == size
    sth = as_sth(head)
    assert verify_tree_head(sth, api_env.operator.public_key_bytes)
    assert api_env.http.get(f"/v1/log/tree-heads/{size}").json() == head
    for position in (1, size // 2, size):
        proof = api_env.http.get("/v1/log/inclusion", params={"position": position}).json()
        assert proof["tree_size"] == size and proof["source"] == "sealed"
        assert merkle.verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]),
            proof["leaf_index"],
            size,
            [bytes.fromhex(p) for p in proof["proof"]],
            sth.root,
        )
    beyond = api_env.http.get("/v1/log/inclusion", params={"position": size + 1})
    assert beyond.status_code == 404


def test_consistency_between_two_sealed_heads(api_env: ApiEnv) -> None:
    deposit(api_env, 1)
    first = seal(api_env)
    deposit(api_env, 3)
    second = seal(api_env)
    old = as_sth(api_env.http.get(f"/v1/log/tree-heads/{first}").json())
    new = as_sth(api_env.http.get("/v1/log/tree-head").json())
    assert new.size == second > first
    proof = api_env.http.get("/v1/log/consistency", params={"first": first}).json()
    assert proof["second"] == second and proof["source"] == "sealed"
    assert merkle.verify_consistency(
        first, second, old.root, new.root, [bytes.fromhex(p) for p in proof["proof"]]
    )
    unsealed = api_env.http.get(
        "/v1/log/consistency", params={"first": first, "second": second + 1}
    ).json()
    assert unsealed["source"] == "in_process"


def test_a_cosignature_appears_with_its_head(api_env: ApiEnv) -> None:
    witness = register_witness(api_env)
    deposit(api_env, 2)
    size = seal(api_env)
    root = bytes.fromhex(api_env.http.get("/v1/log/tree-head").json()["root"])
    accepted = cosign(witness, size, root)
    assert accepted.kind == "log.cosign"
    head = api_env.http.get(f"/v1/log/tree-heads/{size}").json()
    assert witness.identity is not None
    assert [c["validator_id"] for c in head["cosignatures"]] == [witness.identity.id]
    signature = bytes.fromhex(head["cosignatures"][0]["signature"])
    assert bls.verify(
        bls.sk_to_pk(WITNESS_BLS_SECRET), compute_witness_message(size, root), signature
    )
    assert api_env.http.get("/v1/log/tree-head").json()["cosignatures"] == head["cosignatures"]
    with pytest.raises(Conflict) as again:
        cosign(witness, size, root)
    assert again.value.code == "head_already_cosigned"


def test_a_cosignature_over_another_root_is_refused(api_env: ApiEnv) -> None:
    witness = register_witness(api_env)
    deposit(api_env, 1)
    size = seal(api_env)
    with pytest.raises(InvalidRequest) as refused:
        cosign(witness, size, bytes(32))
    assert refused.value.code == "cosignature_invalid"
    assert api_env.http.get("/v1/log/tree-head").json()["cosignatures"] == []


def test_cosignatures_route_takes_only_log_cosign(api_env: ApiEnv) -> None:
    with pytest.raises(InvalidRequest) as wrong:
        api_env.client(api_env.operator).post_signed(
            "/v1/log/cosignatures", "log.anchor", {"size": 1, "chain_signature": "x", "slot": 1}
        )
    assert wrong.value.code == "kind_mismatch"

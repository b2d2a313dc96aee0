"""Issue 16, item 9: a command signed for one devnet, replayed on another deployment.

Two deployments run the same code with different log keys, so their genesis names different
networks (``flopledger.genesis.compute_default_network_id``). A user funded on both signs a
withdrawal on the first; an attacker posts the very same envelope to the second: refused as
``network_mismatch`` (401), nothing written, the user's money there untouched. A forger who
holds a log key and stores a record signed for another network fails the audit there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from adapters.ledger_api.client import ApiClient, NotAuthenticated
from api.app import create_app
from domain import commands as c
from domain.ledger import user_account
from domain.services.ledger_service import CommandMetadata
from proofs.encoding import encode_canonical
from proofs.envelope import from_command_envelope, sign_command
from tests.chain_tx import fresh_chain_reference
from tests.forgery import rechain, replay
from tests.unit.api.conftest import Clock, make_deps, seeded
from validator.audit import AuditFailed

USER = seeded("cross-network-user")
FUNDS = 2_000_000
WITHDRAWAL = c.Withdraw(amount=1_000_000)  # above policy.withdrawal_min


def test_a_withdrawal_signed_for_one_devnet_is_refused_on_another(tmp_path: Path) -> None:
    clock = Clock()
    first_op, second_op = seeded("devnet-one-operator"), seeded("devnet-two-operator")
    first = make_deps(tmp_path / "one", first_op, clock)
    second = make_deps(tmp_path / "two", second_op, clock)
    with TestClient(create_app(first)) as one, TestClient(create_app(second)) as two:
        one_api = ApiClient(identity=USER, http=one, clock_ns=clock)
        two_api = ApiClient(identity=USER, http=two, clock_ns=clock)
        assert one_api.get_network_id() != two_api.get_network_id()
        ApiClient(identity=first_op, http=one, clock_ns=clock).send(
            c.Deposit(account_owner=USER.id, amount=FUNDS, chain_reference=fresh_chain_reference())
        )
        ApiClient(identity=second_op, http=two, clock_ns=clock).send(
            c.Deposit(account_owner=USER.id, amount=FUNDS, chain_reference=fresh_chain_reference())
        )
        envelope = sign_command(
            USER,
            "account.withdraw",
            c.encode_command_body(WITHDRAWAL),
            nonce="replayed-withdrawal-1",
            issued_at_ns=clock.now_ns,
            network=one_api.get_network_id(),
        )
        wire = msgspec.json.encode(from_command_envelope(envelope))
        headers = {"content-type": "application/json"}
        assert (
            one.post("/v1/accounts/withdrawals", content=wire, headers=headers).status_code == 201
        )
        head_before = two_api.get("/v1/log/tree-head")["size"]
        replayed = two.post("/v1/accounts/withdrawals", content=wire, headers=headers)
        assert replayed.status_code == 401
        assert replayed.json()["code"] == "network_mismatch"
        assert two_api.get_balance(user_account(USER.id)).balance == FUNDS
        assert one_api.get_balance(user_account(USER.id)).balance == FUNDS - WITHDRAWAL.amount
        assert two_api.get("/v1/log/tree-head")["size"] == head_before
        with pytest.raises(NotAuthenticated):  # a client that signs for no network
            ApiClient(identity=USER, http=two, clock_ns=clock, network_id="").send(WITHDRAWAL)


def test_a_record_signed_for_another_network_fails_the_audit(tmp_path: Path) -> None:
    clock, operator = Clock(), seeded("forging-operator")
    deps = make_deps(tmp_path, operator, clock)
    with TestClient(create_app(deps)) as http:
        ApiClient(identity=operator, http=http, clock_ns=clock).send(
            c.Deposit(account_owner=USER.id, amount=FUNDS, chain_reference=fresh_chain_reference())
        )
    records = asyncio.run(deps.store.read_all(1, 100))
    replay(records)  # the honest history audits clean
    index = next(i for i, r in enumerate(records) if r.stream_id == user_account(USER.id))
    stored = msgspec.json.decode(records[index].metadata, type=CommandMetadata)
    forged_envelope = sign_command(
        operator,
        stored.envelope.kind,
        stored.envelope.body,
        nonce=stored.envelope.nonce,
        issued_at_ns=stored.envelope.issued_at_ns,
        network="another-network",
    )
    metadata = encode_canonical(
        CommandMetadata(
            envelope=forged_envelope,
            digest=forged_envelope.digest().hex(),
            subject=stored.subject,
        )
    )
    command_id = records[index].command_id
    forged = rechain(
        [
            msgspec.structs.replace(r, metadata=metadata) if r.command_id == command_id else r
            for r in records
        ]
    )
    with pytest.raises(AuditFailed) as failed:
        replay(forged)
    first_forged = next(r.position for r in forged if r.command_id == command_id)
    assert (failed.value.position, failed.value.check) == (first_forged, "network_rules")
    assert "another-network" in failed.value.message

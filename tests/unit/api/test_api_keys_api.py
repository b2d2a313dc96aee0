"""Delegated API keys through the HTTP API, its client and ``flopledger apikey`` (issue 18,
item 1): the secret key alone on stdout, the record readable by id without any secret, a
revocation by the consumer only, malformed input refused with exit status 2."""

from __future__ import annotations

import hashlib

import pytest

from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem
from domain import commands as c
from flopledger import cli
from flopledger.commands import apikey
from tests.unit.api.conftest import SECOND_NS, ApiEnv, seeded

CONSUMER, STRANGER = seeded("apikey-consumer"), seeded("apikey-stranger")


def _run_cli(
    monkeypatch: pytest.MonkeyPatch, env: ApiEnv, client: ApiClient, argv: list[str]
) -> int:
    monkeypatch.setattr(apikey, "make_client", lambda args: client)
    monkeypatch.setattr(apikey, "get_now_ns", env.clock)
    return cli.main(["apikey", *argv])


def test_create_prints_the_key_alone_and_the_ledger_keeps_its_hash(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = api_env.client(CONSUMER)
    argv = ["create", "--key", "unused", "--spend-limit", "700", "--expires-s", "60"]
    assert _run_cli(monkeypatch, api_env, client, argv) == 0
    out, err = capsys.readouterr()
    secret = out.removesuffix("\n")
    assert "\n" not in secret and secret.startswith("flk_") and len(secret) == 4 + 64
    key_hash = hashlib.sha256(secret.encode()).digest()
    key_id = hashlib.sha256(key_hash).hexdigest()
    assert key_id in err and secret not in err
    view = client.get_api_key(key_id)
    assert (view.key_hash, view.consumer, view.spend_limit, view.spent) == (
        key_hash.hex(),
        CONSUMER.id,
        700,
        0,
    )
    assert view.expires_ns == api_env.clock.now_ns + 60 * SECOND_NS and not view.revoked
    assert secret not in api_env.http.get(f"/v1/apikeys/{key_id}").text

    stranger = api_env.client(STRANGER)
    with pytest.raises(ApiProblem) as refused:
        stranger.send(c.RevokeApiKey(key_id=key_id))
    assert refused.value.code == "apikey_not_owned"
    assert _run_cli(monkeypatch, api_env, client, ["revoke", "--key", "unused", key_id]) == 0
    assert client.get_api_key(key_id).revoked
    assert _run_cli(monkeypatch, api_env, client, ["revoke", "--key", "unused", key_id]) == 1
    assert "apikey_revoked" in capsys.readouterr().err


def test_an_unknown_key_is_404_and_a_malformed_id_is_refused(api_env: ApiEnv) -> None:
    client = api_env.client()
    with pytest.raises(NotFoundProblem) as absent:
        client.get_api_key("0" * 64)
    assert absent.value.code == "apikey_not_found"
    malformed = api_env.http.get("/v1/apikeys/not-hex")
    assert malformed.status_code == 422
    assert malformed.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "argv",
    [
        ["create", "--key", "unused", "--spend-limit", "0"],
        ["create", "--key", "unused", "--spend-limit", "ten"],
        ["create", "--key", "unused", "--spend-limit", "5", "--expires-s", "0"],
        ["revoke", "--key", "unused", "not-a-key-id"],
        ["show", "XYZ"],
    ],
)
def test_malformed_input_is_one_line_and_exit_2(
    api_env: ApiEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    assert _run_cli(monkeypatch, api_env, api_env.client(CONSUMER), argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err

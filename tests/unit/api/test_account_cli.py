"""The CLI of issue 17's door, run in process against the API on a memory store: ``job submit``
refuses malformed params in one line (exit 2) before anything is signed; ``job cancel`` gives
the escrow back; ``account balance|deposit|withdraw`` act on the signer's own account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters.keyfile import load_identity
from adapters.ledger_api.client import ApiClient
from domain import commands as c
from domain.ledger import user_account
from domain.policy import SOLANA_RENT_EXEMPT_MIN_LAMPORTS
from flopledger.cli import main
from flopledger.commands import _api_cli, account, job
from proofs.identity import Identity
from tests.chain_tx import fresh_chain_reference
from tests.unit.api.conftest import ApiEnv, deposit, seeded, submit_job

CONSUMER = seeded("cli-consumer")
FUNDS = 4 * SOLANA_RENT_EXEMPT_MIN_LAMPORTS


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "consumer.key"
    path.write_text(CONSUMER.seed().hex() + "\n")
    return path


@pytest.fixture
def cli_api(api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> ApiEnv:
    """The CLI's clients talk to the in-process API."""

    def make_client(args: Any) -> ApiClient:
        identity = load_identity(args.key) if getattr(args, "key", None) else None
        return api_env.client(identity)

    for module in (_api_cli, job, account):
        monkeypatch.setattr(module, "make_client", make_client)
    monkeypatch.delenv("FLOP_SOLANA_RPC", raising=False)
    return api_env


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def submit_args(key_file: Path, params: str) -> list[str]:
    return [
        "job",
        "submit",
        "--key",
        str(key_file),
        "--params",
        params,
        "--max-price",
        "500",
        "--region",
        "eu-west",
        "--deadline-s",
        "1e9",  # past the test API's fixed clock (2027), whatever today is
    ]


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ("{bad", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "must be a JSON object, not an array"),
        ('"n"', "must be a JSON object, not a string"),
        ("null", "must be a JSON object, not null"),
        ('{"n": 999999}', "4096"),
        ('{"n": 8, "colour": "red"}', "colour"),
    ],
)
def test_malformed_params_are_one_line_and_exit_2(
    cli_api: ApiEnv, key_file: Path, capsys: pytest.CaptureFixture[str], params: str, said: str
) -> None:
    head = cli_api.client().get_tree_head()
    status, out, err = run(capsys, *submit_args(key_file, params))
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and said in err
    assert "Traceback" not in err
    assert cli_api.client().get_tree_head() == head  # nothing signed, nothing sent


def test_valid_params_submit_and_cancel_gives_the_escrow_back(
    cli_api: ApiEnv, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deposit(cli_api, CONSUMER, FUNDS)
    status, out, _ = run(capsys, *submit_args(key_file, '{"n": 64}'))
    assert status == 0
    job_id = json.loads(out)["job_id"]
    assert cli_api.client().get_balance(user_account(CONSUMER.id)).available == FUNDS - 500
    status, out, _ = run(capsys, "job", "cancel", job_id, "--key", str(key_file))
    assert status == 0 and json.loads(out)["kind"] == "job.cancel"
    assert cli_api.client().get_job(job_id).state == "cancelled"
    assert cli_api.client().get_balance(user_account(CONSUMER.id)).available == FUNDS
    status, out, err = run(capsys, "job", "cancel", job_id, "--key", str(key_file))
    assert status == 1 and out == ""
    assert json.loads(err)["code"] == "job_cancelled"


def test_someone_elses_cancel_is_refused(
    cli_api: ApiEnv, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = seeded("cli-other")
    deposit(cli_api, other, FUNDS)
    accepted = submit_job(cli_api, other)
    status, _, err = run(capsys, "job", "cancel", accepted.job_id, "--key", str(key_file))
    assert status == 1 and json.loads(err)["code"] == "not_the_consumer"
    assert cli_api.client().get_job(accepted.job_id).state == "submitted"


def test_balance_of_a_new_account_is_zero_then_what_was_deposited(
    cli_api: ApiEnv, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "account", "balance", "--key", str(key_file))
    assert status == 0
    assert json.loads(out)["balance"] == 0
    assert json.loads(out)["account"] == user_account(CONSUMER.id)
    deposit(cli_api, CONSUMER, FUNDS)
    status, out, _ = run(capsys, "account", "balance", "--key", str(key_file))
    assert (status, json.loads(out)["balance"]) == (0, FUNDS)


def test_withdraw_signs_for_the_own_account_and_minimums_are_refused(
    cli_api: ApiEnv, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deposit(cli_api, CONSUMER, FUNDS)
    amount = SOLANA_RENT_EXEMPT_MIN_LAMPORTS
    status, out, _ = run(capsys, "account", "withdraw", str(amount), "--key", str(key_file))
    assert status == 0 and json.loads(out)["kind"] == "account.withdraw"
    assert cli_api.client().get_balance(user_account(CONSUMER.id)).balance == FUNDS - amount
    status, _, err = run(capsys, "account", "withdraw", str(amount - 1), "--key", str(key_file))
    assert status == 1 and json.loads(err)["code"] == "withdrawal_below_minimum"
    status, _, err = run(
        capsys, "account", "withdraw", "5", "--key", str(key_file), "--destination", "0xnope"
    )
    assert status == 2 and "--destination" in err
    with pytest.raises(SystemExit) as usage:
        main(["account", "withdraw", "-5", "--key", str(key_file)])
    assert usage.value.code == 2
    assert cli_api.client().get_balance(user_account(CONSUMER.id)).balance == FUNDS - amount


def test_deposit_without_a_chain_prints_the_transfer_to_make(
    cli_api: ApiEnv, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    treasury = seeded("cli-treasury").id
    argv = ["account", "deposit", "1000", "--key", str(key_file), "--treasury", treasury]
    status, out, _ = run(capsys, *argv)
    assert status == 0
    instruction = json.loads(out)
    assert instruction["memo"] == f"flopledger:deposit:{CONSUMER.id}"
    assert (instruction["treasury"], instruction["amount"]) == (treasury, 1000)
    status, _, err = run(
        capsys, "account", "deposit", "1", "--key", str(key_file), "--treasury", "x"
    )
    assert status == 2 and "--treasury" in err


class FakeDevnetChain:
    """The devnet operator's chain endpoint as ``account deposit --devnet-chain`` uses it: the
    transfer lands and the gateway credits it (here: the operator, through the API)."""

    env: ClassVar[ApiEnv]
    deposits: ClassVar[list[tuple[str, int]]] = []

    def __init__(self, url: str) -> None:
        self.url = url

    def deposit(self, seed: bytes, amount: int) -> dict[str, Any]:
        owner = Identity.from_seed(seed)
        self.deposits.append((owner.id, amount))
        self.env.client(self.env.operator).send(
            c.Deposit(
                account_owner=owner.id, amount=amount, chain_reference=fresh_chain_reference()
            )
        )
        return {"signature": "5" * 88, "slot": 1, "credited": 1}

    def close(self) -> None:
        pass


def test_deposit_on_a_devnet_chain_waits_until_credited(
    cli_api: ApiEnv,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flopledger.devnet import chain

    FakeDevnetChain.env = cli_api
    FakeDevnetChain.deposits = []
    monkeypatch.setattr(chain, "ChainClient", FakeDevnetChain)
    argv = ["account", "deposit", "7000", "--key", str(key_file), "--devnet-chain", "http://op"]
    status, out, err = run(capsys, *argv, "--wait", "--timeout-s", "5")
    assert status == 0, err
    assert FakeDevnetChain.deposits == [(CONSUMER.id, 7000)]  # signed with the key's own seed
    assert json.loads(out)["signature"] == "5" * 88
    assert cli_api.client().get_balance(user_account(CONSUMER.id)).balance == 7000

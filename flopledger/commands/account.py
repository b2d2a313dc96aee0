"""``flopledger account balance|deposit|withdraw``: the signer's own account (``user:<id>``,
the id of ``--key``) through the API.

``balance`` prints the account (``GET /v1/accounts/user:<id>``; an account nobody credited
yet shows zeros). ``withdraw AMOUNT`` signs ``account.withdraw``: the amount leaves the
account at once and the gateway pays it on Solana to ``--destination`` (default: the
signer's own address; at least the network's ``withdrawal_min``, rules v4).

``deposit AMOUNT``: money enters the ledger only against the chain (rules v4). What a user
does is pay AMOUNT lamports to the network's treasury on Solana in a transaction whose memo
is ``flopledger:deposit:<actor id>``; the deposit authority's gateway (``flopledger
gateway``) credits it once it is finalized, naming the transaction (``account.deposit``). So
this command, with ``--solana-rpc`` (default ``FLOP_SOLANA_RPC``) and ``--treasury``, signs
that transfer with the key file's own Solana keypair (an Ed25519 seed is one: the actor id is
its address, which must hold AMOUNT and the fee) and sends it; with ``--devnet-chain`` (the
devnet operator's URL, ``flopledger devnet status``) it does the same on the devnet's chain,
whose faucet pays the lamports first; with neither it prints what to send, from any wallet.
``--wait`` then polls the balance until the deposit is credited.

Exit status: 0 done; 1 the API or the chain refused; 2 malformed input; 3 ``--wait`` timed
out before the gateway credited the deposit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from adapters.keyfile import KeyFileError, load_identity
from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem
from adapters.ledger_api.wire import BalanceView
from domain.errors import OperatingError
from domain.ledger import user_account
from domain.services.bridge_service import DEPOSIT_MEMO_PREFIX
from flopledger.commands._api_cli import add_api_options, make_client, print_result
from flopledger.settings import get_settings
from proofs.identity import Identity, is_actor_id

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_NOT_CREDITED = 3
WAIT_TIMEOUT_S_DEFAULT = 120.0
POLL_S = 1.0

BALANCE_HELP = """Print your account (user:<your actor id>): balance, available (the balance less
escrow held for your open jobs), pending holds. An account nobody credited yet shows zeros."""
DEPOSIT_HELP = """Deposit AMOUNT lamports. Money enters the ledger only against Solana: you pay
the network's treasury AMOUNT lamports with the memo flopledger:deposit:<your actor id>, and
the network's gateway credits your account once the transaction is finalized (each
transaction once). With --solana-rpc and --treasury this command signs and sends that
transfer from your key's own Solana address (your actor id; it must hold AMOUNT and the
fee); with --devnet-chain it does so on a devnet's chain (its faucet pays first); without
either it prints the transfer to make from any wallet. --wait polls until it is credited."""
WITHDRAW_HELP = """Withdraw AMOUNT lamports from your account to --destination on Solana
(default: your own address): signs account.withdraw; the amount leaves your account at once
and the network's gateway pays it. At least the network's withdrawal_min (890,880 lamports,
Solana's rent-exempt minimum, under rules v4)."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser(
        "account",
        help="your own account: balance, deposit, withdraw",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="account_action", metavar="ACTION", required=True)

    balance = actions.add_parser("balance", help="show your account", description=BALANCE_HELP)
    add_api_options(balance, key_required=True)
    balance.set_defaults(func=run_balance)

    deposit = actions.add_parser(
        "deposit", help="deposit lamports through Solana", description=DEPOSIT_HELP
    )
    add_api_options(deposit, key_required=True)
    deposit.add_argument("amount", type=_positive_int, help="lamports")
    deposit.add_argument("--treasury", help="the network's treasury address on Solana")
    deposit.add_argument(
        "--solana-rpc", help="Solana JSON-RPC URL to send the transfer to (default FLOP_SOLANA_RPC)"
    )
    deposit.add_argument(
        "--devnet-chain", help="a devnet operator's URL: deposit on the devnet's LiteSVM chain"
    )
    deposit.add_argument("--wait", action="store_true", help="wait until it is credited")
    deposit.add_argument(
        "--timeout-s",
        type=float,
        default=WAIT_TIMEOUT_S_DEFAULT,
        help=f"how long --wait waits (default {WAIT_TIMEOUT_S_DEFAULT:g})",
    )
    deposit.set_defaults(func=run_deposit)

    withdraw = actions.add_parser(
        "withdraw", help="withdraw lamports to Solana", description=WITHDRAW_HELP
    )
    add_api_options(withdraw, key_required=True)
    withdraw.add_argument("amount", type=_positive_int, help="lamports")
    withdraw.add_argument("--destination", help="Solana address (default: your own)")
    withdraw.set_defaults(func=run_withdraw)


def run_balance(args: argparse.Namespace) -> int:
    identity = _identity(args)
    if identity is None:
        return EXIT_USAGE
    client = make_client(args)
    return print_result(lambda: get_own_balance(client, identity.id))


def run_withdraw(args: argparse.Namespace) -> int:
    if args.destination is not None and not is_actor_id(args.destination):
        return _usage(f"--destination {args.destination!r} is not a Solana address")
    client = make_client(args)
    return print_result(lambda: client.withdraw(args.amount, args.destination))


def run_deposit(args: argparse.Namespace) -> int:
    identity = _identity(args)
    if identity is None:
        return EXIT_USAGE
    rpc_url: str | None = args.solana_rpc or get_settings().solana_rpc
    treasury: str | None = args.treasury
    if treasury is not None and not is_actor_id(treasury):
        return _usage(f"--treasury {treasury!r} is not a Solana address")
    memo = DEPOSIT_MEMO_PREFIX + identity.id
    if args.devnet_chain is None and (rpc_url is None or treasury is None):
        instruction = {
            "account": user_account(identity.id),
            "amount": args.amount,
            "memo": memo,
            "treasury": treasury or "the network's treasury address",
            "how": "send amount lamports to treasury in one Solana transaction carrying "
            "memo; the network's gateway credits the account once it is finalized",
        }
        print(json.dumps(instruction, indent=2, sort_keys=True))
        return EXIT_OK
    client = make_client(args)
    try:
        before = get_own_balance(client, identity.id).balance
        if args.devnet_chain is None and rpc_url is not None and treasury is not None:
            sent = asyncio.run(_deposit_on_solana(rpc_url, identity, treasury, args.amount))
        else:
            sent = _deposit_on_devnet(args.devnet_chain, identity, args.amount)
    except (OperatingError, RuntimeError, OSError) as exc:
        print(f"flopledger account deposit: the chain refused: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except ApiProblem as problem:
        print(f"flopledger account deposit: {problem.code}: {problem.detail}", file=sys.stderr)
        return EXIT_PROBLEM
    print(json.dumps({"account": user_account(identity.id), "memo": memo, **sent}, indent=2))
    if not args.wait:
        return EXIT_OK
    return _wait_credited(client, identity.id, before + args.amount, args.timeout_s)


def get_own_balance(client: ApiClient, actor_id: str) -> BalanceView:
    """The signer's account; zeros for one nobody credited yet (the API answers 404)."""
    account_id = user_account(actor_id)
    try:
        return client.get_balance(account_id)
    except NotFoundProblem as absent:
        if absent.code != "account_not_found":
            raise
        return BalanceView(
            account=account_id,
            balance=0,
            available=0,
            debits_posted=0,
            credits_posted=0,
            debits_pending=0,
            credits_pending=0,
            version=0,
        )


async def _deposit_on_solana(
    rpc_url: str, identity: Identity, treasury: str, amount: int
) -> dict[str, Any]:
    """Sign and send the deposit transfer from the identity's own Solana address."""
    from solana.rpc.async_api import AsyncClient
    from solana.rpc.commitment import Finalized
    from solders.keypair import Keypair

    from adapters.solana.rpc import RpcGateway

    # RpcGateway signs transfers with the key it holds: here the depositor's, not a treasury's.
    gateway = RpcGateway(
        AsyncClient(rpc_url, commitment=Finalized), Keypair.from_seed(identity.seed())
    )
    try:
        prepared = await gateway.prepare_transfer(
            treasury, amount, DEPOSIT_MEMO_PREFIX + identity.id
        )
        await gateway.send_prepared(prepared)
    finally:
        await gateway.close()
    return {"signature": prepared.signature, "treasury": treasury, "amount": amount}


def _deposit_on_devnet(url: str, identity: Identity, amount: int) -> dict[str, Any]:
    from flopledger.devnet.chain import ChainClient

    chain = ChainClient(url)
    try:
        answer = chain.deposit(identity.seed(), amount)
    finally:
        chain.close()
    return {"signature": str(answer["signature"]), "amount": amount}


def _wait_credited(client: ApiClient, actor_id: str, target: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        balance = get_own_balance(client, actor_id).balance
        if balance >= target:
            print(f"credited: balance {balance}", file=sys.stderr)
            return EXIT_OK
        if time.monotonic() >= deadline:
            print(
                f"flopledger account deposit: not credited within {timeout_s:g} s "
                f"(balance {balance}); the gateway credits it once the transfer is finalized",
                file=sys.stderr,
            )
            return EXIT_NOT_CREDITED
        time.sleep(POLL_S)


def _identity(args: argparse.Namespace) -> Identity | None:
    try:
        return load_identity(args.key)
    except (KeyFileError, OSError) as exc:
        _usage(f"--key: {exc}")
        return None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of lamports") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _usage(message: str) -> int:
    print(f"flopledger account: {message}", file=sys.stderr)
    return EXIT_USAGE

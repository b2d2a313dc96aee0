"""The devnet's operator process: the LiteSVM chain, the bridge loop, job offers.

LiteSVM lives in one process's memory, so everything that touches the chain runs here: the
bridge loop (``operations.bridge``: deposits to the treasury credited once per
signature, withdrawals paid, the latest tree head that the API's sealer signed anchored in a
memo) and, beside it, the offer publisher (``operations.offers``: ``flop.offer.<region>`` for
every opened job). A
small HTTP interface on 127.0.0.1 lets the devnet's participants use the chain: a faucet
(airdrop, as on Solana's devnet), the latest blockhash and treasury address, sending signed
transactions (a consumer's deposit), and reading a memo back (the audit's anchor check).
LiteSVM keeps no history, so the chain adapter logs every transaction it lands and ``/rpc``
serves that log as a JSON-RPC endpoint with the subset of Solana's methods the audit reads
(``getTransaction``, ``getSignaturesForAddress``; issue 16, item 3): the devnet's audit
checks its money and anchors against the chain through the same reader as a real cluster's.

Run as ``python -m flopledger.devnet.operator --port PORT [--nats-url URL]`` (default
``FLOP_NATS_URL``: the devnet passes its login there, off argv); SIGTERM or SIGINT
stops it cleanly (uvicorn handles the signal, the app's shutdown stops the loops in order).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from litestar import Litestar, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ValidationException
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from adapters.keyfile import get_deposit_authority_key_path, load_or_create_identity
from adapters.solana.common import ChainError
from adapters.solana.litesvm import LiteSvmGateway
from adapters.store.factory import open_event_store
from domain.errors import FlopError, OperatingError
from domain.ports import EventStore
from domain.services.bridge_service import BridgeService
from domain.services.ledger_service import LedgerService
from domain.services.network_rules import load_network_rules
from flopledger.daemon import configure_logging
from flopledger.settings import get_settings
from operations.bridge import BRIDGE_INTERVAL_S, BridgeLoop, find_gateway_key_problem
from operations.offers import run_offer_publisher

FAUCET_LAMPORTS_MAX = 10**12
TRANSACTION_BYTES_MAX = 1_232  # Solana's packet size
SHUTDOWN_DEADLINE_S = 10.0
GENESIS_WAIT_S = 30.0
GENESIS_POLL_S = 0.2
RPC_METHOD_NOT_FOUND = -32601
RPC_SIGNATURES_LIMIT_MAX = 1000  # as a Solana RPC node

_log = structlog.get_logger("flopledger.devnet.operator")


class FaucetIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    address: str
    lamports: int


class TransactionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    transaction: str  # base64 of a signed legacy transaction


@dataclass
class Operator:
    """What the HTTP handlers and the background loops share."""

    store: EventStore
    chain: LiteSvmGateway
    bridge: BridgeService
    loop: BridgeLoop
    nats_url: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    credited: int = 0


async def open_operator(nats_url: str) -> Operator:
    """Open the store, create the chain and the bridge as the deposit authority (the key the
    genesis names to credit deposits, issue 16 item 5: the API writes the genesis, this
    waits for it)."""
    settings = get_settings()
    identity = load_or_create_identity(
        get_deposit_authority_key_path(settings.data_dir, settings.deposit_authority_key_file)
    )
    store = await open_event_store(settings.event_store_url)
    try:
        await _require_operator(store, identity.id)
    except OperatingError:
        await store.close()
        raise
    chain = LiteSvmGateway.create()
    bridge = BridgeService(store, chain, identity, LedgerService(store), time.time_ns)

    return Operator(
        store=store,
        chain=chain,
        bridge=bridge,
        loop=BridgeLoop(bridge),
        nats_url=nats_url,
    )


async def _require_operator(store: EventStore, operator_id: str) -> None:
    deadline = time.monotonic() + GENESIS_WAIT_S
    rules = await load_network_rules(store)
    while not rules.has_genesis:
        if time.monotonic() > deadline:
            raise OperatingError(f"no genesis record in the store after {GENESIS_WAIT_S} s")
        await asyncio.sleep(GENESIS_POLL_S)
        rules = await load_network_rules(store)
    problem = find_gateway_key_problem(rules, operator_id)
    if problem is not None:
        raise OperatingError(problem)


@get("/health")
async def health(state: State) -> dict[str, Any]:
    operator: Operator = state.operator
    return {
        "status": "ok",
        "treasury": operator.chain.treasury,
        "slot": await operator.chain.block_height(),
        "credited": operator.credited + operator.loop.credited,
        "anchored": operator.loop.anchored,
    }


@get("/blockhash")
async def blockhash(state: State) -> dict[str, str]:
    operator: Operator = state.operator
    return {
        "blockhash": str(operator.chain.svm.latest_blockhash()),
        "treasury": operator.chain.treasury,
    }


@post("/faucet", status_code=200)
async def faucet(state: State, data: FaucetIn) -> dict[str, Any]:
    """Airdrop lamports to an address (a devnet convenience, as on Solana's devnet)."""
    operator: Operator = state.operator
    if not 0 < data.lamports <= FAUCET_LAMPORTS_MAX:
        raise ValidationException(f"lamports must be in 1..{FAUCET_LAMPORTS_MAX}")
    try:
        address = Pubkey.from_string(data.address)
    except ValueError as exc:
        raise ValidationException(f"not a Solana address: {data.address}") from exc
    operator.chain.svm.airdrop(address, data.lamports)
    return {"address": data.address, "balance": operator.chain.balance(data.address)}


@post("/transactions", status_code=200)
async def send_transaction(state: State, data: TransactionIn) -> dict[str, Any]:
    """Land a signed transaction, then credit any deposit it made (exactly once)."""
    operator: Operator = state.operator
    raw = base64.b64decode(data.transaction)
    if len(raw) > TRANSACTION_BYTES_MAX:
        raise ValidationException(f"transaction is {len(raw)} bytes")
    try:
        receipt = operator.chain.submit(Transaction.from_bytes(raw))
    except (ValueError, ChainError) as exc:
        raise ValidationException(str(exc)) from exc
    try:
        credited = (await operator.bridge.credit_deposits()).credited
    except FlopError as exc:  # the bridge loop's next pass credits it
        _log.info("deposit_left_to_the_loop", signature=receipt.signature, code=exc.code)
        credited = 0
    operator.credited += credited
    _log.info("transaction_landed", signature=receipt.signature, credited=credited)
    return {"signature": receipt.signature, "slot": receipt.slot, "credited": credited}


@get("/memos/{signature:str}")
async def get_memo(state: State, signature: str) -> dict[str, Any]:
    operator: Operator = state.operator
    memo = await operator.chain.get_memo(signature)
    if memo is None:
        raise NotFoundException(f"no transaction {signature} on this chain")
    return {"memo": memo.memo, "slot": memo.slot}


@post("/rpc", status_code=200)
async def rpc(state: State, data: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC 2.0 subset over the chain log (everything on LiteSVM is final)."""
    operator: Operator = state.operator
    return answer_rpc(operator.chain, data)


def answer_rpc(chain: LiteSvmGateway, data: dict[str, Any]) -> dict[str, Any]:
    """One JSON-RPC request against ``chain``'s log: the answer a Solana node would give."""
    method, params = data.get("method"), data.get("params") or []
    answer: dict[str, Any] = {"jsonrpc": "2.0", "id": data.get("id")}
    if method == "getTransaction" and params:
        answer["result"] = _rpc_transaction(chain, str(params[0]))
    elif method == "getSignaturesForAddress" and params:
        options = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        answer["result"] = _rpc_signatures(chain, str(params[0]), options)
    else:
        answer["error"] = {"code": RPC_METHOD_NOT_FOUND, "message": f"no method {method!r} here"}
    return answer


def _rpc_transaction(chain: LiteSvmGateway, signature: str) -> dict[str, Any] | None:
    entry = chain.get_logged(signature)
    if entry is None:
        return None
    return {
        "slot": entry.slot,
        "transaction": [base64.b64encode(entry.transaction).decode(), "base64"],
        "meta": {"err": None, "loadedAddresses": {"writable": [], "readonly": []}},
        "version": "legacy",
    }


def _rpc_signatures(
    chain: LiteSvmGateway, address: str, options: dict[str, Any]
) -> list[dict[str, Any]]:
    """Newest first, from before ``before`` (exclusive), at most ``limit``."""
    entries = [entry for entry in reversed(chain.chain_log) if address in entry.accounts]
    before = options.get("before")
    if before is not None:
        names = [entry.signature for entry in entries]
        entries = entries[names.index(before) + 1 :] if before in names else []
    limit = min(int(options.get("limit", RPC_SIGNATURES_LIMIT_MAX)), RPC_SIGNATURES_LIMIT_MAX)
    return [
        {"signature": e.signature, "slot": e.slot, "err": None, "confirmationStatus": "finalized"}
        for e in entries[:limit]
    ]


def build_app(nats_url: str) -> Litestar:
    """The operator's app: its loops start with it and stop with it."""

    async def start(app: Litestar) -> None:
        operator = await open_operator(nats_url)
        app.state.operator = operator
        operator.tasks = [
            asyncio.create_task(
                operator.loop.run_as_leader(
                    get_settings().event_store_url, operator.stop, BRIDGE_INTERVAL_S
                ),
                name="bridge",
            ),
            asyncio.create_task(
                run_offer_publisher(operator.store, operator.nats_url, operator.stop),
                name="offers",
            ),
        ]
        _log.info("operator_started", treasury=operator.chain.treasury)

    async def stop(app: Litestar) -> None:
        operator: Operator | None = getattr(app.state, "operator", None)
        if operator is None:
            return
        operator.stop.set()
        done, pending = await asyncio.wait(operator.tasks, timeout=SHUTDOWN_DEADLINE_S)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                _log.error(
                    "operator_task_failed", task=task.get_name(), error=repr(task.exception())
                )
        await operator.store.close()
        _log.info("operator_stopped")

    return Litestar(
        route_handlers=[health, blockhash, faucet, send_transaction, get_memo, rpc],
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=None,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m flopledger.devnet.operator --port PORT [--nats-url URL]``."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="flopledger-devnet-operator", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nats-url", help="NATS URL (default: FLOP_NATS_URL)")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    nats_url = args.nats_url or settings.nats_url
    if not nats_url:
        parser.error("--nats-url or FLOP_NATS_URL is required")
    uvicorn.run(
        build_app(nats_url),
        host="127.0.0.1",
        port=args.port,
        log_level=settings.log_level,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

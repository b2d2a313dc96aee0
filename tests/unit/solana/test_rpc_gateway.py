"""The RPC gateway's reading of the treasury (issue 16, item 7): every page of signatures
since the checkpoint, not only the newest 1000; v0 transactions with lookup tables parsed
without crashing. No cluster is reachable from the tests: the client is a stand-in that
answers with what a node would (pages of signature statuses, base64 transactions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams

from adapters.solana.common import build_transaction, parse_transaction
from adapters.solana.rpc import SIGNATURES_PAGE_MAX, RpcGateway

TREASURY = Keypair.from_seed(bytes([5]) * 32)
DEPOSITS = SIGNATURES_PAGE_MAX + 7  # more than one page


@dataclass
class PagingClient:
    """Answers ``getSignaturesForAddress`` newest first, ``limit`` at a time, honouring
    ``before`` and ``until`` as a node does, and ``getTransaction`` with the transaction."""

    transactions: list[Transaction]
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def get_signatures_for_address(self, _address: Pubkey, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        newest_first = [tx.signatures[0] for tx in reversed(self.transactions)]
        if kwargs["until"] is not None:
            newest_first = newest_first[: newest_first.index(kwargs["until"])]
        if kwargs["before"] is not None:
            newest_first = newest_first[newest_first.index(kwargs["before"]) + 1 :]
        page = newest_first[: kwargs["limit"]]
        return SimpleNamespace(value=[SimpleNamespace(signature=s, err=None) for s in page])

    async def get_transaction(self, signature: Signature, **_kwargs: Any) -> Any:
        (tx,) = [t for t in self.transactions if t.signatures[0] == signature]
        meta = SimpleNamespace(loaded_addresses=None)
        found = SimpleNamespace(transaction=tx, meta=meta)
        return SimpleNamespace(value=SimpleNamespace(transaction=found, slot=1))


def deposit(amount: int) -> Transaction:
    payer = Keypair()
    return build_transaction(payer, Hash.default(), "memo", TREASURY.pubkey(), amount)


async def test_every_page_since_the_checkpoint_is_read() -> None:
    client = PagingClient([deposit(amount) for amount in range(1, DEPOSITS + 1)])
    gateway = RpcGateway(client, TREASURY)  # type: ignore[arg-type]
    found = await gateway.list_incoming()
    assert [t.amount for t in found] == list(range(1, DEPOSITS + 1))
    assert len(client.calls) == 2
    client.transactions.append(deposit(DEPOSITS + 1))
    client.calls.clear()
    again = await gateway.list_incoming()
    assert [t.amount for t in again] == list(range(1, DEPOSITS + 2))
    assert len(client.calls) == 1 and client.calls[0]["until"] is not None


def test_a_v0_transaction_with_a_lookup_table_is_parsed() -> None:
    payer = Keypair()
    table = AddressLookupTableAccount(Pubkey.new_unique(), [Pubkey.new_unique(), TREASURY.pubkey()])
    instructions = [
        transfer(
            TransferParams(from_pubkey=payer.pubkey(), to_pubkey=TREASURY.pubkey(), lamports=7)
        ),
        create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=payer.pubkey(), message=b"hi")),
    ]
    message = MessageV0.try_compile(payer.pubkey(), instructions, [table], Hash.default())
    tx = VersionedTransaction(message, [payer])
    lookup = message.address_table_lookups[0]
    loaded = [table.addresses[i] for i in lookup.writable_indexes] + [
        table.addresses[i] for i in lookup.readonly_indexes
    ]
    memo, incoming = parse_transaction(tx, 3, TREASURY.pubkey(), loaded)
    assert memo == "hi" and incoming is not None and incoming.amount == 7
    memo, unresolved = parse_transaction(tx, 3, TREASURY.pubkey())  # tables not resolved
    assert memo == "hi" and unresolved is None

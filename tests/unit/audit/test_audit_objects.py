"""The audit on object-stored records (rules v5, issue 17): a consumer that records its own
upload pays the log fee from its account in the same command, and the replay accepts it (a
devnet with a consumer's own-data job failed its audit there); the record still may not
touch another stream."""

from __future__ import annotations

import hashlib

from adapters.store.memory import MemoryEventStore
from domain.ledger import user_account
from domain.policy import LedgerPolicy
from domain.records import Record
from domain.services.queries import get_balances
from flopledger.network import LocalNetwork, b64
from proofs.identity import Identity
from tests.forgery import replay
from validator.audit_rules import find_violation

CONSUMER = Identity.from_seed(b"audit-object-consumer".ljust(32, b"\0"))
FUNDS = 10_000
DIGEST = hashlib.sha256(b"the consumer's matrix").digest()


async def _history() -> tuple[LocalNetwork, list[Record]]:
    net = LocalNetwork.create(MemoryEventStore(), policy=LedgerPolicy())
    await net.deposit(CONSUMER, FUNDS)
    body = {"digest": b64(DIGEST), "size_bytes": 4_224, "uploader": CONSUMER.id}
    await net.run(CONSUMER, "object.record_stored", body)
    return net, await net.store.read_all(1, 10_000)


def _record_stored_command(records: list[Record]) -> list[int]:
    """Indexes of the records the consumer's object.record_stored command wrote."""
    command = next(r.command_id for r in records if r.event_type == "ObjectStored")
    return [i for i, r in enumerate(records) if r.command_id == command]


async def test_a_consumers_own_upload_record_with_its_log_fee_passes_the_audit() -> None:
    net, records = await _history()
    balances = await get_balances(net.store)
    assert balances[user_account(CONSUMER.id)].balance == FUNDS - net.policy.log_fee
    written = {records[i].stream_type for i in _record_stored_command(records)}
    assert "account" in written and written <= {"object", "account", "directory"}
    replay(records)
    replay(records, reexecute=True)


def test_the_record_may_still_not_append_to_another_stream() -> None:
    for stream_type in ("job", "node", "log"):
        why = find_violation(
            "object.record_stored",
            CONSUMER.id,
            stream_type,
            f"{stream_type}:x",
            "Anything",
            {},
            operators=frozenset(),
            principals=frozenset({CONSUMER.id}),
        )
        assert why == f"object.record_stored may not append to a {stream_type} stream"

"""Account snapshots: an account loaded from its snapshot and the records after it equals the
account replayed from its whole stream; a snapshot is only a cache."""

from __future__ import annotations

from adapters.store.memory import MemoryEventStore
from domain.errors import StoreUnavailable
from domain.events import rebuild
from domain.ledger import Account, user_account
from domain.policy import LedgerPolicy
from domain.records import Snapshot
from domain.services.loading import load_aggregate
from domain.snapshots import ACCOUNT_SNAPSHOT_EVERY_EVENTS, compute_snapshot_id
from flopledger.network import LocalNetwork
from proofs.identity import Identity

USER = Identity.from_seed(bytes([9]) * 32)


async def _replayed(store: MemoryEventStore, account_id: str) -> Account:
    account = rebuild(await store.read_stream(account_id), Account)
    assert account is not None
    return account


async def test_loaded_from_snapshot_equals_replayed_at_every_length() -> None:
    store = MemoryEventStore()
    net = LocalNetwork.create(store, policy=LedgerPolicy(withdrawal_min=1))
    account_id = user_account(USER.id)
    for step in range(3 * ACCOUNT_SNAPSHOT_EVERY_EVENTS):
        if step % 5 == 4:
            await net.run(USER, "account.withdraw", {"amount": 1})
        else:
            await net.deposit(USER, 3)
        loaded = await load_aggregate(store, Account, account_id)
        replayed = await _replayed(store, account_id)
        assert loaded.aggregate is not None
        assert loaded.aggregate.state() == replayed.state()
        assert loaded.aggregate.version == replayed.version
        assert loaded.aggregate.modified_on == replayed.modified_on
    snapshot = await store.get_snapshot(compute_snapshot_id(account_id))
    assert snapshot is not None and snapshot.version >= ACCOUNT_SNAPSHOT_EVERY_EVENTS
    # The balance row the sealer keeps under the account id is another thing: untouched.
    assert await store.get_snapshot(account_id) is None


async def test_an_unreadable_snapshot_is_ignored_and_the_stream_replayed() -> None:
    store = MemoryEventStore()
    net = LocalNetwork.create(store)
    await net.deposit(USER, 3)
    account_id = user_account(USER.id)
    await store.save_snapshot(
        Snapshot(stream_id=compute_snapshot_id(account_id), version=1, state=b"not json")
    )
    loaded = await load_aggregate(store, Account, account_id)
    assert loaded.snapshot_version == 0
    assert loaded.aggregate is not None
    assert loaded.aggregate.state() == (await _replayed(store, account_id)).state()


class SnapshotsUnavailable(MemoryEventStore):
    """A store whose snapshot table fails (the event log works)."""

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        raise StoreUnavailable("snapshot table is down")


async def test_a_failed_snapshot_write_does_not_fail_the_committed_command() -> None:
    store = SnapshotsUnavailable()
    net = LocalNetwork.create(store)
    for _ in range(ACCOUNT_SNAPSHOT_EVERY_EVENTS + 2):
        await net.deposit(USER, 3)
    account = (await load_aggregate(store, Account, user_account(USER.id))).aggregate
    assert account is not None and account.balance == 3 * (ACCOUNT_SNAPSHOT_EVERY_EVENTS + 2)

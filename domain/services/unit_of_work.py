"""Load aggregates, collect what a command decided, and append it all in one commit."""

from __future__ import annotations

from typing import TypeVar

from domain.directory import Directory
from domain.errors import NotFound, RejectionCode
from domain.events import FlopAggregate, encode_event, rebuild
from domain.ledger import Account
from domain.ports import EventStore
from domain.records import AppendOutcome, StreamAppend

A = TypeVar("A", bound=FlopAggregate)
ACCOUNTS_DIRECTORY = "accounts"
NOT_FOUND_CODES: dict[str, RejectionCode] = {
    "account": RejectionCode.ACCOUNT_NOT_FOUND,
    "directory": RejectionCode.DIRECTORY_NOT_FOUND,
    "job": RejectionCode.JOB_NOT_FOUND,
    "log": RejectionCode.LOG_NOT_FOUND,
    "node": RejectionCode.NODE_NOT_FOUND,
    "validator": RejectionCode.VALIDATOR_NOT_FOUND,
    "withdrawal": RejectionCode.WITHDRAWAL_NOT_FOUND,
}
"""The code of a command that names a missing aggregate, by stream type."""


class UnitOfWork:
    """One command's view of the store: every aggregate it touched, appended atomically.

    Each stream is appended with the version it was loaded at, so a concurrent writer makes
    the whole command fail with VersionConflict (and the bus retries it). Accounts that only
    receive credits, and the boundary account, are appended without a version check: no rule
    can be broken by a credit, and hot accounts (treasury, burn) would otherwise serialise
    every settlement.
    """

    def __init__(self, store: EventStore, *, now_ns: int) -> None:
        self.store = store
        self.now_ns = now_ns
        self._loaded: dict[str, tuple[FlopAggregate, int]] = {}
        self._missing: set[str] = set()

    async def get(self, cls: type[A], aggregate_id: str) -> A | None:
        if aggregate_id in self._loaded:
            aggregate = self._loaded[aggregate_id][0]
            if not isinstance(aggregate, cls):
                raise NotFound(f"{aggregate_id} is not a {cls.STREAM_TYPE}")
            return aggregate
        records = await self.store.read_stream(aggregate_id)
        if records and records[0].stream_type != cls.STREAM_TYPE:
            raise NotFound(
                f"{aggregate_id} is a {records[0].stream_type}, not a {cls.STREAM_TYPE}",
                code=_not_found_code(cls),
            )
        found = rebuild(records, cls)
        if found is not None:
            self._loaded[aggregate_id] = (found, found.version)
        else:
            self._missing.add(aggregate_id)
        return found

    async def require(self, cls: type[A], aggregate_id: str) -> A:
        found = await self.get(cls, aggregate_id)
        if found is None:
            raise NotFound(f"no {cls.STREAM_TYPE} {aggregate_id}", code=_not_found_code(cls))
        return found

    async def account(self, account_id: str) -> Account:
        """The account, opened on first use."""
        found = await self.get(Account, account_id)
        if found is None:
            found = Account.open(account_id, now_ns=self.now_ns)
            self.add(found)
            directory = await self.get(Directory, Directory.stream_id(ACCOUNTS_DIRECTORY))
            if directory is None:
                directory = Directory.start(ACCOUNTS_DIRECTORY, now_ns=self.now_ns)
                self.add(directory)
            directory.add(account_id, now_ns=self.now_ns)
        return found

    async def has_changed_since_read(self) -> bool:
        """Whether a stream this unit of work read has been appended to since (or a stream it
        found missing has been created): its reads are then no consistent snapshot, and a
        decision taken on them (a rejection included) must be taken again."""
        for aggregate_id, (_, loaded_version) in self._loaded.items():
            if loaded_version and await self.store.read_stream(aggregate_id, loaded_version + 1):
                return True
        for aggregate_id in self._missing:
            if await self.store.read_stream(aggregate_id):
                return True
        return False

    def add(self, aggregate: FlopAggregate) -> None:
        if aggregate.id in self._loaded:
            # Handlers look an aggregate up before creating it; adding one twice is a bug.
            raise AssertionError(f"{aggregate.id} was added to the unit of work twice")
        self._loaded[aggregate.id] = (aggregate, 0)

    def is_new(self, aggregate_id: str) -> bool:
        return aggregate_id in self._loaded and self._loaded[aggregate_id][1] == 0

    def pending_appends(self) -> list[StreamAppend]:
        appends = []
        for aggregate, loaded_version in self._loaded.values():
            events = aggregate.collect_new_events()
            if not events:
                continue
            expected: int | None = loaded_version
            if loaded_version and (
                getattr(aggregate, "APPEND_WITHOUT_VERSION_CHECK", False)
                or (
                    isinstance(aggregate, Account)
                    and (
                        aggregate.allows_negative
                        or all(isinstance(e, Account.Credited) for e in events)
                    )
                )
            ):
                expected = None
            appends.append(
                StreamAppend(
                    stream_id=aggregate.id,
                    stream_type=type(aggregate).STREAM_TYPE,
                    expected_version=expected,
                    events=tuple(encode_event(e) for e in events),
                )
            )
        return appends

    async def commit(self, *, command_id: str, metadata: bytes) -> AppendOutcome | None:
        appends = self.pending_appends()
        if not appends:
            return None
        return await self.store.append(appends, command_id=command_id, metadata=metadata)


def _not_found_code(cls: type[FlopAggregate]) -> RejectionCode:
    return NOT_FOUND_CODES.get(cls.STREAM_TYPE, RejectionCode.NOT_FOUND)

"""Load aggregates, collect what a command decided, and append it all in one commit."""

from __future__ import annotations

from typing import TypeVar

from domain.beacon import Beacon
from domain.directory import Directory
from domain.errors import NotFound, RejectionCode, StoreError
from domain.events import FlopAggregate, encode_event
from domain.ledger import Account
from domain.node import Node
from domain.ports import EventStore
from domain.records import LOG_HEAD_GUARD, AppendOutcome, Head, NewEvent, StreamAppend
from domain.services.loading import is_snapshot_due, load_aggregate, save_snapshot

A = TypeVar("A", bound=FlopAggregate)
ACCOUNTS_DIRECTORY = "accounts"
NOT_FOUND_CODES: dict[str, RejectionCode] = {
    "apikey": RejectionCode.APIKEY_NOT_FOUND,
    "account": RejectionCode.ACCOUNT_NOT_FOUND,
    "canary": RejectionCode.CANARY_NOT_FOUND,
    "chain_credit": RejectionCode.CHAIN_CREDIT_NOT_FOUND,
    "completion": RejectionCode.COMPLETION_NOT_FOUND,
    "decision": RejectionCode.DECISION_NOT_FOUND,
    "beacon": RejectionCode.BEACON_NOT_FOUND,
    "directory": RejectionCode.DIRECTORY_NOT_FOUND,
    "encryption_key": RejectionCode.ENCRYPTION_KEY_NOT_FOUND,
    "job": RejectionCode.JOB_NOT_FOUND,
    "liveness": RejectionCode.LIVENESS_NOT_FOUND,
    "log": RejectionCode.LOG_NOT_FOUND,
    "model": RejectionCode.MODEL_NOT_FOUND,
    "network": RejectionCode.NETWORK_NOT_FOUND,
    "node": RejectionCode.NODE_NOT_FOUND,
    "object": RejectionCode.OBJECT_NOT_FOUND,
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

    What a command reads is bounded whatever the length of the log: accounts load from their
    latest snapshot (``domain.services.loading``), and members join a directory without the
    directory being read (``add_to_directory``).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        now_ns: int,
        read_versions: dict[str, int] | None = None,
        known_directories: set[str] | None = None,
    ) -> None:
        self.store = store
        self.now_ns = now_ns
        # Directory streams known to exist (shared by one service's units of work): a stream
        # is never removed, so one lookup per process is enough.
        self._known_directories = known_directories if known_directories is not None else set()
        # Streams read outside ``get`` (the network's rules), at the version they were read.
        self._read_versions = dict(read_versions or {})
        self._read_head: Head | None = None  # the head ``head`` read, if any
        self._loaded: dict[str, tuple[FlopAggregate, int]] = {}
        self._snapshot_versions: dict[str, int] = {}
        self._missing: set[str] = set()
        # Directory streams appended to without being read: stream id -> events to append.
        self._unread_appends: dict[str, list[NewEvent]] = {}

    async def get(self, cls: type[A], aggregate_id: str) -> A | None:
        if aggregate_id in self._loaded:
            aggregate = self._loaded[aggregate_id][0]
            if not isinstance(aggregate, cls):
                raise NotFound(f"{aggregate_id} is not a {cls.STREAM_TYPE}")
            return aggregate
        if aggregate_id in self._unread_appends:
            raise AssertionError(f"{aggregate_id} was read after members were added unread")
        loaded = await load_aggregate(self.store, cls, aggregate_id)
        if loaded.stream_type is not None and loaded.stream_type != cls.STREAM_TYPE:
            raise NotFound(
                f"{aggregate_id} is a {loaded.stream_type}, not a {cls.STREAM_TYPE}",
                code=_not_found_code(cls),
            )
        found = loaded.aggregate
        if found is not None:
            self._loaded[aggregate_id] = (found, found.version)
            self._snapshot_versions[aggregate_id] = loaded.snapshot_version
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
            await self.add_to_directory(ACCOUNTS_DIRECTORY, account_id)
        return found

    async def open_new_account(self, account_id: str) -> Account:
        """An account this command creates under an id nobody can have used (a job's escrow:
        the job id derives from the command id, and a command runs once), opened without
        reading the store. Its append expects no stream, so were one there, the commit would
        fail with VersionConflict rather than write over it."""
        account = Account.open(account_id, now_ns=self.now_ns)
        self.add(account)
        await self.add_to_directory(ACCOUNTS_DIRECTORY, account_id)
        return account

    async def add_to_directory(self, name: str, member_id: str) -> None:
        """Add ``member_id`` to directory ``name`` without reading the directory's members.

        Adds commute and are appended without a version check, so the only thing to know is
        whether the stream exists yet (one index lookup); reading every member here made each
        new account cost more with every account before it.
        """
        stream_id = Directory.stream_id(name)
        if stream_id in self._loaded:
            directory = self._loaded[stream_id][0]
            if not isinstance(directory, Directory):
                raise NotFound(
                    f"{stream_id} is not a directory", code=RejectionCode.DIRECTORY_NOT_FOUND
                )
            directory.add(member_id, now_ns=self.now_ns)
            return
        if stream_id not in self._unread_appends:
            if stream_id not in self._known_directories:
                if await self.store.get_stream_version(stream_id) == 0:
                    directory = Directory.start(name, now_ns=self.now_ns)
                    self.add(directory)
                    directory.add(member_id, now_ns=self.now_ns)
                    return
                self._known_directories.add(stream_id)
            self._unread_appends[stream_id] = []
        event = Directory.member_added(stream_id, member_id, now_ns=self.now_ns)
        self._unread_appends[stream_id].append(encode_event(event))

    async def head(self) -> Head:
        """The log's head, read for a decision (a draw's seed, a genesis's prior records): the
        command then commits only right after it (a guard, ``LOG_HEAD_GUARD``), so the head it
        decided on is the record before it and anyone re-running it there reads the same."""
        if self._read_head is None:
            self._read_head = await self.store.head()
        return self._read_head

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
        for stream_id, new_events in self._unread_appends.items():
            appends.append(
                StreamAppend(
                    stream_id=stream_id,
                    stream_type=Directory.STREAM_TYPE,
                    expected_version=None,
                    events=tuple(new_events),
                )
            )
        if appends:
            appends.extend(self._read_guards({a.stream_id for a in appends}))
        return appends

    def _read_guards(self, written: set[str]) -> list[StreamAppend]:
        """Every stream the command read and did not write, at the version it read: the
        commit fails with VersionConflict if one moved in between, so a command is decided on
        exactly the state before it in the log, and anyone can run it again there and get the
        same records (the audit's re-execution, ``validator.audit_reexec``)."""
        read = {aggregate_id: version for aggregate_id, (_, version) in self._loaded.items()}
        read.update(dict.fromkeys(self._missing, 0))
        read.update(self._read_versions)
        if self._read_head is not None:
            read[LOG_HEAD_GUARD] = self._read_head.position
        return [
            StreamAppend(stream_id=stream_id, stream_type="", expected_version=version, events=())
            for stream_id, version in sorted(read.items())
            if stream_id not in written
        ]

    async def commit(self, *, command_id: str, metadata: bytes) -> AppendOutcome | None:
        appends = self.pending_appends()
        if not appends:
            return None
        outcome = await self.store.append(appends, command_id=command_id, metadata=metadata)
        await self._save_due_snapshots(outcome)
        return outcome

    async def _save_due_snapshots(self, outcome: AppendOutcome) -> None:
        """Snapshot the accounts, nodes and the beacon this command left exactly as the store
        holds them (no other command appended to them in between) once enough events followed
        their last one."""
        for aggregate_id, (aggregate, _) in self._loaded.items():
            exact = outcome.stream_versions.get(aggregate_id) == aggregate.version
            if (
                exact
                and isinstance(aggregate, Account | Node | Beacon)
                and is_snapshot_due(aggregate, self._snapshot_versions.get(aggregate_id, 0))
            ):
                try:
                    await save_snapshot(self.store, aggregate)
                except StoreError:
                    # The command is committed; a snapshot is only a cache, and the next
                    # command that loads this account writes one again.
                    return


def _not_found_code(cls: type[FlopAggregate]) -> RejectionCode:
    return NOT_FOUND_CODES.get(cls.STREAM_TYPE, RejectionCode.NOT_FOUND)

"""Run an audit: read a source from genesis, feed the replay, do the checks that need IO.

Sources: an event store (``sqlite:///``, ``postgresql://``: read in batches, the next batch
read while this one is checked) or the NATS mirror (``nats://``: a verified replay of
FLOP_EVENTS from sequence 1). After the replay: the final ledger invariants, the store's head
row against the replayed head, materialized balances (store snapshots) against the replayed
ones, and each anchor against the chain when one is reachable. The report says which checks
ran, how many items each covered, and the first failure (position and check).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from adapters.nats.errors import ChainBroken
from domain.balances import decode_balance_snapshot
from domain.errors import OperatingError
from domain.log import encode_anchor_memo
from domain.ports import ChainMemo, EventStore
from domain.records import Record
from validator.audit import (
    ANCHOR,
    CHECKS,
    HASH_CHAIN,
    READ_MODEL,
    REEXECUTION,
    SIGNATURE_CHECKS,
    STORED_PROOFS,
    AuditFailed,
    AuditOptions,
    Replayer,
)
from validator.audit_chain import (
    CHAIN_MONEY,
    ChainCheckFailed,
    ChainHistory,
    check_money_on_chain,
    scan_anchors,
)
from validator.audit_envelopes import summarize_overrides
from validator.audit_history import HISTORY_CHECKS
from validator.audit_signatures import (
    SIGNATURE_POOL_MIN_RECORDS,
    BlsChecksAhead,
    SignaturePool,
    get_signature_workers,
)
from validator.audit_sources import AuditSource, SourceUnreadable, StoreSource
from validator.audit_state import check_balance_snapshot, check_final_invariants, summarize_state
from validator.audit_work import UNVERIFIED_STATUSES, WORK, WorkCheck, check_work

__all__ = [
    "AnchorReader",
    "AuditReport",
    "AuditSource",
    "ChainMemo",
    "SourceUnreadable",
    "StoreSource",
    "WorkCheck",
    "open_source",
    "run_audit",
]

SIGNATURE_BATCHES_AHEAD = 2
"""Batches sent to the signature pool before the replay feeds the first of them."""

Progress = Callable[[int, int], None]


class AnchorReader(Protocol):
    """What the audit needs of a chain: the memo and slot of a transaction, or None."""

    async def get_memo(self, signature: str) -> ChainMemo | None: ...


class FailureView(msgspec.Struct, frozen=True):
    position: int
    check: str
    message: str


class CheckView(msgspec.Struct, frozen=True):
    status: str
    count: int


class AuditReport(msgspec.Struct, kw_only=True):
    ok: bool
    source: str
    position: int
    events: int
    elapsed_s: float
    events_per_s: float
    failure: FailureView | None
    checks: dict[str, CheckView]
    state: dict[str, Any]
    warnings: list[str]


async def run_audit(
    source: AuditSource,
    options: AuditOptions,
    *,
    chain: AnchorReader | None = None,
    progress: Progress | None = None,
    work: WorkCheck | None = None,
) -> AuditReport:
    """Audit ``source``; raises SourceUnreadable when it cannot be read (or, with
    ``options.verify_work``, when ``work``'s object store cannot)."""
    if options.verify_work and work is None:
        raise ValueError("verify_work needs a WorkCheck (the object store and the clock)")
    started = time.perf_counter()
    replayer = Replayer(options)
    warnings: list[str] = []
    failure: AuditFailed | None = None
    chain_checked = False
    try:
        total = await source.head_position()
    except OperatingError as exc:
        raise SourceUnreadable(f"reading {source.name} failed: {exc}") from exc
    if options.at_position is not None:
        total = min(total, options.at_position)
    try:
        await _replay(source, replayer, options.at_position, total, progress)
        replayer.end_command(complete=options.at_position is None)
        if replayer.reexecution is not None and replayer.reexecution.not_reexecuted:
            warnings.append(
                f"{replayer.reexecution.not_reexecuted} commands checked but not re-executed "
                "(written before issue 16 recorded the clock, or before a late genesis)"
            )
        replayer.check_genesis()
        replayer.check_history()
        check_final_invariants(replayer)
        if source.store is not None and options.at_position is None:
            await _check_store_head(source.store, replayer)
        if source.store is not None:
            await _check_read_model(source.store, replayer)
        else:
            warnings.append("read model not checked: the source has no read tables")
        await _check_anchors(replayer, chain, warnings)
        chain_checked = await _check_chain_history(replayer, options, chain, warnings)
        if work is not None and replayer.work is not None:
            await _check_work(replayer, work)
    except AuditFailed as exc:
        failure = exc
    elapsed = time.perf_counter() - started
    warnings.extend(
        f"trusted head of size {size} not checked: past the audited position"
        for size in replayer.history.unchecked_trusted(replayer.head.position)
        if failure is None
    )
    report = _report(source.name, replayer, options, failure, warnings, elapsed, chain)
    if not chain_checked and report.checks[CHAIN_MONEY].status == "passed":
        view = report.checks[CHAIN_MONEY]
        report.checks[CHAIN_MONEY] = CheckView(status="skipped", count=view.count)
    return report


async def _check_chain_history(
    replayer: Replayer, options: AuditOptions, chain: AnchorReader | None, warnings: list[str]
) -> bool:
    """Issue 16, items 3 and 4 (``validator.audit_chain``): deposits and payouts against
    the chain's transactions, the treasury's memo history against the log's heads. False
    when no chain history (or no treasury address) was at hand."""
    if not isinstance(chain, ChainHistory):
        return False  # the chain_money check reports "skipped" (its replay rules ran)
    treasury = options.treasury or str(getattr(chain, "treasury", ""))
    if not treasury:
        warnings.append("money not checked against the chain: no treasury address (--treasury)")
        return False
    try:
        count = await check_money_on_chain(replayer.chain_money, chain, treasury, warnings)
        replayer.counts[CHAIN_MONEY] += count
        replayer.counts[ANCHOR] += await scan_anchors(replayer.log, chain, treasury)
    except ChainCheckFailed as exc:
        raise AuditFailed(exc.position, exc.check, exc.message) from exc
    except OperatingError as exc:
        raise SourceUnreadable(f"reading the chain failed: {exc}") from exc
    return True


async def _replay(
    source: AuditSource,
    replayer: Replayer,
    until: int | None,
    total: int,
    progress: Progress | None,
) -> None:
    options = replayer.options
    pool = ahead_bls = None
    if (options.verify_signatures or options.reexecute) and total >= SIGNATURE_POOL_MIN_RECORDS:
        pool, ahead_bls = SignaturePool(get_signature_workers()), BlsChecksAhead()
    # Batches whose signatures the pool is checking, fed in order once its answers are in.
    ahead: deque[tuple[list[Record], asyncio.Future[dict[bytes, str]] | None]] = deque()
    try:
        async for batch in source.batches(until):
            verdicts = None
            if pool is not None and ahead_bls is not None:
                verdicts = pool.submit(
                    batch, envelopes=options.verify_signatures, bls_checks=ahead_bls.collect(batch)
                )
            ahead.append((batch, verdicts))
            if len(ahead) > SIGNATURE_BATCHES_AHEAD and await _feed(
                replayer, *ahead.popleft(), until
            ):
                return
            if progress is not None:
                progress(replayer.head.position, total)
        while ahead:
            if await _feed(replayer, *ahead.popleft(), until):
                return
    except ChainBroken as exc:
        raise AuditFailed(exc.position, HASH_CHAIN, exc.reason) from exc
    except OperatingError as exc:
        raise SourceUnreadable(f"reading {source.name} failed: {exc}") from exc
    finally:
        for _, verdicts in ahead:
            if verdicts is not None:
                verdicts.cancel()
        if pool is not None:
            pool.close()


async def _feed(
    replayer: Replayer,
    batch: list[Record],
    verdicts: asyncio.Future[dict[bytes, str]] | None,
    until: int | None,
) -> bool:
    """Feed one batch; True when the audited position is reached."""
    replayer.envelope_problems = {} if verdicts is None else await verdicts
    for record in batch:
        if until is not None and record.position > until:
            return True
        replayer.feed(record)
    return False


async def _check_store_head(store: EventStore, replayer: Replayer) -> None:
    head = await store.head()
    if head != replayer.head:
        raise AuditFailed(
            replayer.head.position,
            HASH_CHAIN,
            f"the store's head row says position {head.position} hash {head.hash.hex()[:16]}, "
            f"the records end at {replayer.head.position}",
        )


async def _check_read_model(store: EventStore, replayer: Replayer) -> None:
    for account_id in sorted(replayer.balance_history):
        snapshot = await store.get_snapshot(account_id)
        if snapshot is None:
            continue
        if snapshot.version > len(replayer.balance_history[account_id]):
            continue  # a snapshot newer than the audited position (--at)
        try:
            state = msgspec.structs.asdict(decode_balance_snapshot(snapshot.state))
        except msgspec.MsgspecError as exc:
            position = replayer.last_positions[account_id]
            raise AuditFailed(position, READ_MODEL, f"snapshot of {account_id}: {exc}") from exc
        check_balance_snapshot(replayer, account_id, snapshot.version, state)


async def _check_anchors(
    replayer: Replayer, chain: AnchorReader | None, warnings: list[str]
) -> None:
    anchors = replayer.log.anchors
    if not anchors:
        return
    if chain is None:
        warnings.append(
            f"{len(anchors)} anchors checked against tree heads only: no chain reachable"
        )
        return
    for claim in anchors:
        found = await chain.get_memo(claim.chain_signature)
        expected = encode_anchor_memo(claim.size, claim.root)
        if found is None:
            raise AuditFailed(
                claim.position, ANCHOR, f"{claim.chain_signature} is not on the chain"
            )
        if found.memo != expected or found.slot != claim.slot:
            raise AuditFailed(
                claim.position,
                ANCHOR,
                f"on chain {claim.chain_signature} says {found.memo!r} at slot {found.slot}, "
                f"the log says {expected!r} at slot {claim.slot}",
            )
        replayer.counts[ANCHOR] += 1


async def _check_work(replayer: Replayer, work: WorkCheck) -> None:
    """Issue 16, item 2: re-run the verifiers on the stored evidence (``validator.audit_work``)."""
    ledger = replayer.work
    assert ledger is not None  # options.verify_work
    try:
        failure = await check_work(ledger, work)
    except OperatingError as exc:
        raise SourceUnreadable(f"reading the object store failed: {exc}") from exc
    replayer.counts[WORK] = ledger.reverified
    if failure is not None:
        raise AuditFailed(failure.position, WORK, failure.message)


def _report(
    name: str,
    replayer: Replayer,
    options: AuditOptions,
    failure: AuditFailed | None,
    warnings: list[str],
    elapsed: float,
    chain: AnchorReader | None,
) -> AuditReport:
    checks: dict[str, CheckView] = {}
    events = replayer.head.position
    for check in CHECKS:
        status = "passed"
        if failure is not None and failure.check == check:
            status = "failed"
        elif not options.verify_signatures and check in SIGNATURE_CHECKS:
            status = "partial"
        elif (check == STORED_PROOFS and not options.verify_proofs) or (
            check == REEXECUTION and not options.reexecute
        ):
            status = "skipped"
        elif check == ANCHOR and chain is None and replayer.log.anchors:
            status = "partial"
        elif check in HISTORY_CHECKS:
            status = replayer.history.get_status(
                check, verify_signatures=options.verify_signatures, log_size=events
            )
        elif check == WORK:
            status = _work_status(replayer, status)
        checks[check] = CheckView(status=status, count=replayer.counts[check])
    state = {**summarize_state(replayer), "history": replayer.history.summary()}
    state["operator_overrides"] = summarize_overrides(replayer.overrides)  # issue 16, item 5
    if replayer.work is not None:
        state["work"] = replayer.work.summary()
    return AuditReport(
        ok=failure is None,
        source=name,
        position=events,
        events=events,
        elapsed_s=round(elapsed, 3),
        events_per_s=round(events / elapsed, 1) if elapsed > 0 else 0.0,
        failure=None
        if failure is None
        else FailureView(position=failure.position, check=failure.check, message=failure.message),
        checks=checks,
        state=state,
        warnings=warnings,
    )


def _work_status(replayer: Replayer, status: str) -> str:
    """``skipped`` without --verify-work; ``partial`` when some evidence was past retention
    or private (counted under those statuses)."""
    if replayer.work is None:
        return "skipped"
    if any(replayer.work.statuses[name] for name in UNVERIFIED_STATUSES):
        return "partial"
    return status


async def open_source(url: str) -> AuditSource:
    """The source a URL names; SourceUnreadable when it cannot be opened."""
    from adapters.store.factory import SQLITE_PREFIX, get_sqlite_path, open_event_store

    if url.startswith(("nats://", "tls://")):
        from validator.audit_nats import open_nats_source

        return await open_nats_source(url)
    if url.startswith(SQLITE_PREFIX) and not Path(get_sqlite_path(url)).is_file():
        raise SourceUnreadable(f"no SQLite store at {get_sqlite_path(url)}")
    try:
        store = await open_event_store(url)
    except (OperatingError, OSError, ValueError) as exc:
        raise SourceUnreadable(str(exc)) from exc
    return StoreSource(store, _redact(url))


def _redact(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userinfo = head.partition("//")
    return f"{scheme}//{userinfo.split(':', 1)[0]}:***@{tail}"

"""What a command reads does not grow with history: counted in records, never timed.

A counting store wraps the memory store and records how many records each ``read_stream``
returns. Opening the N-th account must not read the account directory (it used to read all
N-1 members), and one job's commands must read the same streams, each at most a bounded
number of records, whether 5 or 150 jobs came before (hot accounts such as the treasury and
the consumer load from a snapshot and the records after it).
"""

from __future__ import annotations

from adapters.store.memory import MemoryEventStore
from domain.job import RESULT_COMMITTED, Job
from domain.policy import LedgerPolicy
from domain.records import Record
from domain.services.queries import get_aggregate, get_balances
from domain.snapshots import ACCOUNT_SNAPSHOT_EVERY_EVENTS
from flopledger.network import LocalNetwork, make_validator_keys
from proofs.identity import Identity

POLICY = LedgerPolicy(node_stake_min=1_000, validator_stake_min=500)
NODE, CONSUMER = Identity.from_seed(bytes([2]) * 32), Identity.from_seed(bytes([4]) * 32)
VALIDATORS = [make_validator_keys(i) for i in range(3)]
# A job stream, the validator directory and each account read after its snapshot stay below
# this many records, however many jobs or accounts came before.
RECORDS_PER_READ_MAX = ACCOUNT_SNAPSHOT_EVERY_EVENTS


class CountingStore(MemoryEventStore):
    """The memory store, noting (stream id, records returned) for every stream read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int]] = []

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[Record]:
        records = await super().read_stream(stream_id, from_version)
        self.reads.append((stream_id, len(records)))
        return records


def _user(index: int) -> Identity:
    return Identity.from_seed(b"bounded-" + index.to_bytes(4, "big") + bytes(20))


async def _reads_of_new_account_deposit(net: LocalNetwork, store: CountingStore, index: int):
    store.reads.clear()
    await net.deposit(_user(index), 5)
    return list(store.reads)


async def test_a_new_account_never_reads_the_account_directory() -> None:
    store = CountingStore()
    net = LocalNetwork.create(store, policy=POLICY)
    for index in range(20):
        await net.deposit(_user(index), 5)
    early = await _reads_of_new_account_deposit(net, store, 20)
    for index in range(21, 400):
        await net.deposit(_user(index), 5)
    late = await _reads_of_new_account_deposit(net, store, 400)

    assert _shape(late) == _shape(early)
    assert not any(stream_id.startswith("directory:") for stream_id, _ in late)
    assert all(count <= RECORDS_PER_READ_MAX for _, count in late)
    # The directory still lists every account (it is written, only no longer read per add).
    assert len(await get_balances(store)) == 402  # 401 users and the boundary account


async def _network() -> tuple[LocalNetwork, CountingStore]:
    store = CountingStore()
    net = LocalNetwork.create(store, policy=POLICY)
    await net.deposit(NODE, 10_000)
    await net.register_active_node(NODE, region="eu-west", price=400, stake=5_000)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 1_000)
        await net.register_validator(keys, stake=1_000)
    await net.deposit(CONSUMER, 10**9)
    return net, store


async def _one_job(net: LocalNetwork, store: CountingStore) -> list[tuple[str, int]]:
    """Reads made by one job's commands, submit to settlement (the test's own reads aside)."""
    reads: list[tuple[str, int]] = []
    store.reads.clear()
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    await net.run(NODE, "job.claim", {"job_id": job_id, "node_id": NODE.id})
    await net.commit_result(NODE, job_id, b"\x07" * 32)
    reads.extend(store.reads)
    job = await get_aggregate(store, Job, job_id)
    assert job is not None
    keys = [k for k in VALIDATORS if k.identity.id in job.validators]
    salts = []
    for k in keys:
        store.reads.clear()
        salts.append(await net.commit_vote(k, job_id, True))
        reads.extend(store.reads[1:])  # the first read is commit_vote's own look at the job
    voting = await get_aggregate(store, Job, job_id)
    assert voting is not None and voting.round is not None
    if not voting.round.is_commit_phase_over(net.now_ns):
        net.now_ns = voting.round.commit_deadline_ns + 1
    for k, salt in zip(keys, salts, strict=True):
        store.reads.clear()
        await net.reveal_vote(k, job_id, True, salt)
        reads.extend(store.reads[1:])
        revealed = await get_aggregate(store, Job, job_id)
        assert revealed is not None
        if revealed.state != RESULT_COMMITTED:
            break
    settled = await get_aggregate(store, Job, job_id)
    assert settled is not None and settled.state == "settled"
    return reads


def _shape(reads: list[tuple[str, int]]) -> list[str]:
    """The kinds of streams read, in order (job, escrow and drawn validator ids differ)."""
    return [_kind(stream_id) for stream_id, _ in reads]


def _kind(stream_id: str) -> str:
    if ":" in stream_id:
        return stream_id.split(":")[0]
    return "job" if stream_id.startswith("job-") else "node or validator"


async def test_one_jobs_commands_read_a_bounded_number_of_records() -> None:
    net, store = await _network()
    early = [await _one_job(net, store) for _ in range(5)][-1]
    for _ in range(145):
        late = await _one_job(net, store)

    assert _shape(late) == _shape(early)
    assert all(count <= RECORDS_PER_READ_MAX for _, count in late), late
    # Without snapshots the consumer's account alone would be read whole: two records a job.
    consumer_records = len(await store.read_stream(f"user:{CONSUMER.id}"))
    assert consumer_records > 2 * RECORDS_PER_READ_MAX


class VersionCountingStore(MemoryEventStore):
    """The memory store, noting every stream whose version a command looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.version_lookups: list[str] = []

    async def get_stream_version(self, stream_id: str) -> int:
        self.version_lookups.append(stream_id)
        return await super().get_stream_version(stream_id)


async def test_one_service_looks_the_account_directory_up_once() -> None:
    store = VersionCountingStore()
    net = LocalNetwork.create(store, policy=POLICY)
    for index in range(3):
        await net.deposit(_user(index), 5)
    store.version_lookups.clear()
    for index in range(3, 30):
        await net.deposit(_user(index), 5)
    assert not [s for s in store.version_lookups if s.startswith("directory:")]
    assert len(await get_balances(store)) == 31  # 30 users and the boundary account

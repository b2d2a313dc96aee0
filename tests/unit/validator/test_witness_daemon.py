"""Witness co-signing in the validator daemon: heads that match the replay are co-signed
through the ledger and appear on the log; a head over another root, or signed by a key
that is not pinned, is refused with an alarm (error log + counter) and never co-signed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from adapters.ledger_api.routes import get_route
from adapters.store.memory import MemoryEventStore
from domain.commands import Command, encode_command_body
from domain.errors import Rejection
from domain.log import LOG_STREAM_ID, Log
from domain.records import Record
from domain.services.queries import get_aggregate
from flopledger.network import LocalNetwork, make_validator_keys
from operations.sealer import Sealer
from proofs.identity import Identity
from proofs.tree_head import sign_tree_head
from validator.daemon import CommandRefused, ValidatorDaemon
from validator.protection import SigningDatabase
from validator.witness import Witness

KEYS = make_validator_keys(90)
CONSUMER = Identity.from_seed(bytes([91]) * 32)
OTHER_KEY = Identity.from_seed(bytes([92]) * 32)


class InProcessLedgerLink:
    def __init__(self, net: LocalNetwork, identity: Identity) -> None:
        self.net, self.identity = net, identity
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False

    async def send(self, command: Command) -> None:
        if self.down:
            raise ConnectionError("API unreachable")
        route, body = get_route(command), encode_command_body(command)
        self.sent.append((route.compute_path(body), route.kind, body))
        try:
            await self.net.run(self.identity, route.kind, body)
        except Rejection as rejection:
            raise CommandRefused(rejection.code) from rejection


class NoArtifacts:
    async def get(self, digest: str) -> bytes:
        raise AssertionError(f"no artifact expected, asked for {digest}")


async def _records(net: LocalNetwork, after: int) -> AsyncIterator[Record]:
    for record in await net.store.read_all(after + 1, 10_000):
        yield record


async def _setup(
    tmp_path: Path, log_signers: tuple[bytes, ...] = ()
) -> tuple[LocalNetwork, ValidatorDaemon, InProcessLedgerLink, Sealer]:
    net = LocalNetwork.create(MemoryEventStore())
    await net.deposit(KEYS.identity, 2_000)
    await net.register_validator(KEYS, stake=1_000)
    ledger = InProcessLedgerLink(net, KEYS.identity)
    daemon = ValidatorDaemon(
        identity=KEYS.identity,
        bls_secret=KEYS.bls_secret,
        ledger=ledger,
        artifacts=NoArtifacts(),
        db=SigningDatabase(tmp_path / "v.db"),
        clock_ns=lambda: net.now_ns,
        witness=Witness(log_signers=log_signers),
    )
    sealer = Sealer(net.store, net.operator, clock_ns=lambda: net.now_ns)
    return net, daemon, ledger, sealer


async def _step(net: LocalNetwork, daemon: ValidatorDaemon) -> None:
    await daemon.follow(_records(net, daemon.checkpoint.position))
    await daemon.tick()


async def _cosigners(net: LocalNetwork, size: int) -> set[str]:
    log = await get_aggregate(net.store, Log, LOG_STREAM_ID)
    assert log is not None
    return set(log.require_head(size).cosigners)


async def test_sealed_heads_are_cosigned(tmp_path: Path) -> None:
    net, daemon, ledger, sealer = await _setup(tmp_path, (net_operator_key(),))
    await net.deposit(CONSUMER, 100)
    first = await sealer.seal_once(force=True)
    await net.deposit(CONSUMER, 100)
    second = await sealer.seal_once(force=True)
    assert first is not None and second is not None
    await _step(net, daemon)
    assert daemon.heads_cosigned == 2 and daemon.heads_refused == 0
    assert [body["size"] for _path, kind, body in ledger.sent if kind == "log.cosign"] == [
        first.size,
        second.size,
    ]
    assert ledger.sent[0][0] == "/v1/log/cosignatures"
    for size in (first.size, second.size):
        assert await _cosigners(net, size) == {KEYS.identity.id}


async def test_cosign_retries_after_a_transport_error(tmp_path: Path) -> None:
    net, daemon, ledger, sealer = await _setup(tmp_path)
    await net.deposit(CONSUMER, 100)
    sealed = await sealer.seal_once(force=True)
    assert sealed is not None
    ledger.down = True
    await _step(net, daemon)
    assert daemon.heads_cosigned == 0
    ledger.down = False
    daemon._cosign_retry_at = 0.0  # the retry delay has passed
    await daemon.tick()
    assert daemon.heads_cosigned == 1
    assert await _cosigners(net, sealed.size) == {KEYS.identity.id}


async def test_a_head_over_another_root_raises_the_alarm(tmp_path: Path) -> None:
    net, daemon, ledger, _sealer = await _setup(tmp_path)
    await net.deposit(CONSUMER, 100)
    size = (await net.store.head()).position
    forged = sign_tree_head(net.operator.private_key, size, bytes(32), net.now_ns)
    body = {
        "size": size,
        "root": forged.root,
        "tree_timestamp_ns": forged.timestamp_ns,
        "signature": forged.signature,
    }
    await net.run(net.operator, "log.seal", body)  # the ledger cannot see the root is wrong
    with capture_logs() as logs:
        await _step(net, daemon)
    assert daemon.heads_refused == 1 and daemon.heads_cosigned == 0
    assert not [sent for sent in ledger.sent if sent[1] == "log.cosign"]
    alarms = [entry for entry in logs if entry["event"] == "tree_head_refused"]
    assert len(alarms) == 1 and alarms[0]["log_level"] == "error"
    assert alarms[0]["size"] == size and "root differs" in alarms[0]["reason"]
    assert await _cosigners(net, size) == set()


async def test_a_head_signed_by_an_unpinned_key_is_refused(tmp_path: Path) -> None:
    net, daemon, _ledger, sealer = await _setup(tmp_path, (OTHER_KEY.public_key_bytes,))
    await net.deposit(CONSUMER, 100)
    assert await sealer.seal_once(force=True) is not None
    await _step(net, daemon)
    assert daemon.heads_refused == 1 and daemon.heads_cosigned == 0
    assert daemon.witness is not None
    assert "not the log's" in daemon.witness.refused[0].reason


async def test_a_restarted_witness_warms_up_and_cosigns_only_the_latest(tmp_path: Path) -> None:
    net, daemon, ledger, sealer = await _setup(tmp_path)
    daemon.witness = None  # the first run does not witness
    for _ in range(2):
        await net.deposit(CONSUMER, 100)
        assert await sealer.seal_once(force=True) is not None
    await _step(net, daemon)
    daemon.db.close()
    restarted = ValidatorDaemon(
        identity=KEYS.identity,
        bls_secret=KEYS.bls_secret,
        ledger=ledger,
        artifacts=NoArtifacts(),
        db=SigningDatabase(tmp_path / "v.db"),
        clock_ns=lambda: net.now_ns,
        witness=Witness(),
    )
    checkpoint = restarted.checkpoint.position
    assert checkpoint > 0
    await restarted.warm_witness(_records_until(net, checkpoint))
    await _step(net, restarted)
    log = await get_aggregate(net.store, Log, LOG_STREAM_ID)
    assert log is not None
    assert restarted.heads_cosigned == 1
    assert set(log.heads[log.last_size].cosigners) == {KEYS.identity.id}
    assert all(not head.cosigners for size, head in log.heads.items() if size != log.last_size)


async def _records_until(net: LocalNetwork, until: int) -> AsyncIterator[Record]:
    for record in await net.store.read_all(1, until):
        yield record


def net_operator_key() -> bytes:
    return LocalNetwork.create(MemoryEventStore()).operator.public_key_bytes

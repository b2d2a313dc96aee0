"""Signed heartbeats (``adapters.nats.signals``) and the validator's tracker of the last
verified beat per node (``validator.heartbeats``): forged, unsigned, re-dated and replayed
beats are dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from adapters.nats.signals import NodeHeartbeat, is_heartbeat_signed, sign_heartbeat
from proofs.identity import Identity
from tests.inprocess import NoArtifacts
from validator.daemon import ValidatorDaemon
from validator.heartbeats import HeartbeatTracker
from validator.protection import SigningDatabase

NODE, OTHER = Identity.from_seed(bytes([181]) * 32), Identity.from_seed(bytes([182]) * 32)


def _beat(node: Identity, sent_at_ns: int) -> NodeHeartbeat:
    beat = NodeHeartbeat(
        node_id=node.id, region="eu-west", sent_at_ns=sent_at_ns, gpus_total=2, gpus_busy=1
    )
    return sign_heartbeat(node, beat)


def test_a_signed_beat_verifies_and_every_edited_field_breaks_it() -> None:
    beat = _beat(NODE, 10)
    assert is_heartbeat_signed(beat)
    for change in ({"sent_at_ns": 11}, {"gpus_busy": 0}, {"region": "us-east"}):
        assert not is_heartbeat_signed(msgspec.structs.replace(beat, **change))
    assert not is_heartbeat_signed(msgspec.structs.replace(beat, signature=b""))
    stolen = msgspec.structs.replace(_beat(OTHER, 10), node_id=NODE.id)
    assert not is_heartbeat_signed(stolen)


def test_a_node_signs_only_its_own_beats() -> None:
    unsigned = NodeHeartbeat(
        node_id=NODE.id, region="eu-west", sent_at_ns=1, gpus_total=1, gpus_busy=0
    )
    with pytest.raises(ValueError):
        sign_heartbeat(OTHER, unsigned)


def test_the_tracker_keeps_the_newest_verified_beat_and_drops_the_rest() -> None:
    tracker = HeartbeatTracker()
    assert tracker.observe(_beat(NODE, 10), received_ns=100)
    assert not tracker.observe(_beat(NODE, 10), received_ns=200)  # replayed
    assert not tracker.observe(_beat(NODE, 5), received_ns=200)  # older
    assert not tracker.observe(msgspec.structs.replace(_beat(NODE, 20), gpus_busy=2), received_ns=1)
    assert tracker.dropped == 3
    seen = tracker.get_last(NODE.id)
    assert seen is not None and (seen.beat.sent_at_ns, seen.received_ns) == (10, 100)
    assert tracker.is_alive(NODE.id, now_ns=150, max_age_ns=50)
    assert not tracker.is_alive(NODE.id, now_ns=151, max_age_ns=50)
    assert not tracker.is_alive(OTHER.id, now_ns=0, max_age_ns=10**18)


def test_the_tracker_forgets_the_oldest_heard_node_past_its_bound() -> None:
    tracker = HeartbeatTracker(nodes_max=1)
    tracker.observe(_beat(NODE, 1), received_ns=1)
    tracker.observe(_beat(OTHER, 1), received_ns=2)
    assert tracker.get_last(NODE.id) is None and tracker.get_last(OTHER.id) is not None


async def test_the_daemon_keeps_the_signed_beats_it_hears(tmp_path: Path) -> None:
    """What the validator process feeds from ``flop.hb.*``: a signed beat is kept, a forged
    one (another key's signature) is not."""
    node, stranger = Identity.from_seed(bytes([41]) * 32), Identity.from_seed(bytes([42]) * 32)
    daemon = ValidatorDaemon(
        identity=stranger,
        bls_secret=1,
        ledger=_NoLedger(),
        artifacts=NoArtifacts(),
        db=SigningDatabase(tmp_path / "v.db"),
        clock_ns=lambda: 5_000,
    )
    honest = _beat(node, 1_000)
    theirs = _beat(stranger, 2_000)  # a newer beat, signed by another key, renamed to the node
    forged = msgspec.structs.replace(theirs, node_id=node.id, region=honest.region)

    async def beats() -> AsyncIterator[NodeHeartbeat]:
        for beat in (honest, forged):
            yield beat

    await daemon.follow_heartbeats(beats())
    seen = daemon.heartbeats.get_last(node.id)
    assert seen is not None and seen.beat.sent_at_ns == 1_000 and seen.received_ns == 5_000


class _NoLedger:
    async def send(self, command: object) -> None:
        raise AssertionError("no command expected")

"""Live signals on core NATS, where no durable log is needed: job offers and heartbeats.

Core NATS is at-most-once: a subscriber that is away misses signals, which is fine for
offers (the job stays in the ledger; claims go through the API, first valid claim wins)
and for heartbeats (the next one follows). Messages are msgspec JSON, parsed once here;
a malformed message is logged and skipped.

Heartbeats are signed by the node (issue 15): Ed25519 by the node's key (its id) over
``HEARTBEAT_TAG`` and every other field, ``sent_at_ns`` included (``sign_heartbeat``), so a
beat cannot be forged for another node or re-dated. Subscribers drop unsigned and wrongly
signed beats (``is_heartbeat_signed``) and beats published on another node's subject.

| subject                 | payload           | publisher     | subscribers           |
|-------------------------|-------------------|---------------|-----------------------|
| ``flop.offer.<region>`` | ``JobOffer``      | API/scheduler | node agents in region |
| ``flop.hb.<node id>``   | ``NodeHeartbeat`` | node agents   | scheduler, monitoring |
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client

from adapters.nats.codec import compute_subject_token
from adapters.nats.connection import nats_errors
from proofs.identity import Identity, verify_signature

OFFER_SUBJECT_PREFIX = "flop.offer"
HEARTBEAT_SUBJECT_PREFIX = "flop.hb"
SIGNAL_PENDING_MSGS_MAX = 10_000
ALL_TOKENS = "*"
HEARTBEAT_TAG = b"flopledger/heartbeat/v1"

_log = structlog.get_logger("flopledger.nats.signals")

SignalT = TypeVar("SignalT", bound=msgspec.Struct)


class JobOffer(msgspec.Struct, frozen=True, kw_only=True):
    """A job open for claiming in a region (the ledger holds the job; this is the nudge)."""

    job_id: str
    region: str
    workload_kind: str
    max_price_base_units: int
    redundancy: int
    deadline_ns: int
    offered_at_ns: int


class NodeHeartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """A node saying it is alive, where, and how busy; signed by the node's key."""

    node_id: str
    region: str
    sent_at_ns: int
    gpus_total: int
    gpus_busy: int
    signature: bytes = b""
    """Ed25519 by ``node_id`` over ``compute_heartbeat_message`` (empty: unsigned, dropped)."""


def compute_heartbeat_message(beat: NodeHeartbeat) -> bytes:
    """What a heartbeat's signature covers: the tag and every field but the signature, as
    canonical JSON (sorted keys)."""
    fields = msgspec.to_builtins(beat)
    fields.pop("signature", None)
    return HEARTBEAT_TAG + msgspec.json.encode(fields, order="sorted")


def sign_heartbeat(identity: Identity, beat: NodeHeartbeat) -> NodeHeartbeat:
    """``beat`` signed by ``identity`` (which must be the node it names)."""
    if beat.node_id != identity.id:
        raise ValueError(f"{identity.id} cannot sign a heartbeat of {beat.node_id}")
    unsigned = msgspec.structs.replace(beat, signature=b"")
    signature = identity.sign(compute_heartbeat_message(unsigned))
    return msgspec.structs.replace(beat, signature=signature)


def is_heartbeat_signed(beat: NodeHeartbeat) -> bool:
    """Whether the beat carries a valid signature by the node it names."""
    return bool(beat.signature) and verify_signature(
        beat.node_id, compute_heartbeat_message(beat), beat.signature
    )


def compute_offer_subject(region: str | None) -> str:
    """``flop.offer.<region>``; ``None`` gives the wildcard for every region."""
    token = ALL_TOKENS if region is None else compute_subject_token(region)
    return f"{OFFER_SUBJECT_PREFIX}.{token}"


def compute_heartbeat_subject(node_id: str | None) -> str:
    """``flop.hb.<node id>``; ``None`` gives the wildcard for every node."""
    token = ALL_TOKENS if node_id is None else compute_subject_token(node_id)
    return f"{HEARTBEAT_SUBJECT_PREFIX}.{token}"


async def publish_offer(nc: Client, offer: JobOffer) -> None:
    subject = compute_offer_subject(offer.region)
    async with nats_errors(nc, f"publish {subject}"):
        await nc.publish(subject, msgspec.json.encode(offer))


async def publish_heartbeat(nc: Client, heartbeat: NodeHeartbeat) -> None:
    subject = compute_heartbeat_subject(heartbeat.node_id)
    async with nats_errors(nc, f"publish {subject}"):
        await nc.publish(subject, msgspec.json.encode(heartbeat))


def subscribe_offers(nc: Client, region: str | None = None) -> AsyncIterator[JobOffer]:
    """Offers for ``region`` (every region when None), as they come."""
    return _subscribe(nc, compute_offer_subject(region), JobOffer)


def subscribe_heartbeats(nc: Client, node_id: str | None = None) -> AsyncIterator[NodeHeartbeat]:
    """Signed heartbeats of ``node_id`` (every node when None), as they come; unsigned or
    wrongly signed beats, and beats on another node's subject, are logged and dropped."""
    return _subscribe(
        nc, compute_heartbeat_subject(node_id), NodeHeartbeat, check=_is_heartbeat_accepted
    )


def _is_heartbeat_accepted(subject: str, beat: NodeHeartbeat) -> bool:
    if subject != compute_heartbeat_subject(beat.node_id):
        return False
    return is_heartbeat_signed(beat)


async def _subscribe(
    nc: Client,
    subject: str,
    kind: type[SignalT],
    *,
    check: Callable[[str, SignalT], bool] | None = None,
) -> AsyncIterator[SignalT]:
    decoder = msgspec.json.Decoder(kind)
    async with nats_errors(nc, f"subscribe {subject}"):
        subscription = await nc.subscribe(subject, pending_msgs_limit=SIGNAL_PENDING_MSGS_MAX)
        await nc.flush()
    try:
        async for msg in subscription.messages:
            try:
                signal = decoder.decode(msg.data)
            except msgspec.DecodeError as exc:
                _log.warning("signal_malformed", subject=msg.subject, error=str(exc))
                continue
            if check is not None and not check(msg.subject, signal):
                _log.warning("signal_unsigned_or_forged", subject=msg.subject)
                continue
            yield signal
    finally:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()

"""The FLOP_EVENTS stream: its configuration and a look at its tail.

File storage, delete and purge denied, no age, size or count limit by default, replicas
configurable (1 embedded, 3 for a cluster). ``Nats-Msg-Id`` deduplication keeps a window
of ``DEDUP_WINDOW_S``; the expected-last-sequence check does the rest (see relay.py).
"""

from __future__ import annotations

import msgspec
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from adapters.nats.codec import EVENT_STREAM, EVENT_SUBJECTS, decode_header_hash
from adapters.nats.connection import describe_server, nats_errors
from adapters.nats.errors import NatsError

DEFAULT_REPLICAS = 1
CLUSTER_REPLICAS = 3
DEDUP_WINDOW_S = 120.0
NO_LIMIT = -1
ERR_STREAM_NAME_IN_USE = 10058


class StreamTail(msgspec.Struct, frozen=True):
    """The stream's last sequence and the record hash its last message carries (None if empty)."""

    last_sequence: int
    last_hash: bytes | None


def build_event_stream_config(
    replicas: int = DEFAULT_REPLICAS,
    *,
    max_age_s: float | None = None,
    max_bytes: int = NO_LIMIT,
    name: str = EVENT_STREAM,
    subjects: tuple[str, ...] = (EVENT_SUBJECTS,),
) -> StreamConfig:
    """The stream config the relay creates: file storage, deny delete and purge, no limits."""
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    return StreamConfig(
        name=name,
        description="flopledger global event log mirror: sequence N is position N",
        subjects=list(subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_msgs=NO_LIMIT,
        max_bytes=max_bytes,
        max_age=max_age_s or 0,
        discard=DiscardPolicy.NEW,
        duplicate_window=DEDUP_WINDOW_S,
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
    )


async def ensure_event_stream(nc: Client, js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or check that the existing one still denies delete and purge."""
    assert config.name is not None
    try:
        await js.add_stream(config)
        return
    except nats.js.errors.APIError as exc:
        if exc.err_code != ERR_STREAM_NAME_IN_USE:
            raise NatsError(describe_server(nc), f"create stream {config.name}", str(exc)) from exc
    async with nats_errors(nc, f"stream info {config.name}"):
        info = await js.stream_info(config.name)
    existing = info.config
    if not (existing.deny_delete and existing.deny_purge):
        raise NatsError(
            describe_server(nc),
            f"check stream {config.name}",
            "the existing stream allows delete or purge; the mirror must be append-only",
        )


async def get_stream_tail(
    nc: Client, js: JetStreamContext, stream: str = EVENT_STREAM
) -> StreamTail:
    """The last sequence and the hash header of the last message."""
    async with nats_errors(nc, f"stream info {stream}"):
        info = await js.stream_info(stream)
    last = info.state.last_seq
    if last == 0:
        return StreamTail(last_sequence=0, last_hash=None)
    async with nats_errors(nc, f"get message {stream}#{last}"):
        message = await js.get_msg(stream, last)
    return StreamTail(last_sequence=last, last_hash=decode_header_hash(message.headers))

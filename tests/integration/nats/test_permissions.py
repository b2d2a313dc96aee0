"""NATS permissions on a real nats-server (issue 16, item 6): every forbidden publish,
subscription, rewrite and delete is refused by the server, and each role can still do its job.

Each refusal is observed twice: the server reports a permissions violation to the client,
and the state it would have changed (the stream, the object, what a subscriber receives)
is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from adapters.nats.codec import EVENT_STREAM
from adapters.nats.objects import (
    OBJECT_STREAM,
    ArtifactStore,
    compute_chunk_subject,
    compute_manifest_subject,
    compute_upload_chunk_subject,
    compute_uploader_subject,
)
from adapters.nats.permissions import NatsUser, Role
from adapters.nats.probe import NatsProbeTransport, serve_probes
from adapters.nats.server import EmbeddedNatsServer
from adapters.nats.signals import (
    JobOffer,
    NodeHeartbeat,
    compute_heartbeat_subject,
    compute_offer_subject,
    publish_offer,
)
from adapters.nats.stream import build_event_stream_config, ensure_event_stream
from proofs.identity import Identity

JS_TIMEOUT_S = 0.5
ARRIVAL_TIMEOUT_S = 2.0
QUIET_S = 0.3
"""How long a subscriber listens for a message that must not come (absence, not timing)."""


@dataclass
class Cast:
    server: EmbeddedNatsServer
    operator: NatsUser
    relay: NatsUser
    offers: NatsUser
    api: NatsUser
    validator: NatsUser
    auditor: NatsUser
    node_a: NatsUser
    node_b: NatsUser


@dataclass
class Login:
    nc: Client
    errors: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]


@pytest.fixture
def cast(tmp_path: Path) -> Iterator[Cast]:
    node_a, node_b = Identity.generate(), Identity.generate()
    users = Cast(
        server=None,  # type: ignore[arg-type]
        operator=NatsUser("operator", frozenset({Role.OPERATOR})),
        relay=NatsUser("relay", frozenset({Role.RELAY})),
        offers=NatsUser("offers", frozenset({Role.OFFERS})),
        api=NatsUser("api", frozenset({Role.API})),
        validator=NatsUser("validator", frozenset({Role.VALIDATOR})),
        auditor=NatsUser("auditor", frozenset({Role.AUDITOR})),
        node_a=NatsUser(node_a.id, frozenset({Role.NODE})),
        node_b=NatsUser(node_b.id, frozenset({Role.NODE})),
    )
    everyone = [v for k, v in vars(users).items() if k != "server"]
    server = EmbeddedNatsServer(tmp_path / "nats", users=everyone)
    server.start()
    users.server = server
    try:
        yield users
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def login(cast: Cast, user: NatsUser) -> AsyncIterator[Login]:
    session = Login(nc=Client())

    async def on_error(exc: Exception) -> None:
        session.errors.append(str(exc))

    await session.nc.connect(
        servers=[user.compute_url(cast.server.url)], error_cb=on_error, allow_reconnect=False
    )
    try:
        yield session
    finally:
        await session.nc.close()


@pytest.fixture
async def streams(cast: Cast) -> None:
    """The operator makes the object stream, the relay the event stream (as deployed)."""
    async with login(cast, cast.operator) as operator:
        await ArtifactStore.open(operator.nc)
    async with login(cast, cast.relay) as relay:
        js = relay.nc.jetstream(timeout=JS_TIMEOUT_S)
        await ensure_event_stream(relay.nc, js, build_event_stream_config())


async def count_messages(cast: Cast, stream: str) -> int:
    async with login(cast, cast.operator) as operator:
        info = await operator.nc.jetstream().stream_info(stream)
        return info.state.messages


async def publish_refused(session: Login, subject: str, payload: bytes = b"x") -> None:
    before = len(session.violations)
    await session.nc.publish(subject, payload)
    await session.nc.flush()
    await wait_for_violation(session, before)


async def wait_for_violation(session: Login, before: int) -> None:
    """Wait (bounded) until the server has reported one more permissions violation."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ARRIVAL_TIMEOUT_S
    while len(session.violations) <= before and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert len(session.violations) == before + 1, session.errors


async def test_a_wrong_secret_cannot_connect(cast: Cast) -> None:
    impostor = NatsUser(cast.node_a.name, cast.node_a.roles)  # a fresh, wrong secret
    with pytest.raises(nats.errors.Error):
        await nats.connect(
            impostor.compute_url(cast.server.url), allow_reconnect=False, max_reconnect_attempts=0
        )


async def test_only_the_relay_publishes_events(cast: Cast, streams: None) -> None:
    for user in (cast.node_a, cast.api, cast.validator, cast.offers, cast.operator):
        async with login(cast, user) as session:
            await publish_refused(session, "flop.ev.job.JobSubmitted", b"{}")
    assert await count_messages(cast, EVENT_STREAM) == 0
    async with login(cast, cast.relay) as relay:
        await relay.nc.jetstream().publish("flop.ev.job.JobSubmitted", b"{}")
    assert await count_messages(cast, EVENT_STREAM) == 1


async def test_only_the_operator_publishes_offers(cast: Cast) -> None:
    offer = JobOffer(
        job_id="job-1",
        region="eu",
        workload_kind="matmul",
        max_price_base_units=5,
        redundancy=1,
        deadline_ns=1,
        offered_at_ns=1,
    )
    async with login(cast, cast.node_b) as listener:
        subscription = await listener.nc.subscribe(compute_offer_subject(None))
        await listener.nc.flush()
        for user in (cast.node_a, cast.api, cast.validator, cast.relay):
            async with login(cast, user) as session:
                await publish_refused(session, compute_offer_subject("eu"), b"{}")
        with pytest.raises(nats.errors.TimeoutError):
            await subscription.next_msg(timeout=QUIET_S)
        async with login(cast, cast.offers) as announcer:
            await publish_offer(announcer.nc, offer)
            await announcer.nc.flush()
        message = await subscription.next_msg(timeout=ARRIVAL_TIMEOUT_S)
        assert msgspec.json.decode(message.data, type=JobOffer) == offer


async def test_a_node_publishes_only_its_own_heartbeats(cast: Cast) -> None:
    beat = msgspec.json.encode(
        NodeHeartbeat(
            node_id=cast.node_b.name, region="eu", sent_at_ns=1, gpus_total=1, gpus_busy=0
        )
    )
    async with login(cast, cast.validator) as watcher:
        subscription = await watcher.nc.subscribe(compute_heartbeat_subject(None))
        await watcher.nc.flush()
        async with login(cast, cast.node_a) as node_a:
            await publish_refused(node_a, compute_heartbeat_subject(cast.node_b.name), beat)
            with pytest.raises(nats.errors.TimeoutError):
                await subscription.next_msg(timeout=QUIET_S)
            await node_a.nc.publish(compute_heartbeat_subject(cast.node_a.name), beat)
            await node_a.nc.flush()
        message = await subscription.next_msg(timeout=ARRIVAL_TIMEOUT_S)
        assert message.subject == compute_heartbeat_subject(cast.node_a.name)


async def test_a_node_answers_only_its_own_probes(cast: Cast) -> None:
    async def echo(data: bytes) -> bytes:
        return b"answer:" + data

    async with login(cast, cast.node_a) as node_a, login(cast, cast.validator) as validator:
        before = len(node_a.violations)
        # Subscribing to another node's probes is refused ...
        await node_a.nc.subscribe(f"flop.probe.{cast.node_b.name}")
        await node_a.nc.flush()
        await wait_for_violation(node_a, before)
        transport = NatsProbeTransport(validator.nc)
        assert await transport.request(cast.node_b.name, b"ping", JS_TIMEOUT_S) is None
        # ... its own are answered, and a node cannot publish on the probe subjects.
        await serve_probes(node_a.nc, cast.node_a.name, echo)
        assert await transport.request(cast.node_a.name, b"ping", 5.0) == b"answer:ping"
        await publish_refused(node_a, f"flop.probe.{cast.node_b.name}")


async def test_objects_are_added_never_rewritten_or_deleted_but_by_the_operator(
    cast: Cast, streams: None
) -> None:
    async with login(cast, cast.node_a) as node_a:
        store = await ArtifactStore.open(node_a.nc)
        digest = await store.put(b"result of node a" * 100)
    stored = await count_messages(cast, OBJECT_STREAM)
    refused = nats.errors.TimeoutError
    for user in (cast.node_b, cast.api, cast.validator, cast.relay):
        async with login(cast, user) as session:
            js = session.nc.jetstream(timeout=JS_TIMEOUT_S)
            with pytest.raises(refused):
                await js.purge_stream(OBJECT_STREAM, subject=compute_manifest_subject(digest))
            with pytest.raises(refused):
                await js.delete_msg(OBJECT_STREAM, 1)
            with pytest.raises(refused):
                await js.delete_stream(OBJECT_STREAM)
            with pytest.raises(refused):
                info = await session.nc.jetstream().stream_info(OBJECT_STREAM)
                await js.update_stream(info.config)
            assert len(session.violations) >= 3, (user.name, session.errors)
    async with login(cast, cast.node_b) as node_b:
        js = node_b.nc.jetstream(timeout=JS_TIMEOUT_S)
        with pytest.raises(nats.js.errors.APIError, match="maximum messages per subject"):
            await js.publish(compute_chunk_subject(digest, 0), b"forged", stream=OBJECT_STREAM)
        assert await (await ArtifactStore.open(node_b.nc)).get(digest) == b"result of node a" * 100
    assert await count_messages(cast, OBJECT_STREAM) == stored
    async with login(cast, cast.operator) as operator:
        store = await ArtifactStore.open(operator.nc)
        await store.delete(digest)
        assert not await store.has(digest)


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 100_000):
        yield data[start : start + 100_000]


async def test_streamed_uploads_are_added_by_api_and_nodes_never_rewritten_or_deleted(
    cast: Cast, streams: None
) -> None:
    data = b"a consumer's matrix " * 20_000  # four upload chunks
    uploads: dict[str, str] = {}
    messages = 0
    for writer in (cast.api, cast.node_a):
        async with login(cast, writer) as session:
            store = await ArtifactStore.open(session.nc)
            info = await store.put_stream(_pieces(data + writer.name.encode()), encrypted=True)
            manifest = await session.nc.jetstream().get_last_msg(
                OBJECT_STREAM, compute_manifest_subject(info.digest)
            )
            fields = msgspec.json.decode(manifest.data)
            uploads[info.digest] = fields["upload"]
            messages += fields["chunks"] + 1
            assert not session.violations, session.errors
    stored = await count_messages(cast, OBJECT_STREAM)
    refused = nats.errors.TimeoutError
    for user in (cast.api, cast.node_a, cast.node_b, cast.validator):
        async with login(cast, user) as session:
            js = session.nc.jetstream(timeout=JS_TIMEOUT_S)
            for upload in uploads.values():
                with pytest.raises(refused):
                    await js.purge_stream(OBJECT_STREAM, subject=f"flop.obj.u.{upload}.*")
                if Role.VALIDATOR in user.roles:
                    await publish_refused(session, compute_upload_chunk_subject(upload, 0))
                else:
                    with pytest.raises(nats.js.errors.APIError, match="maximum messages"):
                        await js.publish(
                            compute_upload_chunk_subject(upload, 0), b"forged", stream=OBJECT_STREAM
                        )
            assert session.violations, (user.name, session.errors)
    assert await count_messages(cast, OBJECT_STREAM) == stored
    async with login(cast, cast.auditor) as auditor:
        store = await ArtifactStore.open(auditor.nc)
        for digest in uploads:
            assert b"".join([chunk async for chunk in store.get_stream(digest)]).startswith(data)
    async with login(cast, cast.operator) as operator:
        store = await ArtifactStore.open(operator.nc)
        for digest in uploads:
            await store.delete(digest)
    assert await count_messages(cast, OBJECT_STREAM) == stored - messages


async def test_only_the_api_notes_who_uploaded_an_object(cast: Cast, streams: None) -> None:
    async with login(cast, cast.api) as api:
        store = await ArtifactStore.open(api.nc)
        info = await store.put_stream(_pieces(b"a consumer's input"))
        await store.mark_uploader(info.digest, cast.node_b.name)
        assert not api.violations, api.errors
    for user in (cast.node_a, cast.validator, cast.auditor):
        async with login(cast, user) as session:
            subject = compute_uploader_subject(info.digest, user.name)
            await publish_refused(session, subject)
            store = await ArtifactStore.open(session.nc)
            assert not await store.has_uploader(info.digest, user.name)
            assert await store.has_uploader(info.digest, cast.node_b.name)


async def test_objects_are_read_only_by_the_roles_that_need_them(cast: Cast, streams: None) -> None:
    async with login(cast, cast.api) as api:
        digest = await (await ArtifactStore.open(api.nc)).put(b"a consumer's zkey")
    for reader in (cast.validator, cast.auditor, cast.node_b):
        async with login(cast, reader) as session:
            store = await ArtifactStore.open(session.nc)
            assert await store.get(digest) == b"a consumer's zkey"
    for writer in (cast.validator, cast.auditor):
        async with login(cast, writer) as session:
            await publish_refused(session, compute_manifest_subject("0" * 64), b"{}")
    async with login(cast, cast.offers) as offers:
        js = offers.nc.jetstream(timeout=JS_TIMEOUT_S)
        with pytest.raises(nats.errors.TimeoutError):
            await js.get_last_msg(OBJECT_STREAM, compute_manifest_subject(digest))
        assert offers.violations

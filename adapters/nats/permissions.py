"""Who may publish and subscribe to what on NATS (issue 16, item 6): roles, users, config.

Every subject in use is granted by role, by allow lists (what a list does not name is denied):

| role        | publishes                                   | subscribes / reads               |
|-------------|---------------------------------------------|----------------------------------|
| ``relay``   | ``flop.ev.>``, the relay's leader lock      | the event stream                 |
| ``offers``  | ``flop.offer.>`` (the operator's announcer) | the event stream                 |
| ``node``    | ``flop.hb.<own id>``, answers to probes of  | ``flop.offer.>``,                |
|             | ``flop.probe.<own id>``, objects (add only) | ``flop.probe.<own id>``, objects |
| ``api``     | objects (add only: consumer uploads), the   | the event stream, objects        |
|             | uploader notes ``flop.obj.w.>``             |                                  |
| ``validator``| probe requests ``flop.probe.*``             | events, heartbeats, objects      |
| ``auditor`` | nothing                                     | events, objects                  |
| ``operator``| everything but ``flop.ev.>`` (creates       | everything                       |
|             | streams, deletes objects)                   |                                  |

Objects live in the write-once ``FLOP_OBJECTS`` stream (``adapters.nats.objects``), so
"add only" is the server's own rule, for the chunks of a streamed upload
(``flop.obj.u.<upload>.<i>``, issue 17) as for the chunks and manifests under a digest;
purging (deleting) an object and creating, changing or deleting any stream are JetStream
API calls only the operator is granted. A user may
hold several roles (``flopledger relay --offers`` also announces offers). Users
authenticate with a name and a secret; ``render_server_config`` writes the nats-server
``authorization`` block (``flopledger.devnet.nats_users``: the devnet's users).
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from adapters.nats.codec import EVENT_STREAM, EVENT_SUBJECTS, compute_subject_token
from adapters.nats.leader import LOCK_BUCKET
from adapters.nats.objects import (
    OBJECT_CHUNK_PREFIX,
    OBJECT_MANIFEST_PREFIX,
    OBJECT_STREAM,
    OBJECT_UPLOAD_PREFIX,
    OBJECT_UPLOADER_PREFIX,
)
from adapters.nats.signals import HEARTBEAT_SUBJECT_PREFIX, OFFER_SUBJECT_PREFIX
from proofs.probe_wire import PROBE_SUBJECT_PREFIX

INBOX_SUBJECTS = "_INBOX.>"
SECRET_BYTES = 24
_JS = "$JS.API"


class Role(enum.StrEnum):
    OPERATOR = "operator"
    RELAY = "relay"
    OFFERS = "offers"
    NODE = "node"
    API = "api"
    VALIDATOR = "validator"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Grants:
    """Subjects a user may publish to and subscribe to; ``responses`` lets it answer the
    requests it received (and nothing else) without a publish grant on ``_INBOX``."""

    publish: frozenset[str] = frozenset()
    subscribe: frozenset[str] = frozenset()
    responses: bool = False
    publish_denied: frozenset[str] = frozenset()
    """Subjects refused even where ``publish`` allows them (a deny wins in nats-server)."""

    def __or__(self, other: Grants) -> Grants:
        return Grants(
            self.publish | other.publish,
            self.subscribe | other.subscribe,
            self.responses or other.responses,
            self.publish_denied | other.publish_denied,
        )


@dataclass(frozen=True)
class NatsUser:
    """One NATS login: a name (a node's is its id), its secret and roles."""

    name: str
    roles: frozenset[Role]
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(SECRET_BYTES), repr=False)

    def compute_url(self, server_url: str) -> str:
        """``nats://name:secret@host:port`` for each server of a comma-separated list."""
        parts = []
        for url in server_url.split(","):
            scheme, _, rest = url.strip().partition("://")
            parts.append(f"{scheme}://{self.name}:{self.secret}@{rest.rpartition('@')[2]}")
        return ",".join(parts)


def compute_stream_read_grants(stream: str) -> Grants:
    """Read a stream: its info, single messages, ordered and durable consumers, acks."""
    return Grants(
        publish=frozenset(
            {
                f"{_JS}.INFO",
                f"{_JS}.STREAM.INFO.{stream}",
                f"{_JS}.STREAM.MSG.GET.{stream}",
                f"{_JS}.DIRECT.GET.{stream}",
                f"{_JS}.DIRECT.GET.{stream}.>",
                f"{_JS}.CONSUMER.CREATE.{stream}",
                f"{_JS}.CONSUMER.CREATE.{stream}.>",
                f"{_JS}.CONSUMER.DURABLE.CREATE.{stream}.>",
                f"{_JS}.CONSUMER.INFO.{stream}.>",
                f"{_JS}.CONSUMER.MSG.NEXT.{stream}.>",
                f"{_JS}.CONSUMER.DELETE.{stream}.>",
                f"$JS.ACK.{stream}.>",
                f"$JS.FC.{stream}.>",
            }
        ),
        subscribe=frozenset({INBOX_SUBJECTS}),
    )


def compute_object_grants(*, add: bool) -> Grants:
    """Read objects; with ``add``, also write new ones: chunks under a digest or an upload
    id, and manifests (the stream refuses a rewrite; purging is not granted)."""
    read = Grants(
        publish=frozenset(
            {
                f"{_JS}.INFO",
                f"{_JS}.STREAM.INFO.{OBJECT_STREAM}",
                f"{_JS}.STREAM.MSG.GET.{OBJECT_STREAM}",
            }
        ),
        subscribe=frozenset({INBOX_SUBJECTS}),
    )
    writes = frozenset(
        f"{prefix}.>"
        for prefix in (OBJECT_CHUNK_PREFIX, OBJECT_MANIFEST_PREFIX, OBJECT_UPLOAD_PREFIX)
    )
    return read | Grants(publish=writes) if add else read


def compute_grants(roles: Iterable[Role], *, node_id: str | None = None) -> Grants:
    """The union of what each role may do (``node_id`` names the node of a ``node`` role)."""
    grants = Grants()
    for role in roles:
        grants = grants | _compute_role_grants(role, node_id)
    return grants


def render_server_config(users: Iterable[NatsUser]) -> str:
    """The nats-server ``authorization`` block granting each user its roles' subjects."""
    entries = []
    for user in users:
        grants = compute_grants(user.roles, node_id=user.name)
        publish: dict[str, list[str]] = {"allow": sorted(grants.publish)}
        if grants.publish_denied:
            publish["deny"] = sorted(grants.publish_denied)
        permissions: dict[str, object] = {
            "publish": publish,
            "subscribe": {"allow": sorted(grants.subscribe)},
        }
        if grants.responses:
            permissions["allow_responses"] = True
        entries.append({"user": user.name, "password": user.secret, "permissions": permissions})
    # nats-server reads JSON as its config syntax.
    return "authorization {\n  users = " + json.dumps(entries, indent=2) + "\n}\n"


def _compute_role_grants(role: Role, node_id: str | None) -> Grants:
    events = compute_stream_read_grants(EVENT_STREAM)
    if role == Role.OPERATOR:
        # Everything but the mirror, which the relay alone writes from the store.
        return Grants(
            publish=frozenset({">"}),
            subscribe=frozenset({">"}),
            publish_denied=frozenset({EVENT_SUBJECTS}),
        )
    if role == Role.RELAY:
        return events | _relay_grants()
    if role == Role.OFFERS:
        return events | Grants(publish=frozenset({f"{OFFER_SUBJECT_PREFIX}.>"}))
    if role == Role.API:
        # The API alone notes who sent an object's bytes (a plaintext read's uploader rule).
        uploaders = Grants(publish=frozenset({f"{OBJECT_UPLOADER_PREFIX}.>"}))
        return events | compute_object_grants(add=True) | uploaders
    if role == Role.VALIDATOR:
        return (
            events
            | compute_object_grants(add=False)
            | Grants(
                publish=frozenset({f"{PROBE_SUBJECT_PREFIX}.*"}),
                subscribe=frozenset({f"{HEARTBEAT_SUBJECT_PREFIX}.*"}),
            )
        )
    if role == Role.AUDITOR:
        return events | compute_object_grants(add=False)
    if role == Role.NODE:
        if not node_id:
            raise ValueError("a node role needs the node's id")
        token = compute_subject_token(node_id)
        return compute_object_grants(add=True) | Grants(
            publish=frozenset({f"{HEARTBEAT_SUBJECT_PREFIX}.{token}"}),
            subscribe=frozenset({f"{OFFER_SUBJECT_PREFIX}.>", f"{PROBE_SUBJECT_PREFIX}.{token}"}),
            responses=True,
        )
    raise ValueError(f"unknown role {role!r}")


def _relay_grants() -> Grants:
    """Publish the mirror, keep the event stream's config, hold the leader lock."""
    kv_stream = f"KV_{LOCK_BUCKET}"
    return Grants(
        publish=frozenset(
            {
                EVENT_SUBJECTS,
                f"{_JS}.STREAM.CREATE.{EVENT_STREAM}",
                f"{_JS}.STREAM.UPDATE.{EVENT_STREAM}",
                f"$KV.{LOCK_BUCKET}.>",
                f"{_JS}.STREAM.INFO.{kv_stream}",
                f"{_JS}.STREAM.CREATE.{kv_stream}",
                f"{_JS}.STREAM.MSG.GET.{kv_stream}",
                f"{_JS}.DIRECT.GET.{kv_stream}.>",
            }
        ),
        subscribe=frozenset({INBOX_SUBJECTS}),
    )

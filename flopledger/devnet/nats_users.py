"""The devnet's NATS logins: one user per process, each granted its role's subjects only.

At every launch each process gets a fresh user with a fresh secret (``NatsUser``:
``secrets.token_urlsafe``), by the roles of ``adapters.nats.permissions`` (issue 16, item 6):

| process                   | user                  | roles       |
|---------------------------|-----------------------|-------------|
| the launcher itself       | ``admin``             | operator    |
| ``relay``                 | ``relay``             | relay       |
| ``api``                   | ``api``               | api         |
| ``operator`` (offers)     | ``offers``            | offers      |
| ``validator-N``           | ``validator-N``       | validator   |
| ``agent-...``             | the node's id         | node        |
| the final audit           | ``auditor``           | auditor     |

The server's ``authorization`` block goes to ``<root>/nats/nats-server.conf``, readable by
the owner alone, passed with ``-c``; a child's URL with its secret
(``nats://user:secret@host:port``) reaches it in ``FLOP_NATS_URL`` in its environment, never
in its argv (``ps`` and ``status.json`` show argv; ``/proc/<pid>/environ`` is the owner's).
The launcher keeps the ``admin`` login to create the write-once object stream before any
other process starts: only the operator role may create streams.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.objects import ArtifactStore
from adapters.nats.permissions import NatsUser, Role, render_server_config

CONFIG_FILE = "nats-server.conf"
CONFIG_MODE = 0o600
ADMIN = "admin"
AUDITOR = "auditor"


@dataclass(frozen=True)
class DevnetNatsUsers:
    """Every login of one devnet launch, by the name of the process that holds it."""

    by_process: Mapping[str, NatsUser]

    @property
    def users(self) -> tuple[NatsUser, ...]:
        return tuple(self.by_process.values())

    def get_user(self, process: str) -> NatsUser:
        """The login of ``process`` (KeyError for a process that has none)."""
        return self.by_process[process]


def create_devnet_users(
    node_ids: Mapping[str, str], validators: tuple[str, ...]
) -> DevnetNatsUsers:
    """Fresh users: ``node_ids`` maps each agent's process name to its node id (its user)."""
    by_process = {
        ADMIN: NatsUser(ADMIN, frozenset({Role.OPERATOR})),
        "relay": NatsUser("relay", frozenset({Role.RELAY})),
        "api": NatsUser("api", frozenset({Role.API})),
        "operator": NatsUser("offers", frozenset({Role.OFFERS})),
        AUDITOR: NatsUser(AUDITOR, frozenset({Role.AUDITOR})),
    }
    by_process |= {name: NatsUser(name, frozenset({Role.VALIDATOR})) for name in validators}
    by_process |= {
        name: NatsUser(node_id, frozenset({Role.NODE})) for name, node_id in node_ids.items()
    }
    return DevnetNatsUsers(by_process)


def write_server_config(directory: Path, users: DevnetNatsUsers) -> Path:
    """Write the server's users and permissions, readable by the owner alone."""
    path = directory / CONFIG_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CONFIG_MODE)
    os.fchmod(descriptor, CONFIG_MODE)  # a file left by an earlier launch keeps its mode
    with os.fdopen(descriptor, "w") as handle:
        handle.write(render_server_config(users.users))
    return path


def provision_streams(server_url: str, users: DevnetNatsUsers) -> None:
    """Create the write-once object stream as the operator (the event stream is the
    relay's to create)."""

    async def provision() -> None:
        nc = await connect_nats(users.get_user(ADMIN).compute_url(server_url), name="devnet")
        try:
            await ArtifactStore.open(nc)
        finally:
            await close_nats(nc)

    asyncio.run(provision())

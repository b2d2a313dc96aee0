"""Validator daemons against the in-process ledger (``LocalNetwork``): the ledger link that
signs and executes their commands, artifact sources (one in memory, one that must not be
read), and the log they follow."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from adapters.nats.errors import ArtifactNotFound
from domain.commands import Command, command_kind, encode_command_body
from domain.errors import Rejection
from domain.records import Record
from flopledger.network import LocalNetwork
from proofs.identity import Identity
from validator.refusal import CommandRefused


class InProcessLedgerLink:
    """A validator's commands, signed by ``identity`` and executed by the ledger; a refusal
    is the daemon's ``CommandRefused``."""

    def __init__(self, net: LocalNetwork, identity: Identity) -> None:
        self.net, self.identity = net, identity

    async def send(self, command: Command) -> None:
        try:
            await self.net.run(self.identity, command_kind(command), encode_command_body(command))
        except Rejection as rejection:
            raise CommandRefused(rejection.code) from rejection


class DictArtifacts:
    """Artifacts in memory by their SHA-256 (the store's digest)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, data: bytes) -> bytes:
        self.objects[hashlib.sha256(data).hexdigest()] = data
        return hashlib.sha256(data).digest()

    async def get(self, digest: str) -> bytes:
        if digest not in self.objects:
            raise ArtifactNotFound(digest)
        return self.objects[digest]


class NoArtifacts:
    """For daemons whose duties read no artifact (timed attestations, liveness)."""

    async def get(self, digest: str) -> bytes:
        raise AssertionError(f"no artifact expected, asked for {digest}")


async def follow_records(net: LocalNetwork, after: int) -> AsyncIterator[Record]:
    """The ledger's records after position ``after``, as the NATS mirror would give them."""
    for record in await net.store.read_all(after + 1, 10_000):
        yield record

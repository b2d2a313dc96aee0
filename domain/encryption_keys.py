"""Registered encryption keys (issue 17, item 2; rules v5): each actor's X25519 public key.

An actor records the key others wrap job keys to with ``key.register``, signed by its own
Ed25519 identity: the envelope's signature is what binds the key to the actor, so no one can
register a key in another's name. A later register rotates the key (a new event, the old one
kept in the history); a release names the key it wrapped to, and the ledger refuses a release
to any key but the one in force (``domain.key_releases``).
"""

from __future__ import annotations

from typing import ClassVar

from domain.errors import InvalidTransition, RejectionCode
from domain.events import FlopAggregate, ns_to_datetime

ENCRYPTION_KEY_STREAM_TYPE = "encryption_key"
ENCRYPTION_PUBLIC_KEY_BYTES = 32  # an X25519 public key (RFC 7748)


def compute_encryption_key_id(actor: str) -> str:
    """One stream per actor."""
    return f"enckey:{actor}"


class EncryptionKey(FlopAggregate):
    """An actor's registered X25519 public key and how often it was rotated."""

    STREAM_TYPE: ClassVar[str] = ENCRYPTION_KEY_STREAM_TYPE

    class EncryptionKeyRegistered(FlopAggregate.Created):
        actor: str
        public_key: bytes

        def apply(self, key: EncryptionKey) -> None:
            key.actor, key.public_key, key.rotations = self.actor, self.public_key, 0

    class EncryptionKeyRotated(FlopAggregate.Event):
        actor: str
        public_key: bytes

        def apply(self, key: EncryptionKey) -> None:
            key.public_key = self.public_key
            key.rotations += 1

    actor: str
    public_key: bytes
    rotations: int

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def register(cls, *, actor: str, public_key: bytes, now_ns: int) -> EncryptionKey:
        return cls._create(
            cls.EncryptionKeyRegistered,
            id=compute_encryption_key_id(actor),
            actor=actor,
            public_key=public_key,
            timestamp=ns_to_datetime(now_ns),
        )

    def rotate(self, *, public_key: bytes, now_ns: int) -> None:
        if public_key == self.public_key:
            raise InvalidTransition(
                f"{self.actor} has registered this key already",
                code=RejectionCode.ENCRYPTION_KEY_UNCHANGED,
            )
        self._trigger(self.EncryptionKeyRotated, now_ns, actor=self.actor, public_key=public_key)

    def view(self) -> dict[str, object]:
        return {
            "actor": self.actor,
            "public_key": self.public_key.hex(),
            "rotations": self.rotations,
            "version": self.version,
        }

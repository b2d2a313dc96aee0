"""Object-stored records (issue 16, item 6): the ledger's note that an upload completed.

When a node (or the API, for a consumer's upload) has written an object to the store, it
records ``object.record_stored`` (digest, size, uploader), signed by itself: the writer of
the object, whose NATS user may add objects but never delete or rewrite one
(``adapters.nats.permissions``). From then on, under rules v4, an artifact missing from the
store is not its uploader's fault: validators vote ``artifact_lost`` instead of
``artifact_unavailable``, and a result rejected only for lost artifacts that its node
recorded as stored sends the job back to the market without slashing the node
(``domain.services.rounds``).
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from domain.events import FlopAggregate, ns_to_datetime

OBJECT_STREAM_TYPE = "object"
ARTIFACT_LOST_REASON = "artifact_lost"
"""A validator's reason when a recorded object is missing or damaged in the store."""
ARTIFACT_UNAVAILABLE_REASON = "artifact_unavailable"
"""A validator's reason when an object nobody recorded as stored cannot be read."""


class StoredObjectInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the object store says of an object (issue 17): its address (hex SHA-256 of the
    bytes stored), its size, and whether its uploader marked it ciphertext (readable by
    anyone who can name it)."""

    digest: str
    size_bytes: int
    encrypted: bool


def compute_object_id(digest: bytes, uploader: str) -> str:
    """One record per (digest, uploader): redundant nodes storing equal bytes each record."""
    return f"object:{digest.hex()}:{uploader}"


def is_artifact_lost_reason(reason: str) -> bool:
    """Whether a verdict's reason says the artifact was lost by the store."""
    return reason == ARTIFACT_LOST_REASON or reason.startswith(ARTIFACT_LOST_REASON + ":")


class StoredObject(FlopAggregate):
    """An object an uploader stored: its digest and size."""

    STREAM_TYPE: ClassVar[str] = OBJECT_STREAM_TYPE

    class ObjectStored(FlopAggregate.Created):
        digest: bytes
        size_bytes: int
        uploader: str

        def apply(self, stored: StoredObject) -> None:
            stored.digest, stored.size_bytes, stored.uploader = (
                self.digest,
                self.size_bytes,
                self.uploader,
            )

    digest: bytes
    size_bytes: int
    uploader: str

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def record(cls, *, digest: bytes, size_bytes: int, uploader: str, now_ns: int) -> StoredObject:
        return cls._create(
            cls.ObjectStored,
            id=compute_object_id(digest, uploader),
            digest=digest,
            size_bytes=size_bytes,
            uploader=uploader,
            timestamp=ns_to_datetime(now_ns),
        )

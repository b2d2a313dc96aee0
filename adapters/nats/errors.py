"""Errors of the NATS adapter, each saying which server (or stream sequence) and what failed.

They extend the domain's error kinds (STYLE.md): broker failures are operating errors, a
broken hash chain is a corrupt record, an oversized artifact is a rejection.
"""

from __future__ import annotations

from domain.errors import CorruptRecord, NotFound, OperatingError, Rejection, RejectionCode


class NatsError(OperatingError):
    """NATS or JetStream failed; the message names the server and the operation."""

    code = "nats_error"

    def __init__(self, server: str, operation: str, detail: str) -> None:
        super().__init__(f"NATS {server}: {operation} failed: {detail}")
        self.server = server
        self.operation = operation
        self.detail = detail


class EmbeddedServerError(OperatingError):
    """The embedded nats-server binary could not be found, started or stopped."""

    code = "nats_server_error"


class MirrorDiverged(OperatingError):
    """The JetStream mirror disagrees with the store at a sequence it cannot rewrite: an alarm.

    Raised when the message at ``sequence`` carries another hash than the store's record at
    that position, or when the stream holds more messages than the store. The relay stops.
    """

    code = "mirror_diverged"

    def __init__(self, sequence: int, reason: str) -> None:
        super().__init__(f"stream sequence {sequence} diverges from the store: {reason}")
        self.sequence = sequence
        self.reason = reason


class ChainBroken(CorruptRecord):
    """A record read from the stream does not chain: ``sequence`` names the first bad message."""

    code = "chain_broken"

    def __init__(self, stream: str, sequence: int, reason: str) -> None:
        super().__init__(sequence, reason)
        self.args = (f"{stream} sequence {sequence} breaks the hash chain: {reason}",)
        self.stream = stream
        self.sequence = sequence


class LeadershipLost(OperatingError):
    """Another relay holds the leader lock now; this one must stop publishing."""

    code = "leadership_lost"


class ArtifactTooLarge(Rejection):
    """The artifact is larger than the object store's configured size limit."""

    code = RejectionCode.ARTIFACT_TOO_LARGE

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"artifact of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class ArtifactNotFound(NotFound):
    """No artifact is stored under this SHA-256 digest."""

    code = RejectionCode.ARTIFACT_NOT_FOUND


class ArtifactCorrupt(OperatingError):
    """The bytes read back do not hash to the digest they are addressed by."""

    code = "artifact_corrupt"

    def __init__(self, digest: str, actual: str) -> None:
        super().__init__(f"artifact {digest} read back with SHA-256 {actual}: corrupt")
        self.digest = digest
        self.actual = actual

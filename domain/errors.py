"""Typed errors shared by the domain, the services and the ports.

Three kinds (STYLE.md): rejections (a rule said no; stable ``code``, the user can act),
operating errors (a store, broker or chain failed; raised by adapters with ``raise ... from``)
and bugs (anything else: crash loudly). The API maps ``Rejection.code`` to a problem type URI.
"""

from __future__ import annotations


class FlopError(Exception):
    """Base of every error flopledger raises on purpose."""

    code: str = "flop_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class Rejection(FlopError):
    """A command broke a rule: nothing was written. ``code`` names the rule (stable as API)."""

    code = "rejected"


class NotFound(Rejection):
    """The aggregate or account named by the command does not exist."""

    code = "not_found"


class InvalidTransition(Rejection):
    """The command is not allowed in the aggregate's current state."""

    code = "invalid_transition"


class ClaimConflict(Rejection):
    """Someone else already claimed the job (first valid claim wins)."""

    code = "job_already_claimed"


class InsufficientFunds(Rejection):
    """The debit would take an account below zero (only the boundary account may go negative)."""

    code = "insufficient_funds"


class Unauthorized(Rejection):
    """The command's actor may not do this (not the owner, not the assigned node, ...)."""

    code = "actor_not_authorized"


class OperatingError(FlopError):
    """An external system failed (store, NATS, RPC, GPU). Often worth a bounded retry."""

    code = "operating_error"


class StoreError(OperatingError):
    """Base of event store errors."""

    code = "store_error"


class VersionConflict(StoreError):
    """A stream's expected version was stale: the whole append was refused."""

    code = "version_conflict"

    def __init__(self, stream_id: str, expected: int | None, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the command expected {expected}; "
            "reload the stream and decide again"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class StoreUnavailable(StoreError):
    """The store could not be reached or refused service."""

    code = "store_unavailable"


class CorruptRecord(StoreError):
    """A stored record does not hash or chain as it must: the log was tampered with or damaged."""

    code = "corrupt_record"

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"record at position {position} is corrupt: {reason}")
        self.position = position
        self.reason = reason

"""A job's states, and the rejection code of a command that its state does not allow.

A module of its own so that the claim rules (``domain.scheduling``) can name states without
importing the Job aggregate (which checks claims with those rules).
"""

from __future__ import annotations

from domain.errors import RejectionCode

SUBMITTED = "submitted"
CLAIMED = "claimed"
RESULT_COMMITTED = "result_committed"
VERIFIED = "verified"
REJECTED = "rejected"
SETTLED = "settled"
EXPIRED = "expired"
REFUNDED = "refunded"
CANCELLED = "cancelled"
"""Cancelled by its consumer before any claim (rules v5): the escrow went back whole."""
FINISHED_STATES = frozenset({SETTLED, REFUNDED, CANCELLED})

STATE_CODES: dict[str, RejectionCode] = {
    SUBMITTED: RejectionCode.JOB_SUBMITTED,
    CLAIMED: RejectionCode.JOB_CLAIMED,
    RESULT_COMMITTED: RejectionCode.JOB_RESULT_COMMITTED,
    VERIFIED: RejectionCode.JOB_VERIFIED,
    REJECTED: RejectionCode.JOB_REJECTED,
    SETTLED: RejectionCode.JOB_SETTLED,
    EXPIRED: RejectionCode.JOB_EXPIRED,
    REFUNDED: RejectionCode.JOB_REFUNDED,
    CANCELLED: RejectionCode.JOB_CANCELLED,
}
"""The code of a command refused because the job is in that state."""

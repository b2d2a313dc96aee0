"""What a handler knows about the command it runs: who, when, under which policy."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import Rejection, RejectionCode, Unauthorized
from domain.policy import RULES_V5, LedgerPolicy


@dataclass(frozen=True)
class CommandContext:
    actor: str
    command_id: str
    now_ns: int
    policy: LedgerPolicy

    def require_operator(self) -> None:
        if self.actor not in self.policy.operators:
            raise Unauthorized(
                f"{self.actor} is not an operator of this ledger", code=RejectionCode.OPERATOR_ONLY
            )

    def require_rules_v5(self, kind: str) -> None:
        """Refuse a command kind that rules v5 brought in, on a ledger under older rules."""
        if self.policy.rules_version < RULES_V5:
            raise Rejection(f"{kind} needs rules v5", code=RejectionCode.RULES_V5_REQUIRED)

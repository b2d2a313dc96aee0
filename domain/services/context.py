"""What a handler knows about the command it runs: who, when, under which policy."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import RejectionCode, Unauthorized
from domain.policy import LedgerPolicy


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

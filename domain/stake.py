"""Bonding and unbonding rules shared by the aggregates that hold stake (nodes and validators).

Each aggregate nests its own ``StakeBonded``, ``UnbondRequested`` and ``StakeWithdrawn`` events
(events are registered per stream type); the rules that decide them live here once.

Stake comes only from its owner: a bond is signed by the owner of the node or validator it
stakes and debits the signer's own account (issue 14, attack 1: a node registered with a
victim as ``owner`` could bond the victim's money with its own key, then slash it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.ledger import user_account
from domain.policy import LedgerPolicy


class StakeRules:
    """Mixin for a FlopAggregate with ``owner``, ``stake``, ``unbonding``, ``unbond_ready_ns``."""

    owner: str
    stake: int
    unbonding: int
    unbond_ready_ns: int
    StakeBonded: Any
    UnbondRequested: Any
    StakeWithdrawn: Any

    if TYPE_CHECKING:  # provided by FlopAggregate; declared for the type checker only

        def _trigger(self, event_class: Any, now_ns: int, **fields: Any) -> None: ...

    def _bond(self, *, signer: str, amount: int, now_ns: int) -> None:
        """Bond ``amount`` from the signer's account; only the owner signs a bond."""
        if signer != self.owner:
            raise Unauthorized(
                f"{signer} is not the owner {self.owner}: a bond is signed by the owner, "
                "whose account it debits",
                code=RejectionCode.BOND_MUST_BE_SIGNED_BY_OWNER,
            )
        self._trigger(self.StakeBonded, now_ns, amount=amount, funded_by=user_account(signer))

    def get_unbond_floor(self, policy: LedgerPolicy) -> int:
        """Bonded stake an unbond must leave (a node's open claims reserve some; 0 here)."""
        return 0

    def _request_unbond(self, *, amount: int, policy: LedgerPolicy, now_ns: int) -> None:
        if amount <= 0 or amount > self.stake:
            raise Rejection(
                f"can unbond 1..{self.stake}, not {amount}",
                code=RejectionCode.UNBOND_AMOUNT_OUT_OF_RANGE,
            )
        floor = self.get_unbond_floor(policy)
        if self.stake - amount < floor:
            raise Rejection(
                f"open claims reserve {floor} of the bonded {self.stake}: at most "
                f"{self.stake - floor} can unbond (issue 14, attack 4)",
                code=RejectionCode.UNBOND_BELOW_CLAIM_RESERVE,
            )
        self._trigger(
            self.UnbondRequested,
            now_ns,
            amount=amount,
            ready_ns=now_ns + policy.unbonding_period_ns,
        )

    def withdraw_unbonded(self, *, now_ns: int) -> int:
        """Withdraw everything unbonding once the unbonding period is over; returns it."""
        if self.unbonding == 0:
            raise InvalidTransition("nothing is unbonding", code=RejectionCode.NOTHING_TO_WITHDRAW)
        if now_ns < self.unbond_ready_ns:
            raise Rejection(
                f"unbonding completes at {self.unbond_ready_ns}",
                code=RejectionCode.UNBONDING_NOT_COMPLETE,
            )
        amount = self.unbonding
        self._trigger(self.StakeWithdrawn, now_ns, amount=amount)
        return amount

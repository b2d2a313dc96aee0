"""The Validator aggregate: an operator that checks work and signs BLS verdicts."""

from __future__ import annotations

from typing import ClassVar

from domain.claims import compute_from_unbonding
from domain.errors import InvalidTransition, Rejection, RejectionCode, Unauthorized
from domain.events import FlopAggregate, ns_to_datetime
from domain.ledger import user_account
from domain.policy import LedgerPolicy
from domain.stake import StakeRules

BLS_PUBLIC_KEY_BYTES = 48
BLS_POP_BYTES = 96
CHECK_MODELS_MAX = 16
"""The most models one validator declares it checks (``validator.declare_models``)."""


class Validator(FlopAggregate, StakeRules):
    """A validator. Its id is its Ed25519 key; it also holds a BLS12-381 key."""

    STREAM_TYPE: ClassVar[str] = "validator"

    class Registered(FlopAggregate.Created):
        owner: str
        bls_public_key: bytes
        proof_of_possession: bytes
        region: str = ""
        """Where it measures liveness from (issue 15; empty: not said, or an older record)."""

        def apply(self, validator: Validator) -> None:
            validator.owner = self.owner
            validator.region = self.region
            validator.bls_public_key = self.bls_public_key
            validator.stake = 0
            validator.unbonding = 0
            validator.unbond_ready_ns = 0
            validator.slashed_total = 0
            validator.slashed_for = set()

    class StakeBonded(FlopAggregate.Event):
        amount: int
        funded_by: str = ""
        """The account debited, ``user:<owner>`` (empty in records written before bonds had
        to be signed by the owner; the audit checks that rule where it is set)."""

        def apply(self, validator: Validator) -> None:
            validator.stake += self.amount

    class UnbondRequested(FlopAggregate.Event):
        amount: int
        ready_ns: int

        def apply(self, validator: Validator) -> None:
            validator.stake -= self.amount
            validator.unbonding += self.amount
            validator.unbond_ready_ns = self.ready_ns

    class StakeWithdrawn(FlopAggregate.Event):
        amount: int

        def apply(self, validator: Validator) -> None:
            validator.unbonding -= self.amount

    class ValidatorSlashed(FlopAggregate.Event):
        amount: int
        reason: str
        evidence_key: str
        evidence: bytes
        from_unbonding: int = 0
        """The part taken from the unbonding stake (0 in records written before unbonding
        stake was slashable)."""

        def apply(self, validator: Validator) -> None:
            validator.stake -= self.amount - self.from_unbonding
            validator.unbonding -= self.from_unbonding
            validator.slashed_total += self.amount
            validator.slashed_for.add(self.evidence_key)

    class CheckModelsDeclared(FlopAggregate.Event):
        """The registered models the validator checks from now on (issue 18; sorted; empty:
        none): a sampled completion's round draws only among its model's declarers."""

        models: tuple[str, ...]

        def apply(self, validator: Validator) -> None:
            validator.check_models = self.models

    owner: str
    bls_public_key: bytes
    region: str
    stake: int
    unbonding: int
    unbond_ready_ns: int
    slashed_total: int
    slashed_for: set[str]
    check_models: tuple[str, ...] = ()
    """What the validator declared it checks (``CheckModelsDeclared``; none before one)."""

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def register(
        cls,
        validator_id: str,
        *,
        owner: str,
        bls_public_key: bytes,
        proof_of_possession: bytes,
        now_ns: int,
        region: str = "",
    ) -> Validator:
        """Register; the caller has verified the proof of possession (proofs.bls)."""
        if len(bls_public_key) != BLS_PUBLIC_KEY_BYTES or len(proof_of_possession) != BLS_POP_BYTES:
            raise Rejection(
                "BLS key is 48 bytes and its proof of possession 96 bytes",
                code=RejectionCode.BLS_KEY_MALFORMED,
            )
        return cls._create(
            cls.Registered,
            id=validator_id,
            owner=owner,
            bls_public_key=bls_public_key,
            proof_of_possession=proof_of_possession,
            region=region,
            timestamp=ns_to_datetime(now_ns),
        )

    def is_active(self, policy: LedgerPolicy) -> bool:
        return self.stake >= policy.validator_stake_min

    def bond(self, *, signer: str, amount: int, now_ns: int) -> None:
        """Bond ``amount`` from the owner's account; ``signer`` must be the owner."""
        self._bond(signer=signer, amount=amount, now_ns=now_ns)

    def bond_registration_stake(self, *, amount: int, now_ns: int) -> None:
        """Bond the stake a registration carries (issue 16, item 8), debited from the
        registering key's own account: the signer pays, so no owner's money moves."""
        self._trigger(self.StakeBonded, now_ns, amount=amount, funded_by=user_account(self.id))

    def request_unbond(self, *, amount: int, policy: LedgerPolicy, now_ns: int) -> None:
        self._request_unbond(amount=amount, policy=policy, now_ns=now_ns)

    def slash(
        self, *, amount: int, reason: str, evidence_key: str, evidence: bytes, now_ns: int
    ) -> int:
        """Slash for one piece of evidence, at most once per evidence key; the unbonding
        stake goes first (it stays slashable until it is withdrawn). Returns the part taken
        from the unbonding stake."""
        if not evidence:
            raise Rejection("a slash must cite evidence", code=RejectionCode.SLASH_NEEDS_EVIDENCE)
        if evidence_key in self.slashed_for:
            raise InvalidTransition(
                "this evidence was already used to slash", code=RejectionCode.EVIDENCE_ALREADY_USED
            )
        slashable = self.stake + self.unbonding
        if amount < 0 or amount > slashable:
            raise Rejection(
                f"can slash 0..{slashable}, not {amount}",
                code=RejectionCode.SLASH_AMOUNT_OUT_OF_RANGE,
            )
        from_unbonding = compute_from_unbonding(amount, self.unbonding)
        self._trigger(
            self.ValidatorSlashed,
            now_ns,
            amount=amount,
            reason=reason,
            evidence_key=evidence_key,
            evidence=evidence,
            from_unbonding=from_unbonding,
        )
        return from_unbonding

    def declare_check_models(self, *, models: tuple[str, ...], now_ns: int) -> None:
        """Record the models the validator checks (sorted, registered: the handler's part);
        the same list again is refused (``validator_models_unchanged``), so a daemon that
        declares at every start does not grow the log."""
        declared = tuple(sorted(models))
        if declared == self.check_models:
            raise InvalidTransition(
                f"validator {self.id} declares these models already",
                code=RejectionCode.VALIDATOR_MODELS_UNCHANGED,
            )
        self._trigger(self.CheckModelsDeclared, now_ns, models=declared)

    def is_checker_of(self, model_id: str) -> bool:
        """Whether the validator declared that it checks completions of ``model_id``."""
        return model_id in self.check_models

    def require_owner(self, actor: str) -> None:
        if actor not in (self.owner, self.id):
            raise Unauthorized(f"{actor} is neither validator {self.id} nor its owner")

    def view(self) -> dict[str, object]:
        return {
            "id": self.id,
            "owner": self.owner,
            "bls_public_key": self.bls_public_key.hex(),
            "region": self.region,
            "check_models": list(self.check_models),
            "stake": self.stake,
            "unbonding": self.unbonding,
            "slashed_total": self.slashed_total,
            "version": self.version,
        }

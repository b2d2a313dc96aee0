"""How a verified job's escrow is split: provider, validators, treasury, refund."""

from __future__ import annotations

import msgspec

from domain.policy import BPS, LedgerPolicy


class Payout(msgspec.Struct, frozen=True):
    account: str
    amount: int
    role: str


def compute_settlement(
    *,
    price: int,
    max_price: int,
    provider_account: str,
    validator_accounts: tuple[str, ...],
    consumer_account: str,
    treasury_account: str,
    policy: LedgerPolicy,
) -> tuple[Payout, ...]:
    """Split ``max_price`` exactly; integer division remainders go to the treasury.

    The provider earns ``price`` less the validator and treasury fees; the consumer gets back
    ``max_price - price``. Zero legs are left out.
    """
    if not 0 < price <= max_price:
        raise ValueError("price must be in 1..max_price")
    validator_fee = price * policy.validator_fee_bps // BPS if validator_accounts else 0
    treasury_fee = price * policy.treasury_fee_bps // BPS
    provider_amount = price - validator_fee - treasury_fee
    per_validator = validator_fee // len(validator_accounts) if validator_accounts else 0
    treasury_fee += validator_fee - per_validator * len(validator_accounts)
    legs = [Payout(provider_account, provider_amount, "provider")]
    legs += [Payout(account, per_validator, "validator") for account in validator_accounts]
    legs.append(Payout(treasury_account, treasury_fee, "treasury"))
    legs.append(Payout(consumer_account, max_price - price, "refund"))
    payouts = tuple(leg for leg in legs if leg.amount > 0)
    if sum(p.amount for p in payouts) != max_price:
        raise AssertionError("settlement must conserve the escrow exactly")
    return payouts


def compute_validator_fee_share(price: int, validators: int, policy: LedgerPolicy) -> int:
    """What each of ``validators`` certificate signers earns for deciding a job of ``price``:
    the same share whatever the verdict (issue 14, attack 5)."""
    if validators <= 0:
        return 0
    return price * policy.validator_fee_bps // BPS // validators


def compute_rejection_fees(
    *,
    price: int,
    available: int,
    validator_accounts: tuple[str, ...],
    consumer_account: str,
    policy: LedgerPolicy,
) -> tuple[Payout, ...]:
    """Split ``available`` (the rejected node's slash share that compensates the consumer):
    each signer its fee share (as on a pass), capped so that all of it fits in ``available``,
    the rest to the consumer. Zero legs are left out; the legs sum to ``available``."""
    if available < 0:
        raise ValueError("available must be >= 0")
    per_validator = compute_validator_fee_share(price, len(validator_accounts), policy)
    if validator_accounts:
        per_validator = min(per_validator, available // len(validator_accounts))
    legs = [Payout(account, per_validator, "validator") for account in validator_accounts]
    legs.append(Payout(consumer_account, available - per_validator * len(legs), "compensation"))
    payouts = tuple(leg for leg in legs if leg.amount > 0)
    if sum(p.amount for p in payouts) != available:
        raise AssertionError("rejection fees must split the slash share exactly")
    return payouts

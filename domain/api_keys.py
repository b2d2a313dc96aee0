"""Delegated API keys (issue 18, item 1; rules v5): a consumer's signed spending delegation.

An OpenAI-style client sends ``Authorization: Bearer <key>`` and no signature, so the consumer
signs a delegation once (``apikey.create``): the SHA-256 of the secret key (never the key),
a spend limit in base units and an expiry. The key's id is the hex SHA-256 of that hash, so
the API finds the delegation from the bearer key alone and anyone may check that an id names
its hash. The consumer alone revokes it (``apikey.revoke``). A completion's job recorded
under a key is allowed only while ``compute_charge_refusal`` finds nothing against it: not
revoked, not expired, its spent amount plus the charge within the limit. The audit applies
the same function to the stored history, so the API can spend no more than the consumer
allowed (docs/design.md, the delegation trust boundary).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from domain.errors import InvalidTransition, Rejection, RejectionCode
from domain.events import FlopAggregate, ns_to_datetime

API_KEY_STREAM_TYPE = "apikey"
API_KEY_HASH_BYTES = 32  # SHA-256 of the secret key
API_KEY_ID_PATTERN = "^[0-9a-f]{64}$"
EXPIRES_NEVER_NS = 0


def compute_api_key_hash(secret_key: str) -> bytes:
    """What the ledger records of a secret key: its SHA-256 (UTF-8)."""
    return hashlib.sha256(secret_key.encode()).digest()


def compute_api_key_id(key_hash: bytes) -> str:
    """A key's id from its hash: hex SHA-256, so the id reveals nothing of the secret."""
    return hashlib.sha256(key_hash).hexdigest()


def compute_api_key_stream_id(key_id: str) -> str:
    """One stream per key."""
    return f"apikey:{key_id}"


@dataclass(frozen=True, slots=True)
class Delegation:
    """What a charge under a key is decided on: the key's record at the charge's time."""

    spend_limit: int
    spent: int
    expires_ns: int
    revoked: bool


def is_expired(expires_ns: int, now_ns: int) -> bool:
    """An expiry of 0 never comes; otherwise the key is dead from ``expires_ns`` on."""
    return expires_ns != EXPIRES_NEVER_NS and now_ns >= expires_ns


def compute_charge_refusal(
    delegation: Delegation, *, amount: int, now_ns: int
) -> RejectionCode | None:
    """Why a charge of ``amount`` under ``delegation`` at ``now_ns`` is refused, or None when
    it is allowed. Checked in this order: revoked, expired, amount, cap."""
    if delegation.revoked:
        return RejectionCode.APIKEY_REVOKED
    if is_expired(delegation.expires_ns, now_ns):
        return RejectionCode.APIKEY_EXPIRED
    if amount < 1:
        return RejectionCode.AMOUNT_MUST_BE_POSITIVE
    if delegation.spent + amount > delegation.spend_limit:
        return RejectionCode.APIKEY_SPEND_LIMIT_EXCEEDED
    return None


class ApiKey(FlopAggregate):
    """A consumer's delegation: the key's hash, its cap, what was spent, expiry, revocation."""

    STREAM_TYPE: ClassVar[str] = API_KEY_STREAM_TYPE

    class ApiKeyCreated(FlopAggregate.Created):
        key_id: str
        key_hash: bytes
        consumer: str
        spend_limit: int
        expires_ns: int

        def apply(self, key: ApiKey) -> None:
            key.key_id, key.key_hash, key.consumer = self.key_id, self.key_hash, self.consumer
            key.spend_limit, key.expires_ns = self.spend_limit, self.expires_ns
            key.spent, key.revoked_at_ns = 0, None

    class ApiKeyRevoked(FlopAggregate.Event):
        key_id: str
        consumer: str
        revoked_at_ns: int

        def apply(self, key: ApiKey) -> None:
            key.revoked_at_ns = self.revoked_at_ns

    class SpendReserved(FlopAggregate.Event):
        """A completion opened under the key (issue 18): its escrow counts as spent at once,
        so concurrent opens can never take the key past its cap."""

        completion_id: str
        amount: int

        def apply(self, key: ApiKey) -> None:
            key.spent += self.amount

    class SpendReleased(FlopAggregate.Event):
        """What a completion did not use of its reservation (its escrow less its charge; all
        of it when aborted) no longer counts as spent."""

        completion_id: str
        amount: int

        def apply(self, key: ApiKey) -> None:
            key.spent -= self.amount

    key_id: str
    key_hash: bytes
    consumer: str
    spend_limit: int
    spent: int
    expires_ns: int
    revoked_at_ns: int | None

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def create(
        cls, *, key_hash: bytes, consumer: str, spend_limit: int, expires_ns: int, now_ns: int
    ) -> ApiKey:
        key_id = compute_api_key_id(key_hash)
        return cls._create(
            cls.ApiKeyCreated,
            id=compute_api_key_stream_id(key_id),
            key_id=key_id,
            key_hash=key_hash,
            consumer=consumer,
            spend_limit=spend_limit,
            expires_ns=expires_ns,
            timestamp=ns_to_datetime(now_ns),
        )

    def revoke(self, *, now_ns: int) -> None:
        if self.revoked_at_ns is not None:
            raise InvalidTransition(
                f"api key {self.key_id} is revoked already", code=RejectionCode.APIKEY_REVOKED
            )
        self._trigger(
            self.ApiKeyRevoked,
            now_ns,
            key_id=self.key_id,
            consumer=self.consumer,
            revoked_at_ns=now_ns,
        )

    def reserve_spend(self, *, completion_id: str, amount: int, now_ns: int) -> None:
        """Count ``amount`` as spent under the key, if ``compute_charge_refusal`` allows it."""
        refusal = compute_charge_refusal(self.get_delegation(), amount=amount, now_ns=now_ns)
        if refusal is not None:
            raise Rejection(
                f"api key {self.key_id} refuses a charge of {amount}: {refusal.value}",
                code=refusal,
            )
        self._trigger(self.SpendReserved, now_ns, completion_id=completion_id, amount=amount)

    def release_spend(self, *, completion_id: str, amount: int, now_ns: int) -> None:
        """Give back ``amount`` of a reservation (nothing to record when it is 0)."""
        if not 0 <= amount <= self.spent:
            raise AssertionError(f"release of {amount} outside the spent {self.spent}")
        if amount:
            self._trigger(self.SpendReleased, now_ns, completion_id=completion_id, amount=amount)

    def get_delegation(self) -> Delegation:
        return Delegation(
            spend_limit=self.spend_limit,
            spent=self.spent,
            expires_ns=self.expires_ns,
            revoked=self.revoked_at_ns is not None,
        )

    def view(self) -> dict[str, object]:
        """The record without any secret: the hash, the cap, what was spent, expiry, revocation."""
        return {
            "key_id": self.key_id,
            "key_hash": self.key_hash.hex(),
            "consumer": self.consumer,
            "spend_limit": self.spend_limit,
            "spent": self.spent,
            "expires_ns": self.expires_ns,
            "revoked": self.revoked_at_ns is not None,
            "revoked_at_ns": self.revoked_at_ns,
            "version": self.version,
        }

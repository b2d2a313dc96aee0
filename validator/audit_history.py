"""History rewrites by the log key holder (issue 16, item 4): trusted heads and co-signers.

The operator holds the log key, so it can rewrite history, re-chain every record, re-sign
every tree head and drop the co-signatures and anchors that no longer match: each check of
the replay passes on such a log. Two things an auditor brings from outside the log catch it:

- **trusted heads** (``--trusted-head SIZE:ROOT_HEX``): a (size, root) the auditor saw before
  (an earlier audit's ``newest_head``, ``GET /v1/log/tree-head``, a witness). The replay's own
  Merkle root of the first SIZE records must be ROOT (check ``trusted_head``, failing at
  position SIZE), and a log shorter than SIZE was truncated (failing at its first missing
  position). The audit holds every leaf, so it recomputes the root instead of trusting a
  consistency proof.
- **co-signers** (``--min-cosigners N``, ``--witness-key HEX``): each sealed head but the
  newest (which may not be co-signed yet) needs N co-signatures (check ``cosigners``, failing
  at the head's ``TreeHeadSigned`` position). A co-signature counts when its validator was
  staked (``Validator.is_active`` under the policy at the co-signature's position) or its BLS
  key is one the auditor named; each BLS key counts once per head, so one key registered
  under several validator ids does not count twice.

This module keeps the state and returns violations; ``validator.audit`` raises them. These are
the auditor's requirements, not ledger rules: they change no record and need no rules version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proofs import bls

TRUSTED_HEAD = "trusted_head"
COSIGNERS = "cosigners"
HISTORY_CHECKS = (TRUSTED_HEAD, COSIGNERS)
ROOT_BYTES = 32
BLS_PUBLIC_KEY_BYTES = 48
TRUSTED_HEADS_MAX = 256
"""Trusted heads one audit takes (each costs at most one root over the unsealed leaves)."""
WITNESS_KEYS_MAX = 256
MIN_COSIGNERS_MAX = 1_000


class HistoryOptionError(ValueError):
    """A trusted head, witness key or co-signer count the auditor gave is malformed."""


@dataclass(frozen=True)
class TrustedHead:
    """A log size and the Merkle root of its first ``size`` records, known from outside."""

    size: int
    root: bytes

    def __str__(self) -> str:
        return f"{self.size}:{self.root.hex()}"


@dataclass(frozen=True)
class HistoryRequirements:
    """What the auditor requires of the log's history beyond its own signatures."""

    trusted_heads: tuple[TrustedHead, ...] = ()
    witness_keys: frozenset[bytes] = frozenset()
    min_cosigners: int = 0

    def __post_init__(self) -> None:
        if len(self.trusted_heads) > TRUSTED_HEADS_MAX:
            raise HistoryOptionError(f"at most {TRUSTED_HEADS_MAX} trusted heads")
        if len(self.witness_keys) > WITNESS_KEYS_MAX:
            raise HistoryOptionError(f"at most {WITNESS_KEYS_MAX} witness keys")
        if not 0 <= self.min_cosigners <= MIN_COSIGNERS_MAX:
            raise HistoryOptionError(f"--min-cosigners is 0 to {MIN_COSIGNERS_MAX}")
        roots: dict[int, bytes] = {}
        for head in self.trusted_heads:
            if roots.setdefault(head.size, head.root) != head.root:
                raise HistoryOptionError(f"two trusted heads of size {head.size} differ")


def parse_trusted_head(text: str) -> TrustedHead:
    """``SIZE:ROOT_HEX`` (a positive size, 64 hex digits) as a TrustedHead."""
    size_text, sep, root_hex = text.strip().partition(":")
    try:
        size = int(size_text)
        root = bytes.fromhex(root_hex)
    except ValueError:
        size, root = 0, b""
    if not sep or size < 1 or len(root) != ROOT_BYTES:
        raise HistoryOptionError(
            f"a trusted head is SIZE:ROOT_HEX (a size >= 1 and {2 * ROOT_BYTES} hex digits, "
            f"as GET /v1/log/tree-head or an audit's newest_head gives it), not {text!r}"
        )
    return TrustedHead(size, root)


def parse_witness_key(text: str) -> bytes:
    """A witness's BLS12-381 public key (48 bytes compressed G1, hex) that is a valid key."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != BLS_PUBLIC_KEY_BYTES or not bls.key_validate(key):
        raise HistoryOptionError(
            f"a witness key is a BLS12-381 public key, {2 * BLS_PUBLIC_KEY_BYTES} hex digits "
            f"(a validator's bls_public_key), not {text!r}"
        )
    return key


@dataclass(frozen=True)
class HistoryViolation:
    position: int
    check: str
    message: str


@dataclass
class HistoryAudit:
    """Trusted heads met so far and the co-signers counted per sealed head."""

    requirements: HistoryRequirements = field(default_factory=HistoryRequirements)
    trusted_checked: int = 0
    heads_quorate: int = 0
    cosignatures_ignored: int = 0
    newest_head: TrustedHead | None = None
    _trusted: dict[int, bytes] = field(default_factory=dict)
    _head_positions: dict[int, int] = field(default_factory=dict)
    _cosigners: dict[int, set[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._trusted = {head.size: head.root for head in self.requirements.trusted_heads}

    @property
    def trusted_sizes(self) -> dict[int, bytes]:
        """Size -> root of every trusted head (the replay looks sizes up per record)."""
        return self._trusted

    def check_trusted(self, size: int, root_at: Callable[[int], bytes]) -> str | None:
        """At the record that makes the log ``size`` long: the trusted root there, or why not."""
        trusted = self._trusted.get(size)
        if trusted is None:
            return None
        root = root_at(size)
        if root != trusted:
            return (
                f"the first {size} records hash to {root.hex()}, the trusted head says "
                f"{trusted.hex()}: the history was rewritten"
            )
        self.trusted_checked += 1
        return None

    def note_head(self, size: int, root: bytes, position: int) -> None:
        self._head_positions[size] = position
        self._cosigners.setdefault(size, set())
        self.newest_head = TrustedHead(size, root)

    def note_cosignature(self, size: int, bls_key: bytes, *, is_staked: bool) -> None:
        """Count a verified co-signature of the head of ``size`` if its signer counts."""
        if is_staked or bls_key in self.requirements.witness_keys:
            self._cosigners.setdefault(size, set()).add(bls_key)
        else:
            self.cosignatures_ignored += 1

    def find_final_violation(
        self, log_size: int, at_position: int | None
    ) -> HistoryViolation | None:
        """After the replay: a trusted head past the log's end, or a head short of co-signers."""
        for size in sorted(self._trusted):
            if size > log_size and (at_position is None or size <= at_position):
                return HistoryViolation(
                    log_size + 1,
                    TRUSTED_HEAD,
                    f"a trusted head has {size} records, the log ends at {log_size}: "
                    "the log was truncated",
                )
        needed = self.requirements.min_cosigners
        sizes = sorted(self._head_positions)
        for size in sizes[:-1] if needed else ():
            counted = len(self._cosigners.get(size, ()))
            if counted < needed:
                return HistoryViolation(
                    self._head_positions[size],
                    COSIGNERS,
                    f"the tree head of size {size} has {counted} co-signatures from staked "
                    f"validators or named witnesses, {needed} are required",
                )
            self.heads_quorate += 1
        return None

    def unchecked_trusted(self, log_size: int) -> list[int]:
        """Trusted sizes past the audited position (``--at``), left unchecked."""
        return [size for size in sorted(self._trusted) if size > log_size]

    def get_status(self, check: str, *, verify_signatures: bool, log_size: int) -> str:
        """A history check's status when it did not fail: skipped unless the auditor asked
        for it; partial when a trusted head lies past the audited position (``--at``) or
        co-signatures were counted without verifying them (``--no-signatures``)."""
        if check == TRUSTED_HEAD:
            if not self._trusted:
                return "skipped"
            return "partial" if self.unchecked_trusted(log_size) else "passed"
        if not self.requirements.min_cosigners:
            return "skipped"
        return "passed" if verify_signatures else "partial"

    def summary(self) -> dict[str, Any]:
        """What the report shows: the newest head to trust next time, what was checked."""
        witnessed = [
            size
            for size, keys in self._cosigners.items()
            if len(keys) >= max(self.requirements.min_cosigners, 1)
        ]
        return {
            "newest_head": str(self.newest_head) if self.newest_head else "",
            "witnessed_size": max(witnessed, default=0),
            "trusted_heads_checked": self.trusted_checked,
            "min_cosigners": self.requirements.min_cosigners,
            "heads_with_min_cosigners": self.heads_quorate,
            "cosignatures_not_counted": self.cosignatures_ignored,
        }

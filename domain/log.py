"""The transparency log aggregate: signed tree heads, witness co-signatures, Solana anchors.

One stream (``log:transparency``) records every tree head the sealer signed
(``TreeHeadSigned``), every validator's BLS co-signature of a head (``WitnessCosigned``) and
every head's anchor on Solana (``LogAnchored``). Tree sizes only grow; a head is co-signed
once per validator and anchored once. Checking that a head's root is the Merkle root of the
first ``size`` records is the witnesses' and the audit's job (they replay the records); the
aggregate checks what it can see alone.
"""

from __future__ import annotations

import hashlib
import struct
from typing import ClassVar

import msgspec

from domain.errors import InvalidTransition, NotFound, Rejection, RejectionCode
from domain.events import FlopAggregate, ns_to_datetime

LOG_STREAM_ID = "log:transparency"
WITNESS_TAG = b"flopledger/witness-cosign/v1\x00"
ANCHOR_MEMO_PREFIX = "flopledger:sth:"
ROOT_BYTES = 32


class HeadState(msgspec.Struct):
    """One signed tree head as the log aggregate keeps it."""

    size: int
    root: bytes
    timestamp_ns: int
    signer: bytes
    signature: bytes
    cosigners: dict[str, bytes]
    anchor_signature: str = ""
    anchor_slot: int = 0


def compute_witness_message(size: int, root: bytes) -> bytes:
    """The 32 bytes a witness BLS-signs to say "I replayed ``size`` records to ``root``"."""
    if not 0 <= size < 2**64 or len(root) != ROOT_BYTES:
        raise ValueError("size must be a uint64 and root 32 bytes")
    return hashlib.sha256(WITNESS_TAG + struct.pack(">Q", size) + root).digest()


def encode_anchor_memo(size: int, root: bytes) -> str:
    """The memo put on chain for a tree head: ``flopledger:sth:<size>:<root hex>``."""
    return f"{ANCHOR_MEMO_PREFIX}{size}:{root.hex()}"


def decode_anchor_memo(memo: str) -> tuple[int, bytes] | None:
    """(size, root) of an anchor memo, or None when it is not one."""
    if not memo.startswith(ANCHOR_MEMO_PREFIX):
        return None
    size_text, _, root_hex = memo[len(ANCHOR_MEMO_PREFIX) :].partition(":")
    try:
        size, root = int(size_text), bytes.fromhex(root_hex)
    except ValueError:
        return None
    return (size, root) if len(root) == ROOT_BYTES else None


class Log(FlopAggregate):
    """The sealed history of the event log (stream ``log:transparency``)."""

    STREAM_TYPE: ClassVar[str] = "log"

    class Started(FlopAggregate.Created):
        name: str

        def apply(self, log: Log) -> None:
            log.name = self.name
            log.heads = {}
            log.last_size = 0

    class TreeHeadSigned(FlopAggregate.Event):
        size: int
        root: bytes
        tree_timestamp_ns: int
        signer: bytes
        signature: bytes

        def apply(self, log: Log) -> None:
            log.heads[self.size] = HeadState(
                self.size, self.root, self.tree_timestamp_ns, self.signer, self.signature, {}
            )
            log.last_size = self.size

    class WitnessCosigned(FlopAggregate.Event):
        size: int
        root: bytes
        validator_id: str
        signature: bytes

        def apply(self, log: Log) -> None:
            log.heads[self.size].cosigners[self.validator_id] = self.signature

    class LogAnchored(FlopAggregate.Event):
        size: int
        root: bytes
        chain_signature: str
        slot: int

        def apply(self, log: Log) -> None:
            head = log.heads[self.size]
            head.anchor_signature, head.anchor_slot = self.chain_signature, self.slot

    name: str
    heads: dict[int, HeadState]
    last_size: int

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def start(cls, *, now_ns: int) -> Log:
        return cls._create(
            cls.Started, id=LOG_STREAM_ID, name="transparency", timestamp=ns_to_datetime(now_ns)
        )

    @property
    def latest(self) -> HeadState | None:
        return self.heads.get(self.last_size)

    def sign_head(
        self,
        *,
        size: int,
        root: bytes,
        tree_timestamp_ns: int,
        signer: bytes,
        signature: bytes,
        now_ns: int,
    ) -> None:
        """Record a signed head; sizes only grow (``tree_size_must_grow``)."""
        if size <= self.last_size:
            raise Rejection(
                f"tree size {size} does not grow past the last signed size {self.last_size}",
                code=RejectionCode.TREE_SIZE_MUST_GROW,
            )
        self._trigger(
            self.TreeHeadSigned,
            now_ns,
            size=size,
            root=root,
            tree_timestamp_ns=tree_timestamp_ns,
            signer=signer,
            signature=signature,
        )

    def cosign(self, *, size: int, validator_id: str, signature: bytes, now_ns: int) -> None:
        """Record one witness co-signature of the head of ``size``."""
        head = self.require_head(size)
        if validator_id in head.cosigners:
            raise InvalidTransition(
                f"{validator_id} already co-signed the head of size {size}",
                code=RejectionCode.HEAD_ALREADY_COSIGNED,
            )
        self._trigger(
            self.WitnessCosigned,
            now_ns,
            size=size,
            root=head.root,
            validator_id=validator_id,
            signature=signature,
        )

    def anchor(self, *, size: int, chain_signature: str, slot: int, now_ns: int) -> None:
        """Record where the head of ``size`` was anchored on Solana (once)."""
        head = self.require_head(size)
        if head.anchor_signature:
            raise InvalidTransition(
                f"the head of size {size} is already anchored by {head.anchor_signature}",
                code=RejectionCode.HEAD_ALREADY_ANCHORED,
            )
        self._trigger(
            self.LogAnchored,
            now_ns,
            size=size,
            root=head.root,
            chain_signature=chain_signature,
            slot=slot,
        )

    def require_head(self, size: int) -> HeadState:
        head = self.heads.get(size)
        if head is None:
            raise NotFound(
                f"no signed tree head of size {size}", code=RejectionCode.TREE_HEAD_NOT_FOUND
            )
        return head

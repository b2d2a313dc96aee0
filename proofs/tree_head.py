"""Signed tree heads: an Ed25519 signature over (size, timestamp, root) of the event log.

Modelled on RFC 6962 §3.5 / RFC 9162 §4.10 (a log signs its size, time and root hash). The
signed bytes are domain-separated and fixed-width: ``TAG || uint64 size || uint64
timestamp_ns || root`` (big-endian), so one tree head has one encoding. The signer is named by
its raw 32-byte Ed25519 public key (RFC 8032 §5.1.5). Verification returns a bool and never
raises; it proves who signed, so a caller still checks that the signer is one it trusts.
"""

from __future__ import annotations

import struct
from typing import Annotated

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from proofs.merkle import HASH_SIZE

TREE_HEAD_TAG = b"flopledger/tree-head/v1\x00"
"""Domain separator: these bytes never mean anything else to a flopledger key."""

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
INT64_MAX = 2**63 - 1
"""Bound on ``size`` and ``timestamp_ns``: msgspec checks int64 bounds (and JSON peers
often parse int64); the signed encoding is still uint64, so the bound can grow later."""

_INT64 = msgspec.Meta(ge=0, le=INT64_MAX)


class SignedTreeHead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A log's signed statement: "my first ``size`` records hash to ``root``"."""

    size: Annotated[int, _INT64]
    root: Annotated[bytes, msgspec.Meta(min_length=HASH_SIZE, max_length=HASH_SIZE)]
    timestamp_ns: Annotated[int, _INT64]
    signer: Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_SIZE, max_length=PUBLIC_KEY_SIZE)]
    signature: Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_SIZE, max_length=SIGNATURE_SIZE)]


def compute_tree_head_message(size: int, root: bytes, timestamp_ns: int) -> bytes:
    """The exact bytes an Ed25519 tree-head signature covers."""
    if not (0 <= size <= INT64_MAX and 0 <= timestamp_ns <= INT64_MAX):
        raise ValueError("size and timestamp_ns must be in 0..2**63-1")
    if len(root) != HASH_SIZE:
        raise ValueError(f"root must be {HASH_SIZE} bytes")
    return TREE_HEAD_TAG + struct.pack(">QQ", size, timestamp_ns) + root


def sign_tree_head(
    private_key: Ed25519PrivateKey, size: int, root: bytes, timestamp_ns: int
) -> SignedTreeHead:
    """Sign a tree head with a raw ``cryptography`` Ed25519 key (RFC 8032 §5.1.6)."""
    message = compute_tree_head_message(size, root, timestamp_ns)
    signer = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SignedTreeHead(
        size=size,
        root=root,
        timestamp_ns=timestamp_ns,
        signer=signer,
        signature=private_key.sign(message),
    )


def verify_tree_head(sth: SignedTreeHead, signer: bytes | None = None) -> bool:
    """True iff ``sth.signature`` is ``sth.signer``'s Ed25519 signature over the tree head.

    With ``signer`` given, the head must also be signed by exactly that public key.
    """
    if signer is not None and signer != sth.signer:
        return False
    if not isinstance(sth, SignedTreeHead):
        return False
    if not (isinstance(sth.signer, bytes) and len(sth.signer) == PUBLIC_KEY_SIZE):
        return False
    if not (isinstance(sth.signature, bytes) and len(sth.signature) == SIGNATURE_SIZE):
        return False
    try:
        message = compute_tree_head_message(sth.size, sth.root, sth.timestamp_ns)
        Ed25519PublicKey.from_public_bytes(sth.signer).verify(sth.signature, message)
    except (ValueError, TypeError, struct.error, InvalidSignature):
        return False
    return True


def encode_tree_head(sth: SignedTreeHead) -> bytes:
    """Wire form (msgspec JSON, bytes as base64)."""
    return msgspec.json.encode(sth)


def decode_tree_head(data: bytes) -> SignedTreeHead:
    """Parse and validate the wire form; raises ``msgspec.ValidationError`` on bad input."""
    return msgspec.json.decode(data, type=SignedTreeHead)

"""Quorum certificates: one aggregate BLS signature standing for a quorum of validator verdicts.

A certificate names its signers by a bitmap over an ordered validator set (bit i, least
significant bit first within byte i // 8, is validator i) and binds that set by digest, so a
certificate cannot be replayed against another ordering or epoch. Every signer signs the same
32-byte message; verification is one FastAggregateVerify (draft-irtf-cfrg-bls-signature-05
§3.3.4), which is sound against rogue-key attacks only because every validator key was
registered with a verified proof of possession (§3.3, ``proofs.bls.pop_verify``).

Verdict messages are domain-separated: ``verdict_message`` hashes a tagged, length-prefixed
encoding of (job id, result commitment, verdict), so no other signed flopledger message,
and no other verdict, has the same bytes. Attestation verdicts (``attestation_verdict_message``)
use their own tag over (node id, challenge nonce, attestation commitment, verdict), so a job
verdict can never be presented as an attestation verdict or the reverse; so do completion
verdicts (``completion_verdict_message``: completion id, TOPLOC commitment, verdict).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from typing import Annotated

import msgspec

from proofs import bls
from proofs.bls_backend import PUBLIC_KEY_SIZE, SIGNATURE_SIZE

VALIDATOR_SET_MAX = 1024
"""Largest validator set a certificate may cover (bitmap of 128 bytes)."""

MESSAGE_SIZE = 32
JOB_ID_BYTES_MAX = 256
COMMITMENT_BYTES_MAX = 256
VERDICT_TAG = b"flopledger/verdict/v1\x00"
ATTESTATION_VERDICT_TAG = b"flopledger/attestation-verdict/v1\x00"
COMPLETION_VERDICT_TAG = b"flopledger/completion-verdict/v1\x00"
VALIDATOR_SET_TAG = b"flopledger/validator-set/v1\x00"


class QuorumCertificate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An aggregate signature by the validators whose bits are set in ``signers``."""

    validator_set_digest: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    message: Annotated[bytes, msgspec.Meta(min_length=MESSAGE_SIZE, max_length=MESSAGE_SIZE)]
    signers: Annotated[bytes, msgspec.Meta(max_length=VALIDATOR_SET_MAX // 8)]
    signature: Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_SIZE, max_length=SIGNATURE_SIZE)]


def verdict_message(job_id: str, commitment: bytes, verdict: bool) -> bytes:
    """The 32 bytes a validator signs to say ``verdict`` about ``commitment`` for ``job_id``."""
    encoded_id = job_id.encode("utf-8")
    if len(encoded_id) > JOB_ID_BYTES_MAX or len(commitment) > COMMITMENT_BYTES_MAX:
        raise ValueError("job id or commitment too long")
    if not isinstance(verdict, bool):
        raise ValueError("verdict must be a bool")
    body = (
        struct.pack(">H", len(encoded_id))
        + encoded_id
        + struct.pack(">H", len(commitment))
        + commitment
        + (b"\x01" if verdict else b"\x00")
    )
    return hashlib.sha256(VERDICT_TAG + body).digest()


def completion_verdict_message(completion_id: str, commitment: bytes, verdict: bool) -> bytes:
    """The 32 bytes a validator signs to say ``verdict`` about a sampled completion's
    committed activations (``commitment``, the TOPLOC completion commitment)."""
    parts = [completion_id.encode("utf-8"), commitment]
    if any(len(p) > COMMITMENT_BYTES_MAX for p in parts):
        raise ValueError("completion id or commitment too long")
    if not isinstance(verdict, bool):
        raise ValueError("verdict must be a bool")
    body = b"".join(struct.pack(">H", len(p)) + p for p in parts)
    return hashlib.sha256(
        COMPLETION_VERDICT_TAG + body + (b"\x01" if verdict else b"\x00")
    ).digest()


def attestation_verdict_message(
    node_id: str, nonce: str, commitment: bytes, verdict: bool
) -> bytes:
    """The 32 bytes a validator signs to say ``verdict`` about a node's attestation answer
    (``commitment``) to the challenge ``nonce``."""
    parts = [node_id.encode("utf-8"), nonce.encode("utf-8"), commitment]
    if any(len(p) > COMMITMENT_BYTES_MAX for p in parts):
        raise ValueError("node id, nonce or commitment too long")
    if not isinstance(verdict, bool):
        raise ValueError("verdict must be a bool")
    body = b"".join(struct.pack(">H", len(p)) + p for p in parts)
    return hashlib.sha256(
        ATTESTATION_VERDICT_TAG + body + (b"\x01" if verdict else b"\x00")
    ).digest()


def compute_validator_set_digest(validator_set: Sequence[bytes]) -> bytes:
    """SHA-256 binding the ordered list of validator public keys."""
    if len(validator_set) > VALIDATOR_SET_MAX:
        raise ValueError(f"validator set larger than {VALIDATOR_SET_MAX}")
    if any(not isinstance(pk, bytes) or len(pk) != PUBLIC_KEY_SIZE for pk in validator_set):
        raise ValueError(f"validator public keys are {PUBLIC_KEY_SIZE} bytes")
    count = struct.pack(">I", len(validator_set))
    return hashlib.sha256(VALIDATOR_SET_TAG + count + b"".join(validator_set)).digest()


def make_qc(
    validator_set: Sequence[bytes],
    signatures_by_index: Mapping[int, bytes],
    message: bytes,
    *,
    check_signatures: bool = True,
) -> QuorumCertificate:
    """Aggregate the validators' signatures of ``message`` into a certificate.

    With ``check_signatures`` (the default) each signature is verified first, so one bad
    contribution is named (ValueError with its index) instead of spoiling the aggregate.
    """
    size = len(validator_set)
    digest = compute_validator_set_digest(validator_set)
    if len(message) != MESSAGE_SIZE:
        raise ValueError(f"a certificate message is {MESSAGE_SIZE} bytes")
    if not signatures_by_index:
        raise ValueError("a certificate needs at least one signature")
    bitmap = bytearray((size + 7) // 8)
    for index, signature in signatures_by_index.items():
        if not 0 <= index < size:
            raise ValueError(f"signer index {index} outside a validator set of {size}")
        if check_signatures and not bls.verify(validator_set[index], message, signature):
            raise ValueError(f"signature of validator {index} does not verify")
        bitmap[index // 8] |= 1 << (index % 8)
    ordered = [signatures_by_index[i] for i in sorted(signatures_by_index)]
    return QuorumCertificate(
        validator_set_digest=digest,
        message=message,
        signers=bytes(bitmap),
        signature=bls.aggregate(ordered),
    )


def signer_indices(qc: QuorumCertificate, size: int) -> list[int] | None:
    """Indices set in the bitmap, or None unless it is canonical for a set of ``size``.

    Canonical: exactly ceil(size / 8) bytes and no bit set at or past ``size``.
    """
    if len(qc.signers) != (size + 7) // 8:
        return None
    indices = [i for i in range(len(qc.signers) * 8) if qc.signers[i // 8] >> (i % 8) & 1]
    if indices and indices[-1] >= size:
        return None
    return indices


def verify_qc(validator_set: Sequence[bytes], qc: QuorumCertificate, threshold: int) -> bool:
    """True iff at least ``threshold`` (>= 1) distinct validators of the set signed ``qc.message``.

    Checks, in order: threshold, set digest, message length, bitmap shape, signer count,
    then one FastAggregateVerify. Never raises on a malformed certificate. The caller
    still compares ``qc.message`` with the ``verdict_message`` it expects.
    """
    if not isinstance(qc, QuorumCertificate) or isinstance(threshold, bool):
        return False
    if not isinstance(threshold, int) or threshold < 1:
        return False
    try:
        digest = compute_validator_set_digest(validator_set)
    except ValueError:
        return False
    if not isinstance(qc.validator_set_digest, bytes) or qc.validator_set_digest != digest:
        return False
    if not isinstance(qc.message, bytes) or len(qc.message) != MESSAGE_SIZE:
        return False
    if not isinstance(qc.signers, bytes):
        return False
    indices = signer_indices(qc, len(validator_set))
    if indices is None or len(indices) < threshold:
        return False
    signers = [validator_set[i] for i in indices]
    return bls.fast_aggregate_verify(signers, qc.message, qc.signature)


def encode_qc(qc: QuorumCertificate) -> bytes:
    """Wire form (msgspec JSON, bytes as base64)."""
    return msgspec.json.encode(qc)


def decode_qc(data: bytes) -> QuorumCertificate:
    """Parse and validate the wire form; raises ``msgspec.ValidationError`` on bad input."""
    return msgspec.json.decode(data, type=QuorumCertificate)

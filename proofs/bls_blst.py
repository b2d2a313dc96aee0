"""Fast BLS backend on blst (through pyblst): the scheme built from blst's group operations.

pyblst exposes points (``uncompress`` checks the encoding, the curve equation and subgroup
membership), scalar multiplication, hash_to_curve (RFC 9380), Miller loops and
``final_verify(a, b)`` (is FE(a) == FE(b)). A pairing equation ``e(P, Q) == e(P1, S)`` is then
``final_verify(miller_loop(P, Q), miller_loop(P1, S))``, as CoreVerify (draft-irtf-cfrg-bls-
signature-05 §2.7) requires. Decoded public keys are memoised: validator sets are fixed, so a
quorum certificate costs two Miller loops and one point addition per signer.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from pyblst import BlstP1Element, BlstP2Element, final_verify, miller_loop

from proofs.bls_backend import DST_SIGNATURE, G1_GENERATOR

PUBLIC_KEY_CACHE_MAX = 4096
"""Decoded public keys kept in memory (about 150 bytes each); a validator set fits easily."""

BATCH_SCALAR_BITS = 128
"""Random-linear-combination scalars of batch verification: a forged set passes with
probability at most 2^-128 per try."""

_BATCH_TAG = b"flopledger/bls-batch-verify/v1\x00"
_P1 = BlstP1Element.uncompress(G1_GENERATOR)
_IDENTITY_P1 = BlstP1Element()


class BlstBackend:
    """``BlsBackend`` on blst."""

    name = "blst"

    def sk_to_pk(self, sk: int) -> bytes:
        return bytes(_P1.scalar_mul(sk).compress())

    def sign(self, sk: int, message: bytes, dst: bytes) -> bytes:
        return bytes(BlstP2Element.hash_to_group(message, dst).scalar_mul(sk).compress())

    def verify(self, pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
        point = _decode_public_key(pk)
        sig = _decode_g2(signature)
        if point is None or sig is None:
            return False
        return _pairing_check(point, BlstP2Element.hash_to_group(message, dst), sig)

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise ValueError("Aggregate needs at least one signature")
        total = BlstP2Element()
        for signature in signatures:
            point = _decode_g2(signature)
            if point is None:
                raise ValueError("Aggregate: a signature does not decode to a point of G2")
            total = total + point
        return bytes(total.compress())

    def aggregate_verify(
        self, pks: Sequence[bytes], messages: Sequence[bytes], signature: bytes
    ) -> bool:
        sig = _decode_g2(signature)
        points = [_decode_public_key(pk) for pk in pks]
        if sig is None or not points or len(points) != len(messages):
            return False
        product = None
        for point, message in zip(points, messages, strict=True):
            if point is None:
                return False
            loop = miller_loop(point, BlstP2Element.hash_to_group(message, DST_SIGNATURE))
            product = loop if product is None else product * loop
        return bool(final_verify(product, miller_loop(_P1, sig)))

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        sig = _decode_g2(signature)
        if sig is None or not pks:
            return False
        total = BlstP1Element()
        for pk in pks:
            point = _decode_public_key(pk)
            if point is None:
                return False
            total = total + point
        if total == _IDENTITY_P1:  # KeyValidate of the aggregate key, as py_ecc's Verify does
            return False
        return _pairing_check(total, BlstP2Element.hash_to_group(message, DST_SIGNATURE), sig)

    def batch_verify(
        self, pks: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> bool:
        """Random linear combination: ``Π e(r_i·PK_i, H(m_i)) == e(P1, Σ r_i·S_i)``.

        The r_i are derived from every input (Fiat–Shamir), so the check stays a pure
        function; a signer cannot pick signatures after seeing the r_i.
        """
        n = len(pks)
        if n == 0 or len(messages) != n or len(signatures) != n:
            return False
        points = [_decode_public_key(pk) for pk in pks]
        sigs = [_decode_g2(s) for s in signatures]
        scalars = _batch_scalars(pks, messages, signatures)
        product = None
        total_sig = BlstP2Element()
        for point, sig, message, r in zip(points, sigs, messages, scalars, strict=True):
            if point is None or sig is None:
                return False
            hashed = BlstP2Element.hash_to_group(message, DST_SIGNATURE)
            loop = miller_loop(point.scalar_mul(r), hashed)
            product = loop if product is None else product * loop
            total_sig = total_sig + sig.scalar_mul(r)
        return bool(final_verify(product, miller_loop(_P1, total_sig)))

    def key_validate(self, pk: bytes) -> bool:
        return _decode_public_key(pk) is not None

    def is_g1_encoding(self, data: bytes) -> bool:
        try:
            BlstP1Element.uncompress(data)
        except ValueError:
            return False
        return True

    def is_g2_encoding(self, data: bytes) -> bool:
        return _decode_g2(data) is not None

    def hash_to_g2(self, message: bytes, dst: bytes) -> bytes:
        return bytes(BlstP2Element.hash_to_group(message, dst).compress())


@functools.lru_cache(maxsize=PUBLIC_KEY_CACHE_MAX)
def _decode_public_key(pk: bytes) -> BlstP1Element | None:
    """KeyValidate (draft §2.5): decode with subgroup check and reject the identity."""
    try:
        point = BlstP1Element.uncompress(pk)
    except ValueError:
        return None
    return None if point == _IDENTITY_P1 else point


def _decode_g2(data: bytes) -> BlstP2Element | None:
    """Decode a signature (draft Appendix A) with its G2 subgroup check; None if invalid."""
    try:
        return BlstP2Element.uncompress(data)
    except ValueError:
        return None


def _pairing_check(pk: BlstP1Element, hashed: BlstP2Element, sig: BlstP2Element) -> bool:
    """``e(pk, hashed) == e(P1, sig)``, the equation of CoreVerify (draft §2.7 step 7)."""
    return bool(final_verify(miller_loop(pk, hashed), miller_loop(_P1, sig)))


def _batch_scalars(
    pks: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
) -> list[int]:
    """Non-zero ``BATCH_SCALAR_BITS``-bit scalars bound to the whole batch."""
    transcript = hashlib.sha256(_BATCH_TAG)
    for pk, message, signature in zip(pks, messages, signatures, strict=True):
        transcript.update(pk + len(message).to_bytes(8, "big") + message + signature)
    seed = transcript.digest()
    size = BATCH_SCALAR_BITS // 8
    return [
        int.from_bytes(hashlib.sha256(seed + i.to_bytes(8, "big")).digest()[:size], "big") | 1
        for i in range(len(pks))
    ]

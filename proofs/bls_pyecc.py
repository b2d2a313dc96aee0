"""Reference BLS backend: py_ecc's G2ProofOfPossession (the code the Ethereum vectors came from).

Slow (Verify ~0.34 s) but independent of blst; used as the fallback when pyblst is missing
and as the oracle of the differential tests. Each operation is the py_ecc one, except
Aggregate, where py_ecc decodes without a subgroup check: ours checks, as blst does.
"""

from __future__ import annotations

from collections.abc import Sequence

from py_ecc.bls import G2ProofOfPossession as PoP
from py_ecc.bls.ciphersuites import BaseG2Ciphersuite
from py_ecc.bls.g2_primitives import (
    G1_to_pubkey,
    G2_to_signature,
    pubkey_to_G1,
    signature_to_G2,
    subgroup_check,
)
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.bls.typing import G2Uncompressed
from py_ecc.optimized_bls12_381 import G1, Z2, add, multiply

from proofs.bls_backend import DST_SIGNATURE


class _CoreSuite(BaseG2Ciphersuite):
    """py_ecc's core operations with a DST chosen per call (signatures or PoP)."""

    DST = DST_SIGNATURE


class PyEccBackend:
    """``BlsBackend`` on py_ecc (pure Python)."""

    name = "py_ecc"

    def sk_to_pk(self, sk: int) -> bytes:
        return bytes(G1_to_pubkey(multiply(G1, sk)))

    def sign(self, sk: int, message: bytes, dst: bytes) -> bytes:
        return bytes(_CoreSuite._CoreSign(sk, message, dst))

    def verify(self, pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
        return bool(_CoreSuite._CoreVerify(pk, message, signature, dst))  # type: ignore[arg-type]

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise ValueError("Aggregate needs at least one signature")
        total: G2Uncompressed = Z2
        for signature in signatures:
            point = _decode_g2(signature)
            if point is None:
                raise ValueError("Aggregate: a signature does not decode to a point of G2")
            total = add(total, point)
        return bytes(G2_to_signature(total))

    def aggregate_verify(
        self, pks: Sequence[bytes], messages: Sequence[bytes], signature: bytes
    ) -> bool:
        return bool(PoP.AggregateVerify(pks, messages, signature))  # type: ignore[arg-type]

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        return bool(PoP.FastAggregateVerify(pks, message, signature))  # type: ignore[arg-type]

    def batch_verify(
        self, pks: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> bool:
        triples = zip(pks, messages, signatures, strict=True)
        return all(PoP.Verify(pk, m, s) for pk, m, s in triples)  # type: ignore[arg-type]

    def key_validate(self, pk: bytes) -> bool:
        return bool(PoP.KeyValidate(pk))  # type: ignore[arg-type]

    def is_g1_encoding(self, data: bytes) -> bool:
        try:
            point = pubkey_to_G1(data)  # type: ignore[arg-type]
        except (ValueError, AssertionError):
            return False
        return bool(subgroup_check(point))

    def is_g2_encoding(self, data: bytes) -> bool:
        return _decode_g2(data) is not None

    def hash_to_g2(self, message: bytes, dst: bytes) -> bytes:
        return bytes(G2_to_signature(hash_to_G2(message, dst, PoP.xmd_hash_function)))  # type: ignore[arg-type]


def _decode_g2(data: bytes) -> G2Uncompressed | None:
    """Decompress (draft Appendix A) and check membership of G2; None when either fails."""
    try:
        point = signature_to_G2(data)  # type: ignore[arg-type]
    except (ValueError, AssertionError):
        return None
    return point if subgroup_check(point) else None

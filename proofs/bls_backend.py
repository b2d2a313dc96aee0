"""The contract every BLS12-381 backend meets, and the ciphersuite constants they share.

Ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` of draft-irtf-cfrg-bls-signature-05
§4.2.3 (Ethereum's G2ProofOfPossession): public keys are compressed G1 points (48 bytes),
signatures compressed G2 points (96 bytes), encodings as in the draft's Appendix A (ZCash
format). Backends receive arguments already checked for type and length by ``proofs.bls``;
they decode points with subgroup checks and answer False for anything that does not decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

DST_SIGNATURE = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
"""draft-irtf-cfrg-bls-signature-05 §4.2.3: domain separation tag of Sign/Verify."""

DST_POP = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
"""draft-irtf-cfrg-bls-signature-05 §4.2.3: domain separation tag of PopProve/PopVerify."""

CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
"""r, the order of G1, G2 and GT; secret keys are integers in 1..r-1."""

PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96
SECRET_KEY_SIZE = 32

G1_GENERATOR = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac58"
    "6c55e83ff97a1aeffb3af00adb22c6bb"
)
"""The standard generator P1 of G1, compressed."""


class BlsBackend(Protocol):
    """BLS core operations over bytes; ``sk`` is an already validated integer in 1..r-1."""

    name: str

    def sk_to_pk(self, sk: int) -> bytes:
        """SkToPk (draft §2.4): ``sk * P1``, compressed."""
        ...

    def sign(self, sk: int, message: bytes, dst: bytes) -> bytes:
        """CoreSign (draft §2.6): ``sk * hash_to_G2(message, dst)``, compressed."""
        ...

    def verify(self, pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
        """CoreVerify (draft §2.7), KeyValidate on ``pk``, subgroup check on the signature."""
        ...

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        """Aggregate (draft §2.8); raises ValueError on an empty list or a bad encoding."""
        ...

    def aggregate_verify(
        self, pks: Sequence[bytes], messages: Sequence[bytes], signature: bytes
    ) -> bool:
        """CoreAggregateVerify (draft §2.9) with the signing DST; non-empty, equal lengths."""
        ...

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        """FastAggregateVerify (draft §3.3.4); ``pks`` non-empty."""
        ...

    def batch_verify(
        self, pks: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> bool:
        """True iff every ``Verify(pks[i], messages[i], signatures[i])``; non-empty lists."""
        ...

    def key_validate(self, pk: bytes) -> bool:
        """KeyValidate (draft §2.5): decodes, lies in G1, is not the identity."""
        ...

    def is_g1_encoding(self, data: bytes) -> bool:
        """Does ``data`` decode to a point of G1 (the identity included)?"""
        ...

    def is_g2_encoding(self, data: bytes) -> bool:
        """Does ``data`` decode to a point of G2 (the identity included)?"""
        ...

    def hash_to_g2(self, message: bytes, dst: bytes) -> bytes:
        """hash_to_curve of RFC 9380 §3 (suite BLS12381G2_XMD:SHA-256_SSWU_RO_), compressed."""
        ...

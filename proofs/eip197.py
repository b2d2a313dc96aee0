"""The three BN254 precompiles of EIP-196 and EIP-197 (addresses 0x06, 0x07, 0x08) over bytes.

They decode with exactly the point decoding the Groth16 verifier uses (``proofs.bn254``), so
the published go-ethereum vectors exercise that decoding: canonical coordinates below p, the
curve equations, the G2 subgroup, and EIP-197's imaginary-first Fp2 byte order.
"""

from __future__ import annotations

from py_ecc.optimized_bn128 import add

from proofs.bn254 import (
    FIELD_BYTES,
    affine_g1,
    affine_g2,
    decode_g1_bytes,
    decode_g2_bytes,
    encode_g1_bytes,
)
from proofs.msm import g1_mul
from proofs.pairing import PairInput, multi_pairing_is_one

PAIR_BYTES = 6 * FIELD_BYTES  # G1 (64) ‖ G2 (128)
PAIRING_PAIRS_MAX = 1024


def bn256_add(data: bytes) -> bytes:
    """EIP-196 ECADD: input right-padded with zeros to 128 bytes; returns ``x ‖ y`` of the sum."""
    data = _padded(data, 4 * FIELD_BYTES)
    a = decode_g1_bytes(data[: 2 * FIELD_BYTES], "bn256Add.p1")
    b = decode_g1_bytes(data[2 * FIELD_BYTES : 4 * FIELD_BYTES], "bn256Add.p2")
    return encode_g1_bytes(add(a, b))


def bn256_scalar_mul(data: bytes) -> bytes:
    """EIP-196 ECMUL: ``x ‖ y ‖ s`` (right-padded to 96 bytes); returns ``s·(x, y)``."""
    data = _padded(data, 3 * FIELD_BYTES)
    point = decode_g1_bytes(data[: 2 * FIELD_BYTES], "bn256ScalarMul.p")
    scalar = int.from_bytes(data[2 * FIELD_BYTES : 3 * FIELD_BYTES], "big")
    return encode_g1_bytes(g1_mul(point, scalar))


def bn256_pairing(data: bytes) -> bytes:
    """EIP-197 pairing check: k × (G1 ‖ G2) → 32-byte 1 iff ``Π e(P_i, Q_i) == 1``."""
    if len(data) % PAIR_BYTES:
        raise ValueError(f"bn256Pairing: input length {len(data)} is not a multiple of 192")
    if len(data) // PAIR_BYTES > PAIRING_PAIRS_MAX:
        raise ValueError(f"bn256Pairing: more than {PAIRING_PAIRS_MAX} pairs")
    pairs: list[PairInput] = []
    for k in range(0, len(data), PAIR_BYTES):
        g1 = decode_g1_bytes(data[k : k + 2 * FIELD_BYTES], f"bn256Pairing[{k // PAIR_BYTES}].g1")
        g2 = decode_g2_bytes(
            data[k + 2 * FIELD_BYTES : k + PAIR_BYTES], f"bn256Pairing[{k // PAIR_BYTES}].g2"
        )
        pairs.append((affine_g1(g1), affine_g2(g2)))
    return int(multi_pairing_is_one(pairs)).to_bytes(FIELD_BYTES, "big")


def _padded(data: bytes, size: int) -> bytes:
    # EIP-196: missing input bytes read as zero; bytes beyond the used length are ignored.
    return data[:size].ljust(size, b"\0")

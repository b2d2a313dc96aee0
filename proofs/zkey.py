"""snarkjs Groth16 proving keys: the binary ``.zkey`` format and the in-memory ``ProvingKey``.

File layout (iden3 binary container, as snarkjs 0.7 ``zkey_utils.js`` writes it): magic
``"zkey"``, version u32, section count u32, then sections ``(type u32, size u64, bytes)``:
1 header (protocol 1 = groth16), 2 Groth16 header (n8q, q, n8r, r, nVars, nPublic,
domainSize, alpha1, beta1, beta2, gamma2, delta1, delta2), 3 IC, 4 coefficients of A and B,
5 A, 6 B1, 7 B2, 8 C (private wires only), 9 H (domainSize points), 10 contributions.
Integers are little-endian; base-field coordinates are in Montgomery form (x·2^256 mod q);
section 4 coefficients are stored as c·2^512 mod r (Montgomery form of c·2^256, which
ffjavascript's Montgomery product with a plain witness value turns back into Montgomery form).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proofs.bn254 import (
    FIELD_BYTES,
    G2_INFINITY,
    Bn254DecodeError,
    G1Point,
    G2Point,
    P,
    R,
    decode_g1_bytes,
    make_g2,
)
from proofs.groth16 import Groth16DecodeError, VerificationKey

ZKEY_MAGIC = b"zkey"
ZKEY_BYTES_MAX = 1 << 31
PROTOCOL_GROTH16 = 1
DOMAIN_SIZE_MAX = 1 << 27  # the prover also needs the 2n-th root of unity (2-adicity 28)
MATRIX_A, MATRIX_B = 0, 1
_MONT_INV_Q = pow(pow(2, 256, P), -1, P)
_MONT2_INV_R = pow(pow(2, 512, R), -1, R)


@dataclass(frozen=True)
class ProvingKey:
    """Everything the snarkjs Groth16 prover reads from a zkey.

    ``coeffs`` holds ``(matrix, constraint, wire, value)`` for A (0) and B (1), including the
    ``nPublic + 1`` extra rows ``A[n_constraints + i][i] = 1`` snarkjs adds for the public wires.
    """

    n_vars: int
    n_public: int
    domain_size: int
    alpha_1: G1Point
    beta_1: G1Point
    beta_2: G2Point
    gamma_2: G2Point
    delta_1: G1Point
    delta_2: G2Point
    ic: tuple[G1Point, ...]
    coeffs: tuple[tuple[int, int, int, int], ...]
    a_1: tuple[G1Point, ...]
    b_1: tuple[G1Point, ...]
    b_2: tuple[G2Point, ...]
    c_1: tuple[G1Point, ...]
    h_1: tuple[G1Point, ...]

    def verification_key(self) -> VerificationKey:
        """The matching verification key (what ``snarkjs zkey export verificationkey`` gives)."""
        return VerificationKey(
            n_public=self.n_public,
            alpha_1=self.alpha_1,
            beta_2=self.beta_2,
            gamma_2=self.gamma_2,
            delta_2=self.delta_2,
            ic=self.ic,
        )


def decode_zkey(data: bytes) -> ProvingKey:
    """Parse a snarkjs Groth16 ``.zkey``; malformed input raises ``Groth16DecodeError``.

    Points are checked to be on their curves; the header's G2 points are also checked for the
    subgroup. B2 entries are not (a bad proving key can only make its owner's proofs fail).
    """
    try:
        return _decode_zkey(data)
    except Groth16DecodeError:
        raise
    except (Bn254DecodeError, struct.error) as exc:
        raise Groth16DecodeError(f"zkey: {exc}") from exc


def _decode_zkey(data: bytes) -> ProvingKey:
    if len(data) > ZKEY_BYTES_MAX or data[:4] != ZKEY_MAGIC:
        raise Groth16DecodeError("zkey: not a zkey file (bad magic)")
    sections = _sections(data)
    header = _reader(data, sections, 1)
    if header.u32() != PROTOCOL_GROTH16:
        raise Groth16DecodeError("zkey: not a Groth16 key")
    h = _reader(data, sections, 2)
    n8q = h.u32()
    q = h.int_le(n8q)
    n8r = h.u32()
    r = h.int_le(n8r)
    if (n8q, q, n8r, r) != (FIELD_BYTES, P, FIELD_BYTES, R):
        raise Groth16DecodeError("zkey: not a BN254 key")
    n_vars, n_public, domain_size = h.u32(), h.u32(), h.u32()
    if not 2 <= domain_size <= DOMAIN_SIZE_MAX or domain_size & (domain_size - 1):
        raise Groth16DecodeError("zkey: domain size is not a power of two in range")
    if not n_public < n_vars:
        raise Groth16DecodeError("zkey: inconsistent header sizes")
    alpha_1, beta_1 = h.g1("alpha1"), h.g1("beta1")
    beta_2, gamma_2 = h.g2("beta2", subgroup=True), h.g2("gamma2", subgroup=True)
    delta_1, delta_2 = h.g1("delta1"), h.g2("delta2", subgroup=True)
    return ProvingKey(
        n_vars=n_vars,
        n_public=n_public,
        domain_size=domain_size,
        alpha_1=alpha_1,
        beta_1=beta_1,
        beta_2=beta_2,
        gamma_2=gamma_2,
        delta_1=delta_1,
        delta_2=delta_2,
        ic=_reader(data, sections, 3).g1_list(n_public + 1, "IC"),
        coeffs=_decode_coeffs(_reader(data, sections, 4), n_vars, domain_size),
        a_1=_reader(data, sections, 5).g1_list(n_vars, "A"),
        b_1=_reader(data, sections, 6).g1_list(n_vars, "B1"),
        b_2=_reader(data, sections, 7).g2_list(n_vars, "B2"),
        c_1=_reader(data, sections, 8).g1_list(n_vars - n_public - 1, "C"),
        h_1=_reader(data, sections, 9).g1_list(domain_size, "H"),
    )


def _decode_coeffs(
    reader: _Reader, n_vars: int, domain_size: int
) -> tuple[tuple[int, int, int, int], ...]:
    count = reader.u32()
    coeffs = []
    for k in range(count):
        matrix, constraint, wire = reader.u32(), reader.u32(), reader.u32()
        value = reader.int_le(FIELD_BYTES)
        if matrix not in (MATRIX_A, MATRIX_B) or constraint >= domain_size or wire >= n_vars:
            raise Groth16DecodeError(f"zkey.coeffs[{k}]: index out of range")
        if value >= R:
            raise Groth16DecodeError(f"zkey.coeffs[{k}]: value is not below r")
        coeffs.append((matrix, constraint, wire, value * _MONT2_INV_R % R))
    return tuple(coeffs)


def _sections(data: bytes) -> dict[int, tuple[int, int]]:
    (_version, count) = struct.unpack_from("<II", data, 4)
    offset = 12
    sections: dict[int, tuple[int, int]] = {}
    for _ in range(count):
        kind, size = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if offset + size > len(data) or kind in sections:
            raise Groth16DecodeError(f"zkey: section {kind} is truncated or repeated")
        sections[kind] = (offset, size)
        offset += size
    return sections


def _reader(data: bytes, sections: dict[int, tuple[int, int]], kind: int) -> _Reader:
    if kind not in sections:
        raise Groth16DecodeError(f"zkey: section {kind} is missing")
    start, size = sections[kind]
    return _Reader(data[start : start + size], kind)


class _Reader:
    """Sequential little-endian reads from one section, with bounds checks."""

    def __init__(self, buf: bytes, kind: int) -> None:
        self._buf = buf
        self._pos = 0
        self._kind = kind

    def take(self, size: int) -> bytes:
        if self._pos + size > len(self._buf):
            raise Groth16DecodeError(f"zkey: section {self._kind} is too short")
        chunk = self._buf[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def int_le(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def fq(self, field: str) -> int:
        value = self.int_le(FIELD_BYTES)
        if value >= P:
            raise Groth16DecodeError(f"zkey.{field}: coordinate is not below q")
        return value * _MONT_INV_Q % P

    def g1(self, field: str) -> G1Point:
        x, y = self.fq(field), self.fq(field)
        return decode_g1_bytes(x.to_bytes(32, "big") + y.to_bytes(32, "big"), f"zkey.{field}")

    def g2(self, field: str, subgroup: bool = False) -> G2Point:
        x = (self.fq(field), self.fq(field))
        y = (self.fq(field), self.fq(field))
        if x == (0, 0) and y == (0, 0):
            return G2_INFINITY
        return make_g2(x, y, f"zkey.{field}", check_subgroup=subgroup)

    def g1_list(self, count: int, field: str) -> tuple[G1Point, ...]:
        return tuple(self.g1(f"{field}[{i}]") for i in range(count))

    def g2_list(self, count: int, field: str) -> tuple[G2Point, ...]:
        return tuple(self.g2(f"{field}[{i}]") for i in range(count))

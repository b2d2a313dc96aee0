"""circom's binary ``.r1cs`` and snarkjs' binary ``.wtns`` files (iden3 binary container).

Container: 4-byte magic, version u32, section count u32, then sections
``(type u32, size u64, bytes)`` in any order. Integers are little-endian and field elements
are plain (not Montgomery) n8-byte integers.
- ``.r1cs`` (iden3/r1csfile): section 1 header (n8, prime, nWires, nPubOut, nPubIn, nPrvIn,
  nLabels u64, mConstraints); section 2 constraints, each A, B, C as
  ``count u32, count × (wire u32, value)``; section 3 wire → label map (not needed here).
- ``.wtns`` (iden3/binfileutils, version 2): section 1 (n8, prime, nWitness); section 2 values.
"""

from __future__ import annotations

import struct

from proofs.bn254 import FIELD_BYTES, R
from proofs.groth16 import Groth16DecodeError
from proofs.r1cs import CONSTRAINTS_MAX, R1CS, WIRES_MAX, Constraint

R1CS_MAGIC = b"r1cs"
WTNS_MAGIC = b"wtns"
BINARY_BYTES_MAX = 1 << 31


def is_r1cs_binary(data: bytes) -> bool:
    """True if ``data`` starts with the ``.r1cs`` magic."""
    return data[:4] == R1CS_MAGIC


def is_wtns_binary(data: bytes) -> bool:
    """True if ``data`` starts with the ``.wtns`` magic."""
    return data[:4] == WTNS_MAGIC


def decode_r1cs_binary(data: bytes) -> R1CS:
    """Parse a circom ``.r1cs`` file over the BN254 scalar field."""
    try:
        sections = _sections(data, R1CS_MAGIC, "r1cs")
        header = _section(data, sections, 1, "r1cs")
        _check_field(header, "r1cs")
        offset = 4 + FIELD_BYTES
        n_wires, n_out, n_pub, n_prv = struct.unpack_from("<IIII", header, offset)
        (_labels, n_constraints) = struct.unpack_from("<QI", header, offset + 16)
        if n_wires > WIRES_MAX or n_constraints > CONSTRAINTS_MAX:
            raise Groth16DecodeError("r1cs: too many wires or constraints")
        if n_out + n_pub + n_prv >= n_wires:
            raise Groth16DecodeError("r1cs: fewer wires than the constant plus the signals")
        body = _section(data, sections, 2, "r1cs")
        constraints, pos = [], 0
        for k in range(n_constraints):
            lcs = []
            for _ in range(3):
                lc, pos = _read_lc(body, pos, n_wires, f"r1cs.constraints[{k}]")
                lcs.append(lc)
            constraints.append((lcs[0], lcs[1], lcs[2]))
        if pos != len(body):
            raise Groth16DecodeError("r1cs: trailing bytes after the constraints")
    except struct.error as exc:
        raise Groth16DecodeError(f"r1cs: truncated ({exc})") from exc
    typed: tuple[Constraint, ...] = tuple(constraints)
    return R1CS(n_wires, n_out, n_pub, n_prv, typed)


def decode_wtns(data: bytes) -> tuple[int, ...]:
    """Parse a snarkjs ``.wtns`` witness file (values must be < r, wire 0 must be 1)."""
    try:
        sections = _sections(data, WTNS_MAGIC, "wtns")
        header = _section(data, sections, 1, "wtns")
        _check_field(header, "wtns")
        (count,) = struct.unpack_from("<I", header, 4 + FIELD_BYTES)
    except struct.error as exc:
        raise Groth16DecodeError(f"wtns: truncated ({exc})") from exc
    body = _section(data, sections, 2, "wtns")
    if count == 0 or count > WIRES_MAX or len(body) != count * FIELD_BYTES:
        raise Groth16DecodeError("wtns: value section does not hold nWitness values")
    values = tuple(
        int.from_bytes(body[i : i + FIELD_BYTES], "little")
        for i in range(0, len(body), FIELD_BYTES)
    )
    if any(v >= R for v in values):
        raise Groth16DecodeError("wtns: a value is not below r")
    if values[0] != 1:
        raise Groth16DecodeError("wtns: the constant wire must be 1")
    return values


def _read_lc(body: bytes, pos: int, n_wires: int, field: str) -> tuple[dict[int, int], int]:
    (count,) = struct.unpack_from("<I", body, pos)
    pos += 4
    lc: dict[int, int] = {}
    for _ in range(count):
        if pos + 4 + FIELD_BYTES > len(body):
            raise Groth16DecodeError(f"{field}: truncated")
        (wire,) = struct.unpack_from("<I", body, pos)
        value = int.from_bytes(body[pos + 4 : pos + 4 + FIELD_BYTES], "little")
        if wire >= n_wires or value >= R:
            raise Groth16DecodeError(f"{field}: wire or coefficient out of range")
        lc[wire] = value
        pos += 4 + FIELD_BYTES
    return lc, pos


def _check_field(header: bytes, name: str) -> None:
    (n8,) = struct.unpack_from("<I", header, 0)
    prime = int.from_bytes(header[4 : 4 + n8], "little")
    if n8 != FIELD_BYTES or prime != R:
        raise Groth16DecodeError(f"{name}: not over the BN254 scalar field")


def _sections(data: bytes, magic: bytes, name: str) -> dict[int, tuple[int, int]]:
    if len(data) > BINARY_BYTES_MAX or data[:4] != magic:
        raise Groth16DecodeError(f"{name}: bad magic (not a .{name} file)")
    (_version, count) = struct.unpack_from("<II", data, 4)
    offset, sections = 12, {}
    for _ in range(count):
        kind, size = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if offset + size > len(data) or kind in sections:
            raise Groth16DecodeError(f"{name}: section {kind} is truncated or repeated")
        sections[kind] = (offset, size)
        offset += size
    return sections


def _section(data: bytes, sections: dict[int, tuple[int, int]], kind: int, name: str) -> bytes:
    if kind not in sections:
        raise Groth16DecodeError(f"{name}: section {kind} is missing")
    start, size = sections[kind]
    return data[start : start + size]

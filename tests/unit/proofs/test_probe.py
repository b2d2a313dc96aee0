"""The probe mathematics (proofs.probe) against independent oracles: SplitMix64's published
first output, operands written again in plain Python from the module docstring, products in
exact integers; commitments and openings with each tampering caught by its reason code."""

from __future__ import annotations

import hashlib
import struct

import msgspec
import numpy as np
import pytest

from proofs import merkle, probe

SEED = hashlib.sha256(b"probe seed").digest()
KEY = hashlib.sha256(b"read key").digest()
U64 = 2**64 - 1
GAMMA = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    """splitmix64.c's output function in Python integers."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
    return z ^ (z >> 31)


def _line(seed: bytes, matrix: str, index: int, k: int) -> list[int]:
    """Row ``index`` of A or column ``index`` of B, as the module docstring defines them."""
    digest = hashlib.sha256(probe.OPERAND_TAG + struct.pack(">I", len(seed)) + seed).digest()
    words = struct.unpack("<4Q", digest)
    w_a, w_b = words[:2] if matrix == "A" else words[2:]
    state = _mix(_mix((w_a + index * GAMMA) & U64) ^ w_b)
    entries: list[int] = []
    for block in range(k // 8):
        value = _mix((state + (block + 1) * GAMMA) & U64)
        entries += [b - 256 if b > 127 else b for b in value.to_bytes(8, "little")]
    return entries


def _exact_product(seed: bytes, n: int, m: int, k: int) -> list[list[int]]:
    a = [_line(seed, "A", i, k) for i in range(n)]
    b = [_line(seed, "B", j, k) for j in range(m)]
    return [[sum(x * y for x, y in zip(row, col, strict=True)) for col in b] for row in a]


def _commit(c: np.ndarray, key: bytes) -> tuple[list[bytes], bytes]:
    rows = [probe.encode_row(row) for row in c]
    return rows, probe.compute_rows_root(probe.compute_row_leaves(key, rows))


def test_splitmix64_published_first_output() -> None:
    # splitmix64.c seeded with 0: the first output is mix64(γ) = 0xE220A8397B1DCDAF.
    assert _mix(GAMMA) == 0xE220A8397B1DCDAF
    assert int(probe._mix64(np.array([GAMMA], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF


def test_operands_follow_the_docstring() -> None:
    a = probe.derive_a_rows(SEED, [0, 7, 1000], 48)
    b = probe.derive_b_cols(SEED, [3, 0], 48)
    assert a.dtype == np.int8 and a.shape == (3, 48) and b.shape == (48, 2)
    assert [list(map(int, row)) for row in a] == [_line(SEED, "A", i, 48) for i in (0, 7, 1000)]
    assert [list(map(int, b[:, c])) for c in range(2)] == [_line(SEED, "B", j, 48) for j in (3, 0)]
    assert np.any(a < 0) and np.any(a > 0)  # both signs of int8 occur


def test_a_row_is_derived_alone() -> None:
    whole = probe.derive_a_rows(SEED, np.arange(12), 64)
    assert np.array_equal(probe.derive_a_rows(SEED, [11], 64)[0], whole[11])
    assert not np.array_equal(whole, probe.derive_a_rows(SEED[::-1], np.arange(12), 64))
    assert not np.array_equal(whole[:, :64], probe.derive_b_cols(SEED, np.arange(12), 64).T)


@pytest.mark.parametrize("k", [0, 4, 60])
def test_k_must_be_a_positive_multiple_of_8(k: int) -> None:
    with pytest.raises(ValueError):
        probe.derive_a_rows(SEED, [0], k)


def test_product_is_exact_mod_2_32() -> None:
    n, m, k = 5, 6, 64
    c = probe.compute_product(SEED, n, m, k)
    exact = _exact_product(SEED, n, m, k)
    assert c.dtype == np.uint32
    assert [[int(v) for v in row] for row in c] == [[v % 2**32 for v in row] for row in exact]
    assert any(v < 0 for row in exact for v in row)  # negative sums wrap to large uint32
    assert all(probe.compute_entry(SEED, i, j, k) == exact[i][j] % 2**32 for i in range(n)
               for j in range(m))  # fmt: skip


@pytest.mark.parametrize("k", [(1 << 18) - 8, 1 << 18, (1 << 18) + 8])
def test_entries_across_the_chunk_bound(k: int) -> None:
    a = probe.derive_a_rows(SEED, [2], k)[0].astype(np.int64)
    b = probe.derive_b_cols(SEED, [9, 4], k).astype(np.int64)
    expected = [int(np.dot(a, b[:, c])) % 2**32 for c in range(2)]
    assert probe.compute_entries(SEED, 2, [9, 4], k) == expected


def test_product_across_its_chunk_bound() -> None:
    k = (1 << 20) + 64
    c = probe.compute_product(SEED, 2, 2, k)
    assert [[int(v) for v in row] for row in c] == [
        [probe.compute_entry(SEED, i, j, k) for j in range(2)] for i in range(2)
    ]


def test_leaf_is_the_rfc6962_leaf_of_the_tagged_row() -> None:
    row = probe.encode_row([1, 2**32 - 1])
    assert row == b"\x01\x00\x00\x00\xff\xff\xff\xff"
    data = probe.ROW_TAG + struct.pack(">I", 32) + KEY + struct.pack(">Q", 5) + row
    assert probe.compute_row_leaf(KEY, 5, row) == merkle.leaf_hash(data)
    leaves = [probe.compute_row_leaf(KEY, i, row) for i in range(3)]
    assert probe.compute_rows_root(leaves) == merkle.root_from_hashes(leaves)


def _check(opening: probe.RowOpening, root: bytes, n: int, **overrides: object) -> str:
    arguments: dict[str, object] = {
        "seed": SEED, "key": SEED, "root": root, "n_leaves": n, "m": 6, "k": 64,
        "opening": opening, "columns": [0, 2, 5],
    }  # fmt: skip
    arguments.update(overrides)
    return probe.check_opening(**arguments)  # type: ignore[arg-type]


def test_honest_openings_pass() -> None:
    c = probe.compute_product(SEED, 9, 6, 64)
    rows, root = _commit(c, SEED)
    openings = probe.open_rows(SEED, rows, [0, 4, 8])
    assert [o.index for o in openings] == [0, 4, 8]
    assert all(_check(o, root, 9) == probe.OK for o in openings)
    assert all(_check(o, root, 9, columns=list(range(6))) == probe.OK for o in openings)
    leaves = probe.compute_row_leaves(SEED, rows)
    assert probe.open_rows(SEED, rows, [4], leaves=leaves) == openings[1:2]


def test_a_wrong_entry_is_caught() -> None:
    c = probe.compute_product(SEED, 9, 6, 64)
    c[4, 2] += 1  # the node committed to a wrong product
    rows, root = _commit(c, SEED)
    (opening,) = probe.open_rows(SEED, rows, [4])
    assert _check(opening, root, 9) == probe.OPENING_ENTRY_WRONG
    assert _check(opening, root, 9, columns=[0, 1, 3]) == probe.OK  # unchecked: not seen


def test_tampering_is_caught_by_its_reason() -> None:
    c = probe.compute_product(SEED, 9, 6, 64)
    rows, root = _commit(c, SEED)
    (opening,) = probe.open_rows(SEED, rows, [3])
    bad_path = [opening.path[0][::-1], *opening.path[1:]]
    changed_row = probe.encode_row(c[3] + np.uint32(1))
    cases = {
        probe.OPENING_PATH_INVALID: [
            _check(probe.RowOpening(3, opening.row, bad_path), root, 9),
            _check(probe.RowOpening(3, changed_row, opening.path), root, 9),
            _check(probe.RowOpening(3, opening.row, opening.path[:-1]), root, 9),
            _check(opening, root, 9, key=KEY),  # committed under another key
            _check(probe.RowOpening(2, opening.row, opening.path), root, 9),
        ],
        probe.OPENING_ROW_SIZE: [
            _check(probe.RowOpening(3, opening.row[:-4], opening.path), root, 9),
            _check(probe.RowOpening(3, opening.row + b"\x00" * 4, opening.path), root, 9),
        ],
        probe.OPENING_INDEX_UNEXPECTED: [
            _check(probe.RowOpening(9, opening.row, opening.path), root, 9),
            _check(probe.RowOpening(-1, opening.row, opening.path), root, 9),
        ],
    }
    assert {reason: set(found) for reason, found in cases.items()} == {
        reason: {reason} for reason in cases
    }


def test_memory_read_leaves_hold_the_chosen_rows() -> None:
    memory_n, read_rows = 40, 7
    c = probe.compute_product(SEED, memory_n, 6, 64)
    chosen = probe.choose_rows(KEY, memory_n, read_rows)
    rows, root = _commit(c[chosen], KEY)
    openings = probe.open_rows(KEY, rows, range(read_rows))
    assert all(_check(o, root, read_rows, key=KEY, rows=chosen) == probe.OK for o in openings)
    # read as if leaf p held row p, the entries are another row's: caught
    moved = [o for o in openings if chosen[o.index] != o.index]
    assert moved and all(
        _check(o, root, read_rows, key=KEY) == probe.OPENING_ENTRY_WRONG for o in moved
    )


def test_choices_are_distinct_sorted_and_bounded() -> None:
    rows = probe.choose_rows(b"randomness", 1000, 30)
    assert len(rows) == len(set(rows)) == 30 and rows == sorted(rows)
    assert all(0 <= r < 1000 for r in rows)
    assert probe.choose_rows(b"randomness", 1000, 30) == rows
    assert probe.choose_rows(b"other", 1000, 30) != rows
    assert probe.choose_rows(b"r", 5, 5) == probe.choose_rows(b"r", 5, 9) == [0, 1, 2, 3, 4]
    assert probe.choose_rows(b"r", 5, 0) == [] and probe.choose_rows(b"r", 0, 3) == []
    assert probe.choose_columns(b"r", 1, 64, 4) != probe.choose_columns(b"r", 2, 64, 4)
    assert len(set(probe.choose_columns(b"r", 1, 64, 64))) == 64


def test_choices_cover_the_range() -> None:
    seen = {r for t in range(200) for r in probe.choose_rows(bytes([t]), 10, 2)}
    assert seen == set(range(10))


def test_opening_round_trips() -> None:
    opening = probe.RowOpening(index=3, row=b"\x00" * 8, path=[b"\x01" * 32])
    encoded = msgspec.msgpack.encode(opening)
    assert msgspec.msgpack.decode(encoded, type=probe.RowOpening) == opening
    too_long = msgspec.msgpack.encode(probe.RowOpening(0, b"\x00" * (4 * probe.SIDE_MAX + 1), []))
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(too_long, type=probe.RowOpening)

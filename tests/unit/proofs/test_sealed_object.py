"""Sealed objects (STREAM over ChaCha20-Poly1305) and wrapped job keys: round trips, exact
sizes, and every tamper, reorder, truncation and extension refused."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import sealed_object as so
from proofs.encryption_keys import derive_encryption_keypair_from_seed

KEY = bytes(range(32))
CHUNK = so.CHUNK_BYTES_MIN  # small records so that tests cross many boundaries


def _records(sealed: bytes, chunk: int = CHUNK) -> list[bytes]:
    body = sealed[so.HEADER_BYTES :]
    size = chunk + so.TAG_BYTES
    return [body[i : i + size] for i in range(0, len(body), size)]


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=60, deadline=None)
@given(
    plain=st.binary(max_size=5 * CHUNK),
    in_cuts=st.lists(st.integers(min_value=0), max_size=6),
    out_cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_round_trip_for_any_piece_sizes(
    plain: bytes, in_cuts: list[int], out_cuts: list[int]
) -> None:
    sealed = b"".join(so.seal_chunks(KEY, _split(plain, in_cuts), chunk_bytes=CHUNK))
    assert len(sealed) == so.sealed_size(len(plain), CHUNK)
    assert b"".join(so.open_chunks(KEY, _split(sealed, out_cuts))) == plain


@pytest.mark.parametrize(
    ("plain_size", "records"),
    [(0, 1), (1, 1), (CHUNK - 1, 1), (CHUNK, 1), (CHUNK + 1, 2), (3 * CHUNK, 3)],
)
def test_sealed_size_is_exact_at_the_record_boundaries(plain_size: int, records: int) -> None:
    sealed = so.seal_bytes(KEY, b"\x5a" * plain_size, chunk_bytes=CHUNK)
    assert len(sealed) == so.HEADER_BYTES + plain_size + records * so.TAG_BYTES
    assert so.sealed_size(plain_size, CHUNK) == len(sealed)
    assert so.sealed_overhead(plain_size, CHUNK) == len(sealed) - plain_size


def test_default_overhead_of_a_512_square_float32_matrix() -> None:
    plain = 512 * 512 * 4
    assert so.sealed_overhead(plain) == 272  # header 16 + 16 records of 64 KiB x tag 16


@settings(max_examples=80, deadline=None)
@given(
    plain=st.binary(min_size=0, max_size=3 * CHUNK),
    where=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_any_single_byte_flip_is_detected(plain: bytes, where: int, bit: int) -> None:
    sealed = bytearray(so.seal_bytes(KEY, plain, chunk_bytes=CHUNK))
    sealed[where % len(sealed)] ^= 1 << bit
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(KEY, bytes(sealed))


@settings(max_examples=40, deadline=None)
@given(plain=st.binary(min_size=1, max_size=5 * CHUNK), keep=st.integers(min_value=0))
def test_truncation_at_any_record_boundary_is_detected(plain: bytes, keep: int) -> None:
    sealed = so.seal_bytes(KEY, plain, chunk_bytes=CHUNK)
    records = _records(sealed)
    kept = keep % len(records)  # 0..len-1 records: always strictly fewer than all
    truncated = sealed[: so.HEADER_BYTES] + b"".join(records[:kept])
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(KEY, truncated)


@settings(max_examples=40, deadline=None)
@given(plain=st.binary(min_size=1, max_size=3 * CHUNK), cut=st.integers(min_value=1))
def test_truncation_at_any_byte_is_detected(plain: bytes, cut: int) -> None:
    sealed = so.seal_bytes(KEY, plain, chunk_bytes=CHUNK)
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(KEY, sealed[: len(sealed) - 1 - (cut % len(sealed))])


def test_reordered_records_are_detected() -> None:
    sealed = so.seal_bytes(KEY, bytes(3 * CHUNK + 5), chunk_bytes=CHUNK)
    first, second, *rest = _records(sealed)
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(KEY, sealed[: so.HEADER_BYTES] + second + first + b"".join(rest))


@pytest.mark.parametrize("extra", [b"\x00", bytes(so.TAG_BYTES), bytes(CHUNK + so.TAG_BYTES)])
def test_extension_past_the_final_record_is_detected(extra: bytes) -> None:
    sealed = so.seal_bytes(KEY, b"payload" * 400, chunk_bytes=CHUNK)
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(KEY, sealed + extra)


def test_appending_a_record_of_another_object_under_the_same_key_is_detected() -> None:
    one = so.seal_bytes(KEY, bytes(2 * CHUNK), chunk_bytes=CHUNK)
    other = so.seal_bytes(KEY, bytes(2 * CHUNK), chunk_bytes=CHUNK)
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(KEY, one[: so.HEADER_BYTES] + _records(one)[0] + _records(other)[1])


def test_another_key_does_not_open() -> None:
    sealed = so.seal_bytes(KEY, b"secret")
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(bytes(32), sealed)


@pytest.mark.parametrize(
    "sealed",
    [b"", b"FLSO", b"XXXX" + bytes(12), so.MAGIC + b"\x01" + (2**31).to_bytes(4, "big") + bytes(7)],
    ids=["empty", "short-header", "bad-magic", "chunk-too-large"],
)
def test_malformed_headers_are_refused(sealed: bytes) -> None:
    with pytest.raises(so.SealedObjectError):
        so.open_bytes(KEY, sealed)


def test_async_variants_round_trip() -> None:
    plain = bytes(range(256)) * 20

    async def source(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 700):
            yield data[i : i + 700]

    async def run() -> bytes:
        sealed = b"".join(
            [r async for r in so.seal_chunks_async(KEY, source(plain), chunk_bytes=CHUNK)]
        )
        assert len(sealed) == so.sealed_size(len(plain), CHUNK)
        return b"".join([p async for p in so.open_chunks_async(KEY, source(sealed))])

    assert asyncio.run(run()) == plain


def test_chunk_size_bounds() -> None:
    for bad in (so.CHUNK_BYTES_MIN - 1, so.CHUNK_BYTES_MAX + 1):
        with pytest.raises(ValueError):
            so.seal_bytes(KEY, b"x", chunk_bytes=bad)
    for good in (so.CHUNK_BYTES_MIN, so.CHUNK_BYTES_MAX):
        assert so.open_bytes(KEY, so.seal_bytes(KEY, b"x", chunk_bytes=good)) == b"x"


# --- wrapped keys -----------------------------------------------------------------------

NODE_PRIVATE, NODE_PUBLIC = derive_encryption_keypair_from_seed(b"\x01" * 32)
OTHER_PRIVATE, _ = derive_encryption_keypair_from_seed(b"\x02" * 32)


def test_wrap_then_unwrap() -> None:
    data_key = so.new_data_key()
    wrapped = so.wrap_key(data_key, NODE_PUBLIC, job_id="job-1", purpose="inputs")
    assert len(wrapped) == so.WRAPPED_KEY_BYTES
    assert so.unwrap_key(wrapped, NODE_PRIVATE, job_id="job-1", purpose="inputs") == data_key


@pytest.mark.parametrize(
    ("private", "job_id", "purpose"),
    [
        (OTHER_PRIVATE, "job-1", "inputs"),
        (NODE_PRIVATE, "job-2", "inputs"),
        (NODE_PRIVATE, "job-1", "result"),
    ],
    ids=["other-recipient", "other-job", "other-purpose"],
)
def test_unwrap_refuses_another_recipient_job_or_purpose(
    private: bytes, job_id: str, purpose: str
) -> None:
    wrapped = so.wrap_key(so.new_data_key(), NODE_PUBLIC, job_id="job-1", purpose="inputs")
    with pytest.raises(so.SealedObjectError):
        so.unwrap_key(wrapped, private, job_id=job_id, purpose=purpose)


@settings(max_examples=40, deadline=None)
@given(where=st.integers(0, so.WRAPPED_KEY_BYTES - 1), bit=st.integers(0, 7))
def test_unwrap_refuses_any_flipped_bit(where: int, bit: int) -> None:
    wrapped = bytearray(so.wrap_key(so.new_data_key(), NODE_PUBLIC, job_id="j", purpose="result"))
    wrapped[where] ^= 1 << bit
    with pytest.raises(so.SealedObjectError):
        so.unwrap_key(bytes(wrapped), NODE_PRIVATE, job_id="j", purpose="result")


def test_wrap_info_is_unambiguous() -> None:
    assert so.compute_wrap_info("ab", "inputs") != so.compute_wrap_info("a", "inputs")
    with pytest.raises(ValueError):
        so.compute_wrap_info("job", "weights")

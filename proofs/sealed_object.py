"""Sealed objects: a job's input or result encrypted in chunks under a 32-byte data key, and
the data key wrapped (HPKE) to each reader.

Format (STREAM, Hoang, Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption and
its Nonce-Reuse Misuse-Resistance", CRYPTO 2015, section 7): a 16-byte header, then records.

    header = MAGIC (4) || VERSION (1) || chunk_bytes (u32, big-endian) || nonce_prefix (7)
    record_i = ChaCha20-Poly1305(data_key, nonce_i, chunk_i, aad=header)   # chunk + 16-byte tag
    nonce_i = nonce_prefix || u32 i (big-endian) || last flag (0x01 on the final record, else 0)

Every record but the last carries exactly ``chunk_bytes`` of plaintext; the last carries
1..chunk_bytes (0 only for an empty object, which is one empty final record). The counter stops
reordering, the last flag stops truncation at a record boundary and extension past the end,
the header as AAD stops a header swap. The format is online: a reader gets each chunk as soon
as it is authenticated, and a truncated stream raises only at its end, so a reader must
discard what it wrote when open_chunks raises (write to a temporary file, rename on success).

A data key seals only the few objects of one job and one purpose (its inputs, or its result),
each under a fresh random 56-bit nonce prefix, so prefixes do not repeat under one key.
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from proofs import hpke

MAGIC: Final = b"FLSO"
VERSION: Final = 1
NONCE_PREFIX_BYTES: Final = 7
HEADER_BYTES: Final = len(MAGIC) + 1 + 4 + NONCE_PREFIX_BYTES  # 16
TAG_BYTES: Final = 16
DATA_KEY_BYTES: Final = 32
CHUNK_BYTES_DEFAULT: Final = 64 * 1024
CHUNK_BYTES_MIN: Final = 1024
# A reader buffers one record: the bound keeps a hostile header from making it buffer more.
CHUNK_BYTES_MAX: Final = 4 * 1024 * 1024
RECORDS_MAX: Final = 2**32  # the counter is 32 bits
WRAP_INFO_TAG: Final = b"flopledger/job-key/v1"
WRAPPED_KEY_BYTES: Final = hpke.N_ENC + DATA_KEY_BYTES + hpke.N_T  # 80
JOB_ID_BYTES_MAX: Final = 256

KeyPurpose = Literal["inputs", "result"]
KEY_PURPOSES: Final[tuple[str, ...]] = ("inputs", "result")


class SealedObjectError(ValueError):
    """A sealed object or wrapped key does not open: tampered, reordered, truncated, extended,
    malformed, or sealed under another key."""


def new_data_key() -> bytes:
    """A fresh random data key."""
    return os.urandom(DATA_KEY_BYTES)


def sealed_size(plain_size: int, chunk_bytes: int = CHUNK_BYTES_DEFAULT) -> int:
    """The exact byte size of the sealed form of ``plain_size`` plaintext bytes."""
    return plain_size + sealed_overhead(plain_size, chunk_bytes)


def sealed_overhead(plain_size: int, chunk_bytes: int = CHUNK_BYTES_DEFAULT) -> int:
    """Header plus one tag per record."""
    if plain_size < 0:
        raise ValueError("plain_size must be >= 0")
    _check_chunk_bytes(chunk_bytes)
    records = max(1, -(-plain_size // chunk_bytes))
    return HEADER_BYTES + TAG_BYTES * records


def seal_chunks(
    data_key: bytes,
    chunks: Iterable[bytes],
    *,
    chunk_bytes: int = CHUNK_BYTES_DEFAULT,
    nonce_prefix: bytes | None = None,
) -> Iterator[bytes]:
    """The sealed object, header first, then one record per ``chunk_bytes`` of plaintext; the
    input pieces may have any sizes. ``nonce_prefix`` is for tests; by default it is random."""
    sealer = _Sealer(data_key, chunk_bytes, nonce_prefix)
    yield sealer.header
    for piece in chunks:
        yield from sealer.feed(piece)
    yield sealer.finish()


def open_chunks(data_key: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The plaintext of a sealed object given as pieces of any sizes; raises SealedObjectError
    on any tamper, reorder, truncation or extension (a truncation only at the end)."""
    opener = _Opener(data_key)
    for piece in chunks:
        yield from opener.feed(piece)
    yield from opener.finish()


async def seal_chunks_async(
    data_key: bytes,
    chunks: AsyncIterable[bytes],
    *,
    chunk_bytes: int = CHUNK_BYTES_DEFAULT,
    nonce_prefix: bytes | None = None,
) -> AsyncIterator[bytes]:
    """seal_chunks over an async source (an upload streamed from disk or the network)."""
    sealer = _Sealer(data_key, chunk_bytes, nonce_prefix)
    yield sealer.header
    async for piece in chunks:
        for record in sealer.feed(piece):
            yield record
    yield sealer.finish()


async def open_chunks_async(data_key: bytes, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """open_chunks over an async source (``ArtifactStore.get_stream``)."""
    opener = _Opener(data_key)
    async for piece in chunks:
        for plain in opener.feed(piece):
            yield plain
    for plain in opener.finish():
        yield plain


def seal_bytes(
    data_key: bytes, plaintext: bytes, *, chunk_bytes: int = CHUNK_BYTES_DEFAULT
) -> bytes:
    """Seal an object held in memory."""
    return b"".join(seal_chunks(data_key, [plaintext], chunk_bytes=chunk_bytes))


def open_bytes(data_key: bytes, sealed: bytes) -> bytes:
    """Open an object held in memory."""
    return b"".join(open_chunks(data_key, [sealed]))


def is_sealed_object(prefix: bytes) -> bool:
    """True when ``prefix`` (the first bytes of an object) starts like a sealed object."""
    return prefix[: len(MAGIC) + 1] == MAGIC + bytes([VERSION])


def compute_wrap_info(job_id: str, purpose: str) -> bytes:
    """HPKE info for a wrapped job key: the tag, the job id and the purpose, length-prefixed,
    so a key wrapped for one job or purpose does not unwrap as another's."""
    if purpose not in KEY_PURPOSES:
        raise ValueError(f"purpose must be one of {KEY_PURPOSES}")
    job = job_id.encode("utf-8")
    if not 0 < len(job) <= JOB_ID_BYTES_MAX:
        raise ValueError(f"job id must be 1..{JOB_ID_BYTES_MAX} bytes")
    tag = purpose.encode("ascii")
    return WRAP_INFO_TAG + struct.pack(">H", len(job)) + job + bytes([len(tag)]) + tag


def wrap_key(data_key: bytes, recipient_public: bytes, *, job_id: str, purpose: str) -> bytes:
    """HPKE-seal ``data_key`` to ``recipient_public`` (RFC 9180 base mode): enc || ct, 80 bytes."""
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"a data key is {DATA_KEY_BYTES} bytes")
    enc, ct = hpke.seal(recipient_public, compute_wrap_info(job_id, purpose), b"", data_key)
    return enc + ct


def unwrap_key(wrapped: bytes, recipient_private: bytes, *, job_id: str, purpose: str) -> bytes:
    """The data key inside ``wrapped``; SealedObjectError if it was not wrapped to this key for
    this job and purpose, or was altered."""
    if len(wrapped) != WRAPPED_KEY_BYTES:
        raise SealedObjectError(f"a wrapped key is {WRAPPED_KEY_BYTES} bytes, got {len(wrapped)}")
    enc, ct = wrapped[: hpke.N_ENC], wrapped[hpke.N_ENC :]
    try:
        return hpke.open_(recipient_private, enc, compute_wrap_info(job_id, purpose), b"", ct)
    except hpke.HpkeError as exc:
        raise SealedObjectError(f"wrapped key does not open: {exc}") from exc


def _check_chunk_bytes(chunk_bytes: int) -> None:
    if not CHUNK_BYTES_MIN <= chunk_bytes <= CHUNK_BYTES_MAX:
        raise ValueError(f"chunk_bytes must be in {CHUNK_BYTES_MIN}..{CHUNK_BYTES_MAX}")


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= RECORDS_MAX:
        raise SealedObjectError("sealed object has too many records for its counter")
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def _aead(data_key: bytes) -> ChaCha20Poly1305:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"a data key is {DATA_KEY_BYTES} bytes")
    return ChaCha20Poly1305(data_key)


class _Sealer:
    """Incremental sealing: holds back at most one chunk so the last one can be flagged."""

    def __init__(self, data_key: bytes, chunk_bytes: int, nonce_prefix: bytes | None) -> None:
        _check_chunk_bytes(chunk_bytes)
        prefix = os.urandom(NONCE_PREFIX_BYTES) if nonce_prefix is None else nonce_prefix
        if len(prefix) != NONCE_PREFIX_BYTES:
            raise ValueError(f"nonce prefix is {NONCE_PREFIX_BYTES} bytes")
        self._aead = _aead(data_key)
        self._chunk_bytes = chunk_bytes
        self._prefix = prefix
        self.header = MAGIC + bytes([VERSION]) + struct.pack(">I", chunk_bytes) + prefix
        self._buffer = bytearray()
        self._counter = 0

    def feed(self, piece: bytes) -> Iterator[bytes]:
        self._buffer += piece
        size = self._chunk_bytes
        start = 0
        # Strictly more than one chunk held: the first is then known not to be the last.
        while len(self._buffer) - start > size:
            yield self._seal(bytes(self._buffer[start : start + size]), last=False)
            start += size
        del self._buffer[:start]

    def finish(self) -> bytes:
        record = self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        return record

    def _seal(self, chunk: bytes, *, last: bool) -> bytes:
        nonce = _nonce(self._prefix, self._counter, last)
        self._counter += 1
        return self._aead.encrypt(nonce, chunk, self.header)


class _Opener:
    """Incremental opening: parses the header, then opens each record once the next byte (or
    the end) tells whether it is the last."""

    def __init__(self, data_key: bytes) -> None:
        self._aead = _aead(data_key)
        self._buffer = bytearray()
        self._header = b""  # empty until parsed
        self._prefix = b""
        self._record_bytes = 0
        self._counter = 0
        self._done = False

    def feed(self, piece: bytes) -> Iterator[bytes]:
        if self._done:
            raise SealedObjectError("sealed object fed after its end")
        self._buffer += piece
        if not self._header:
            if len(self._buffer) < HEADER_BYTES:
                return
            self._parse_header(bytes(self._buffer[:HEADER_BYTES]))
            del self._buffer[:HEADER_BYTES]
        size = self._record_bytes
        start = 0
        while len(self._buffer) - start > size:
            yield self._open(bytes(self._buffer[start : start + size]), last=False)
            start += size
        del self._buffer[:start]

    def finish(self) -> Iterator[bytes]:
        if not self._header:
            raise SealedObjectError("sealed object is shorter than its header")
        self._done = True
        if len(self._buffer) < TAG_BYTES:
            raise SealedObjectError("sealed object is truncated (no final record)")
        yield self._open(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _parse_header(self, header: bytes) -> None:
        if not is_sealed_object(header):
            raise SealedObjectError("not a sealed object (magic or version)")
        (chunk_bytes,) = struct.unpack(">I", header[5:9])
        if not CHUNK_BYTES_MIN <= chunk_bytes <= CHUNK_BYTES_MAX:
            raise SealedObjectError(f"sealed object chunk size {chunk_bytes} out of bounds")
        self._header = header
        self._prefix = header[9:HEADER_BYTES]
        self._record_bytes = chunk_bytes + TAG_BYTES

    def _open(self, record: bytes, *, last: bool) -> bytes:
        nonce = _nonce(self._prefix, self._counter, last)
        try:
            plain = self._aead.decrypt(nonce, record, self._header)
        except InvalidTag as exc:
            where = "final " if last else ""
            raise SealedObjectError(
                f"sealed object {where}record {self._counter} does not open"
                " (tampered, reordered, truncated, extended or another key)"
            ) from exc
        self._counter += 1
        return plain

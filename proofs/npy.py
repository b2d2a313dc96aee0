"""Strict reading and writing of NumPy ``.npy`` files (format versions 1.0, 2.0 and 3.0).

Format (numpy's ``numpy/lib/format.py`` documentation, "Format Version 1.0"): the magic
``\\x93NUMPY``, a major and minor version byte, a little-endian header length (u16 in 1.0,
u32 in 2.0 and 3.0), then an ASCII (3.0: UTF-8) Python dict literal with exactly the keys
``descr``, ``fortran_order`` and ``shape``, padded with spaces and ended by a newline; the
array's raw bytes follow.

Strict. Nothing is unpickled and no object dtype is accepted: the dict is read with
``ast.literal_eval`` (literals only, no names, no calls) and ``descr`` must be exactly the
one the caller expects for the dtype it names (``DESCRS``), ``shape`` exactly the expected
shape, and the payload exactly ``prod(shape) · itemsize`` bytes, nothing after it. The whole
header (magic included) is at most ``HEADER_BYTES_MAX`` = 4096 bytes: what numpy writes for
a 2-d array is 128. Fortran-ordered files are accepted (``np.save`` writes one for a
transposed array); the array is returned in its logical row-major shape either way.

bfloat16. NumPy has no bfloat16; ``np.save`` of an ``ml_dtypes.bfloat16`` array writes
``descr`` ``'<V2'`` (two opaque bytes). A file named bfloat16 by its job is therefore read
with ``'<V2'`` (or ``'|V2'``) and its entries returned as their uint16 bit patterns
(``proofs`` imports no ml_dtypes): a bfloat16 is the upper half of a float32, so
``bits << 16`` viewed as float32 is its exact value (``bfloat16_to_float32``).
"""

from __future__ import annotations

import ast
import math
import struct

import numpy as np
import numpy.typing as npt

MAGIC = b"\x93NUMPY"
HEADER_BYTES_MAX = 4096
"""The largest header (magic, version, length, dict, padding) accepted."""

HEADER_ALIGN = 64
"""numpy pads the header so that the payload starts on a 64-byte boundary."""

DESCRS: dict[str, tuple[str, ...]] = {
    "float32": ("<f4",),
    "float16": ("<f2",),
    "bfloat16": ("<V2", "|V2"),
    "int8": ("|i1", "<i1"),
    "int32": ("<i4",),
}
"""The ``descr`` values accepted for each dtype name, the first being the one written."""

STORAGE: dict[str, str] = {
    "float32": "<f4",
    "float16": "<f2",
    "bfloat16": "<u2",
    "int8": "|i1",
    "int32": "<i4",
}
"""How each dtype's entries are held in memory here (bfloat16 as its uint16 bit patterns)."""

_KEYS = {"descr", "fortran_order", "shape"}


class NpyError(ValueError):
    """The bytes are not a ``.npy`` file of the expected dtype and shape (the message says
    what differs)."""


def read_npy(data: bytes, dtype: str, shape: tuple[int, ...]) -> npt.NDArray[np.generic]:
    """The array of ``data``, a read-only row-major view (no copy unless Fortran-ordered),
    held as ``STORAGE[dtype]``; NpyError unless it is a ``.npy`` of exactly ``dtype`` and
    ``shape``."""
    if dtype not in DESCRS:
        raise NpyError(f"unknown dtype {dtype!r}; known: {sorted(DESCRS)}")
    descr, fortran_order, found_shape, offset = _read_header(data)
    if descr not in DESCRS[dtype]:
        raise NpyError(f"descr {descr!r} is not {dtype} (expected {DESCRS[dtype][0]!r})")
    if found_shape != tuple(shape):
        raise NpyError(f"shape {found_shape} is not the expected {tuple(shape)}")
    storage = np.dtype(STORAGE[dtype])
    expected = math.prod(found_shape) * storage.itemsize
    if len(data) - offset != expected:
        raise NpyError(f"payload is {len(data) - offset} bytes, expected {expected}")
    flat = np.frombuffer(data, dtype=storage, offset=offset)
    if fortran_order:
        return np.ascontiguousarray(flat.reshape(found_shape[::-1]).T)
    return flat.reshape(found_shape)


def encode_npy(array: npt.NDArray[np.generic], dtype: str) -> bytes:
    """A version 1.0 ``.npy`` of ``array`` (held as ``STORAGE[dtype]``), C order, written as
    numpy writes it (the header padded so the payload starts on ``HEADER_ALIGN``)."""
    if dtype not in DESCRS:
        raise NpyError(f"unknown dtype {dtype!r}; known: {sorted(DESCRS)}")
    values = np.asarray(array, dtype=np.dtype(STORAGE[dtype]))
    return encode_npy_header(dtype, values.shape) + values.tobytes(order="C")


def encode_npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """The version 1.0 header (magic to newline) that ``encode_npy`` writes."""
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    text = f"{{'descr': '{DESCRS[dtype][0]}', 'fortran_order': False, 'shape': ({dims}), }}"
    padding = -(len(MAGIC) + 4 + len(text) + 1) % HEADER_ALIGN
    header = (text + " " * padding + "\n").encode("ascii")
    return MAGIC + b"\x01\x00" + struct.pack("<H", len(header)) + header


def bfloat16_to_float32(bits: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """The exact float32 values of bfloat16 bit patterns (a bfloat16 is a float32's upper
    16 bits)."""
    return (np.asarray(bits, dtype=np.uint32) << np.uint32(16)).view(np.float32)


def float32_to_bfloat16(values: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:
    """float32 values rounded to the nearest bfloat16 (ties to even), as bit patterns; NaN
    stays NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    rounded = ((bits + rounding) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(values)
    if np.any(nan):
        rounded = np.where(nan, np.uint16(0x7FC0), rounded)
    return rounded


def _read_header(data: bytes) -> tuple[str, bool, tuple[int, ...], int]:
    """(descr, fortran_order, shape, payload offset) of a ``.npy`` header."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise NpyError("a .npy file is bytes")
    if len(data) < len(MAGIC) + 4 or bytes(data[: len(MAGIC)]) != MAGIC:
        raise NpyError("not a .npy file (no \\x93NUMPY magic)")
    major = data[len(MAGIC)]
    if major == 1:
        (length,) = struct.unpack_from("<H", data, len(MAGIC) + 2)
        start = len(MAGIC) + 4
    elif major in (2, 3):
        if len(data) < len(MAGIC) + 6:
            raise NpyError("truncated .npy header")
        (length,) = struct.unpack_from("<I", data, len(MAGIC) + 2)
        start = len(MAGIC) + 6
    else:
        raise NpyError(f".npy format version {major} is not 1, 2 or 3")
    end = start + length
    if end > HEADER_BYTES_MAX:
        raise NpyError(f".npy header of {end} bytes is over {HEADER_BYTES_MAX}")
    if end > len(data):
        raise NpyError("truncated .npy header")
    try:
        text = bytes(data[start:end]).decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise NpyError(f".npy header is not a dict literal: {exc}") from exc
    return (*_check_header(header), end)


def _check_header(header: object) -> tuple[str, bool, tuple[int, ...]]:
    if not isinstance(header, dict) or set(header) != _KEYS:
        raise NpyError(f".npy header must be a dict with exactly the keys {sorted(_KEYS)}")
    descr, fortran_order, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str):
        raise NpyError("descr must be a dtype string (structured dtypes are refused)")
    if not isinstance(fortran_order, bool):
        raise NpyError("fortran_order must be True or False")
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise NpyError("shape must be a tuple of non-negative integers")
    return descr, fortran_order, shape

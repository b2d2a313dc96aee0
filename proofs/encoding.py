"""Canonical encoding: the one byte representation that hashes and signatures are taken over.

JSON with object keys sorted and no whitespace, as msgspec writes it; bytes become base64.
Every adapter, process and version must produce identical bytes for equal values, so no
float ever appears in a canonical value (money and times are integers).
"""

from __future__ import annotations

from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder(order="sorted")


def encode_canonical(value: Any) -> bytes:
    """Return the canonical bytes of ``value`` (msgspec Struct, dict, list, str, int, bytes...)."""
    return _ENCODER.encode(value)

"""Ed25519 identities: every actor's id is its base58 public key (also a Solana address).

Base58 uses the Bitcoin alphabet (the one Solana uses); the id of a key is the base58 text of
its 32 raw public-key bytes, so ``solders.pubkey.Pubkey.from_string(id)`` accepts it.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
ID_CHARS_MAX = 44  # base58 of 32 bytes is 32..44 characters
PUBLIC_KEYS_CACHED_MAX = 4096  # decoded public keys kept by verify_signature
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}


class IdentityError(ValueError):
    """An id or key does not decode."""


def encode_base58(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); leading zero bytes become leading '1's."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def decode_base58(text: str) -> bytes:
    """Inverse of encode_base58; raises IdentityError on a character outside the alphabet."""
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise IdentityError(f"{char!r} is not a base58 character")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def decode_actor_id(actor_id: str) -> bytes:
    """The 32 public-key bytes behind a base58 id; raises IdentityError when it is not one."""
    if not actor_id or len(actor_id) > ID_CHARS_MAX:
        raise IdentityError(f"actor id must be 1..{ID_CHARS_MAX} base58 characters")
    raw = decode_base58(actor_id)
    if len(raw) != PUBLIC_KEY_BYTES or encode_base58(raw) != actor_id:
        raise IdentityError(f"actor id {actor_id!r} is not the base58 text of a 32-byte key")
    return raw


def is_actor_id(actor_id: str) -> bool:
    try:
        decode_actor_id(actor_id)
    except IdentityError:
        return False
    return True


class Identity:
    """An Ed25519 signing key and the id derived from it."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.public_key_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.id = encode_base58(self.public_key_bytes)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Deterministic key from 32 seed bytes (tests, demos, key files)."""
        if len(seed) != 32:
            raise IdentityError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def __repr__(self) -> str:
        return f"Identity({self.id})"


def verify_signature(actor_id: str, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is actor_id's Ed25519 signature over ``message``; never raises."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    key = _get_public_key(actor_id)
    if key is None:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def forget_public_keys() -> None:
    """Empty the cache of decoded public keys (a benchmark's cold start)."""
    _get_public_key.cache_clear()


@lru_cache(maxsize=PUBLIC_KEYS_CACHED_MAX)
def _get_public_key(actor_id: str) -> Ed25519PublicKey | None:
    # An audit verifies thousands of envelopes of a few hundred actors: decoding the base58
    # id (and checking it is canonical) cost about a third of a verification.
    try:
        return Ed25519PublicKey.from_public_bytes(decode_actor_id(actor_id))
    except (IdentityError, ValueError):
        return None

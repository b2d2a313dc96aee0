"""An actor's X25519 encryption key, derived from its Ed25519 identity seed.

The key file holds one secret (the Ed25519 seed); deriving the encryption key from it means no
second key file to back up or lose. The derivation is one-way: HKDF-SHA256 (RFC 5869) of the
seed under a tag, then RFC 9180's DeriveKeyPair (section 7.1.3), so the X25519 key reveals
nothing of the signing key and the two are never the same scalar. The binding of the public
key to the actor is the Ed25519 signature on the ``key.register`` command that records it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from proofs import hpke
from proofs.identity import Identity

ENCRYPTION_KEY_TAG = b"flopledger/encryption-key/x25519/v1"
ENCRYPTION_PUBLIC_KEY_BYTES = hpke.N_PK
ENCRYPTION_PRIVATE_KEY_BYTES = hpke.N_SK


def derive_encryption_keypair(identity: Identity) -> tuple[bytes, bytes]:
    """The actor's X25519 key pair, (private 32 bytes, public 32 bytes), from its seed."""
    return derive_encryption_keypair_from_seed(identity.seed())


def derive_encryption_keypair_from_seed(seed: bytes) -> tuple[bytes, bytes]:
    """As derive_encryption_keypair, from the raw 32-byte Ed25519 seed."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    ikm = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ENCRYPTION_KEY_TAG).derive(
        seed
    )
    return hpke.derive_key_pair(ikm)


def compute_encryption_public_key(identity: Identity) -> bytes:
    """The public half alone: what ``key.register`` records."""
    return derive_encryption_keypair(identity)[1]

"""The X25519 encryption key derived from an actor's Ed25519 seed."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from proofs import hpke
from proofs.encryption_keys import (
    compute_encryption_public_key,
    derive_encryption_keypair,
    derive_encryption_keypair_from_seed,
)
from proofs.identity import Identity


def test_derivation_is_deterministic_per_seed_and_distinct_across_seeds() -> None:
    one = Identity.from_seed(b"\x01" * 32)
    assert derive_encryption_keypair(one) == derive_encryption_keypair(
        Identity.from_seed(b"\x01" * 32)
    )
    assert derive_encryption_keypair(one) != derive_encryption_keypair(
        Identity.from_seed(b"\x02" * 32)
    )


def test_public_half_belongs_to_the_private_half() -> None:
    private, public = derive_encryption_keypair(Identity.from_seed(b"\x03" * 32))
    computed = (
        X25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert computed == public == compute_encryption_public_key(Identity.from_seed(b"\x03" * 32))


def test_encryption_key_is_not_the_signing_key() -> None:
    identity = Identity.from_seed(b"\x04" * 32)
    private, public = derive_encryption_keypair(identity)
    assert private != identity.seed()
    assert public != identity.public_key_bytes


def test_derived_key_opens_what_is_sealed_to_it() -> None:
    private, public = derive_encryption_keypair_from_seed(b"\x05" * 32)
    enc, ct = hpke.seal(public, b"info", b"", b"data key bytes")
    assert hpke.open_(private, enc, b"info", b"", ct) == b"data key bytes"

"""Properties of the public BLS API on the default backend: tampering never verifies and
malformed input gives False, not an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import bls

SK = bls.key_gen(b"flopledger bls property test ikm!")
PK = bls.sk_to_pk(SK)
MESSAGE = b"\x42" * 32
SIGNATURE = bls.sign(SK, MESSAGE)


def test_valid_signature_and_pop_verify() -> None:
    assert bls.verify(PK, MESSAGE, SIGNATURE)
    assert bls.key_validate(PK)
    assert bls.pop_verify(PK, bls.pop_prove(SK))
    assert not bls.pop_verify(PK, SIGNATURE)  # a signature is no PoP: the DSTs differ
    assert bls.sign(SK.to_bytes(32, "big"), MESSAGE) == SIGNATURE


@settings(max_examples=150)
@given(st.integers(0, bls.SIGNATURE_SIZE - 1), st.integers(1, 255))
def test_flipping_any_signature_byte_rejects(position: int, mask: int) -> None:
    tampered = bytearray(SIGNATURE)
    tampered[position] ^= mask
    assert bls.verify(PK, MESSAGE, bytes(tampered)) is False
    assert bls.fast_aggregate_verify([PK], MESSAGE, bytes(tampered)) is False


@settings(max_examples=60)
@given(st.integers(0, bls.PUBLIC_KEY_SIZE - 1), st.integers(1, 255))
def test_flipping_any_public_key_byte_rejects(position: int, mask: int) -> None:
    tampered = bytearray(PK)
    tampered[position] ^= mask
    assert bls.verify(bytes(tampered), MESSAGE, SIGNATURE) is False


@given(st.binary(max_size=120), st.binary(max_size=120))
def test_arbitrary_bytes_never_raise(pk: bytes, signature: bytes) -> None:
    assert bls.verify(pk, MESSAGE, signature) is False
    assert bls.pop_verify(pk, signature) is False
    assert bls.aggregate_verify([pk], [MESSAGE], signature) is False
    assert bls.batch_verify([pk], [MESSAGE], [signature]) is False


def test_malformed_arguments_are_false() -> None:
    assert not bls.verify(PK, "text", SIGNATURE)  # type: ignore[arg-type]
    assert not bls.verify(bytearray(PK), MESSAGE, SIGNATURE)  # type: ignore[arg-type]
    assert not bls.fast_aggregate_verify([], MESSAGE, SIGNATURE)
    assert not bls.fast_aggregate_verify(PK, MESSAGE, SIGNATURE)  # type: ignore[arg-type]
    assert not bls.aggregate_verify([PK, PK], [MESSAGE], SIGNATURE)
    assert not bls.batch_verify([], [], [])
    assert not bls.batch_verify([PK], [MESSAGE, MESSAGE], [SIGNATURE])
    assert not bls.key_validate(b"\xc0" + bytes(47))


def test_invalid_secret_keys_and_ikm_raise() -> None:
    for sk in (0, bls.CURVE_ORDER, -1, b"\x00" * 32, b"\x01" * 31):
        with pytest.raises(ValueError):
            bls.sign(sk, MESSAGE)
    with pytest.raises(ValueError):
        bls.key_gen(b"short")
    with pytest.raises(ValueError):
        bls.aggregate([])

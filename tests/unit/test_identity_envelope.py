"""Ed25519 identities (base58 ids that are Solana addresses) and signed command envelopes."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from proofs.envelope import (
    BadSignature,
    ExpiredEnvelope,
    MalformedEnvelope,
    WrongActor,
    decode_envelope,
    sign_command,
    verify_envelope,
)
from proofs.identity import Identity, decode_base58, encode_base58, is_actor_id

NOW = 1_800_000_000_000_000_000


@given(st.binary(max_size=64))
def test_base58_round_trip(data: bytes) -> None:
    assert decode_base58(encode_base58(data)) == data


@given(st.binary(min_size=32, max_size=32))
def test_ids_are_the_solana_addresses_of_the_keys(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    assert str(Pubkey.from_string(identity.id)) == identity.id
    assert bytes(Pubkey.from_string(identity.id)) == identity.public_key_bytes


@pytest.mark.parametrize("bad", ["", "0OIl", "1" * 45, "abc", encode_base58(b"\1" * 31)])
def test_non_ids_are_refused(bad: str) -> None:
    assert not is_actor_id(bad)


def _envelope(**overrides: object) -> bytes:
    identity = Identity.from_seed(b"a" * 32)
    envelope = sign_command(
        identity, "job.submit", {"max_price": 5}, nonce="nonce-0001", issued_at_ns=NOW
    )
    raw = msgspec.to_builtins(envelope)
    raw.update(overrides)
    return msgspec.json.encode(raw)


def test_a_good_envelope_verifies() -> None:
    verify_envelope(decode_envelope(_envelope()), now_ns=NOW)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"body": {"max_price": 6}}, BadSignature),
        ({"kind": "job.claim"}, BadSignature),
        ({"nonce": "nonce-0002"}, BadSignature),
        ({"actor": Identity.from_seed(b"b" * 32).id}, BadSignature),
        ({"actor": "not-base58!"}, MalformedEnvelope),
        ({"signature": "AAAA"}, MalformedEnvelope),
    ],
)
def test_tampered_envelopes_are_refused(overrides: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_envelope(decode_envelope(_envelope(**overrides)), now_ns=NOW)


def test_freshness_window_and_expected_actor() -> None:
    envelope = decode_envelope(_envelope())
    verify_envelope(envelope, now_ns=NOW + 300 * 10**9)
    with pytest.raises(ExpiredEnvelope):
        verify_envelope(envelope, now_ns=NOW + 300 * 10**9 + 1)
    with pytest.raises(ExpiredEnvelope):
        verify_envelope(envelope, now_ns=NOW - 300 * 10**9 - 1)
    with pytest.raises(WrongActor):
        verify_envelope(envelope, now_ns=NOW, expected_actor=Identity.from_seed(b"c" * 32).id)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"kind":"x"}', b"x" * 300_000])
def test_malformed_bytes_give_a_typed_error(raw: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        decode_envelope(raw)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(MalformedEnvelope, match="extra"):
        decode_envelope(_envelope(extra=1))

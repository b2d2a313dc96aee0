"""Quorum certificates: honest certificates verify at and above threshold, anything else
(tampered bytes, another validator set, a short quorum, a malformed bitmap) does not."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import bls
from proofs.quorum import (
    QuorumCertificate,
    decode_qc,
    encode_qc,
    make_qc,
    signer_indices,
    verdict_message,
    verify_qc,
)

SECRET_KEYS = [bls.key_gen(bytes([i]) * 32) for i in range(10)]
VALIDATORS = [bls.sk_to_pk(sk) for sk in SECRET_KEYS]
MESSAGE = verdict_message("job-7", b"\x11" * 32, True)
SIGNED_BY = [0, 2, 3, 5, 9]
QC = make_qc(VALIDATORS, {i: bls.sign(SECRET_KEYS[i], MESSAGE) for i in SIGNED_BY}, MESSAGE)


def test_verdict_message_is_domain_separated() -> None:
    assert len(MESSAGE) == 32
    others = {
        verdict_message("job-7", b"\x11" * 32, False),
        verdict_message("job-8", b"\x11" * 32, True),
        verdict_message("job-7", b"\x11" * 31, True),
        verdict_message("job-7\x00", b"\x11" * 31, True),
        verdict_message("", b"", True),
    }
    assert MESSAGE not in others and len(others) == 5


def test_qc_verifies_up_to_its_signer_count() -> None:
    assert signer_indices(QC, len(VALIDATORS)) == SIGNED_BY
    assert verify_qc(VALIDATORS, QC, threshold=1)
    assert verify_qc(VALIDATORS, QC, threshold=len(SIGNED_BY))
    assert not verify_qc(VALIDATORS, QC, threshold=len(SIGNED_BY) + 1)
    assert not verify_qc(VALIDATORS, QC, threshold=0)


def test_qc_bound_to_validator_set_and_order() -> None:
    assert not verify_qc(VALIDATORS[::-1], QC, threshold=1)
    assert not verify_qc(VALIDATORS[:9], QC, threshold=1)
    assert not verify_qc([*VALIDATORS, VALIDATORS[0]], QC, threshold=1)


def test_bitmap_must_match_signers_and_be_canonical() -> None:
    claims_more = msgspec.structs.replace(QC, signers=bytes([QC.signers[0] | 0x02, QC.signers[1]]))
    assert not verify_qc(VALIDATORS, claims_more, threshold=1)
    past_end = msgspec.structs.replace(QC, signers=bytes([QC.signers[0], QC.signers[1] | 0x04]))
    assert not verify_qc(VALIDATORS, past_end, threshold=1)
    too_long = msgspec.structs.replace(QC, signers=QC.signers + b"\x00")
    assert not verify_qc(VALIDATORS, too_long, threshold=1)


def test_make_qc_names_a_bad_contribution() -> None:
    wrong = bls.sign(SECRET_KEYS[1], MESSAGE)
    with pytest.raises(ValueError, match="validator 0"):
        make_qc(VALIDATORS, {0: wrong}, MESSAGE)
    with pytest.raises(ValueError):
        make_qc(VALIDATORS, {10: wrong}, MESSAGE)
    with pytest.raises(ValueError):
        make_qc(VALIDATORS, {}, MESSAGE)


def test_wire_round_trip() -> None:
    decoded = decode_qc(encode_qc(QC))
    assert decoded == QC and verify_qc(VALIDATORS, decoded, threshold=5)
    with pytest.raises(msgspec.ValidationError):
        decode_qc(encode_qc(QC).replace(b'"message"', b'"extra":1,"message"'))


@settings(max_examples=120)
@given(st.data())
def test_flipping_any_qc_byte_rejects(data: st.DataObject) -> None:
    fields = ("validator_set_digest", "message", "signers", "signature")
    field = data.draw(st.sampled_from(fields))
    value = bytearray(getattr(QC, field))
    position = data.draw(st.integers(0, len(value) - 1))
    value[position] ^= data.draw(st.integers(1, 255))
    tampered = msgspec.structs.replace(QC, **{field: bytes(value)})
    assert verify_qc(VALIDATORS, tampered, threshold=1) is False


def test_qc_with_other_types_is_false() -> None:
    assert not verify_qc(VALIDATORS, "qc", threshold=1)  # type: ignore[arg-type]
    assert not verify_qc(VALIDATORS, QuorumCertificate(b"", b"", b"", b""), threshold=1)

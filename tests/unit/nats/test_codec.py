"""Record <-> message codec: subjects are NATS-safe, payloads round-trip exactly."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from adapters.nats.codec import (
    HEADER_EXPECTED_LAST_SEQUENCE,
    HEADER_HASH,
    HEADER_MSG_ID,
    SUBJECT_TOKEN_CHARS_MAX,
    compute_event_subject,
    compute_subject_token,
    decode_header_hash,
    decode_record_payload,
    encode_record_header_block,
    encode_record_headers,
    encode_record_payload,
)
from adapters.nats.consumer import ChainVerifier
from adapters.nats.errors import ChainBroken
from domain.records import GENESIS_HASH, Record, RecordBody, make_record

_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")

records = st.builds(
    lambda position, stream_id, stream_type, event_type, data, metadata: make_record(
        GENESIS_HASH,
        RecordBody(position, stream_id, stream_type, 1, event_type, data, "cmd", metadata),
    ),
    st.integers(min_value=1, max_value=2**53),
    st.text(),
    st.text(),
    st.text(),
    st.binary(),
    st.binary(max_size=64),
)


@given(records)
def test_payload_round_trips(record: Record) -> None:
    assert decode_record_payload(encode_record_payload(record)) == record


@given(st.text())
def test_subject_tokens_are_nats_safe(value: str) -> None:
    token = compute_subject_token(value)
    assert _SAFE_TOKEN.match(token)
    assert len(token) <= SUBJECT_TOKEN_CHARS_MAX


def test_subject_token_at_the_length_bound_and_one_past() -> None:
    assert compute_subject_token("a" * SUBJECT_TOKEN_CHARS_MAX) == "a" * SUBJECT_TOKEN_CHARS_MAX
    assert (
        len(compute_subject_token("a" * (SUBJECT_TOKEN_CHARS_MAX + 1))) == SUBJECT_TOKEN_CHARS_MAX
    )


@given(records)
def test_headers_carry_position_and_hash(record: Record) -> None:
    headers = encode_record_headers(record)
    assert headers[HEADER_MSG_ID] == str(record.position)
    assert headers[HEADER_EXPECTED_LAST_SEQUENCE] == str(record.position - 1)
    assert decode_header_hash(headers) == record.hash
    assert all("\r" not in v and "\n" not in v for v in headers.values())
    subject = compute_event_subject(record)
    assert len(subject.split(".")) == 4


def test_malformed_header_hash_is_ignored() -> None:
    assert decode_header_hash({HEADER_HASH: "zz"}) is None
    assert decode_header_hash(None) is None


def test_verifier_accepts_a_chain_and_names_a_forged_link() -> None:
    first = make_record(GENESIS_HASH, RecordBody(1, "s", "t", 1, "E", b"a", "c", b""))
    second = make_record(first.hash, RecordBody(2, "s", "t", 2, "E", b"b", "c", b""))
    forged = make_record(GENESIS_HASH, RecordBody(2, "s", "t", 2, "E", b"b", "c", b""))
    verifier = ChainVerifier("S")
    assert verifier.verify_message(1, encode_record_payload(first), None) == first
    assert verifier.verify_message(2, encode_record_payload(second), None) == second
    broken = ChainVerifier("S")
    broken.verify_message(1, encode_record_payload(first), None)
    with pytest.raises(ChainBroken, match="S sequence 2 breaks the hash chain"):
        broken.verify_message(2, encode_record_payload(forged), None)


@given(records)
def test_header_block_is_the_header_dict_on_the_wire(record: Record) -> None:
    block = encode_record_header_block(record)
    assert block.startswith(b"NATS/1.0\r\n") and block.endswith(b"\r\n\r\n")
    parsed = Client._parse_header_lines(block[len(b"NATS/1.0\r\n") :])
    assert parsed == encode_record_headers(record)

"""Signed object requests (issue 17): a signature proves one actor asks for one request on one
network, within the skew window, and for nothing else."""

from __future__ import annotations

import pytest

from proofs.identity import Identity
from proofs.request_auth import (
    ACTOR_HEADER,
    REQUEST_SKEW_NS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    MalformedRequestAuth,
    RequestExpired,
    RequestSignatureInvalid,
    RequestUnsigned,
    has_request_signature,
    sign_request,
    verify_request,
)

NOW = 1_800_000_000_000_000_000
NETWORK = "flop-test"
PATH = "/v1/objects/" + "ab" * 32 + "?job=job-1"
CONSUMER = Identity.from_seed(b"\1" * 32)
OTHER = Identity.from_seed(b"\2" * 32)


def test_a_signed_request_names_its_signer() -> None:
    headers = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW)
    assert verify_request(headers, "GET", PATH, NETWORK, NOW) == CONSUMER.id
    lowered = {name.lower(): value for name, value in headers.items()}
    assert verify_request(lowered, "get", PATH, NETWORK, NOW + REQUEST_SKEW_NS) == CONSUMER.id


@pytest.mark.parametrize(
    "late_ns", [REQUEST_SKEW_NS + 1, -REQUEST_SKEW_NS - 1, 10 * REQUEST_SKEW_NS]
)
def test_a_replay_outside_the_skew_window_is_refused(late_ns: int) -> None:
    headers = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW)
    assert verify_request(headers, "GET", PATH, NETWORK, NOW) == CONSUMER.id
    with pytest.raises(RequestExpired):
        verify_request(headers, "GET", PATH, NETWORK, NOW + late_ns)


def test_at_the_skew_bound_it_is_accepted() -> None:
    headers = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW)
    for now in (NOW - REQUEST_SKEW_NS, NOW + REQUEST_SKEW_NS):
        assert verify_request(headers, "GET", PATH, NETWORK, now) == CONSUMER.id


def test_another_network_is_refused() -> None:
    headers = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW)
    for network in ("flop-main", ""):
        with pytest.raises(RequestSignatureInvalid):
            verify_request(headers, "GET", PATH, network, NOW)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/objects/" + "cd" * 32 + "?job=job-1"),  # another object
        ("GET", "/v1/objects/" + "ab" * 32 + "?job=job-2"),  # another job
        ("GET", "/v1/objects/" + "ab" * 32),  # the query dropped
        ("PUT", PATH),  # another method
    ],
)
def test_a_changed_request_is_refused(method: str, path: str) -> None:
    headers = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW)
    with pytest.raises(RequestSignatureInvalid):
        verify_request(headers, method, path, NETWORK, NOW)


def test_another_actor_cannot_claim_the_signature() -> None:
    headers = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW) | {ACTOR_HEADER: OTHER.id}
    with pytest.raises(RequestSignatureInvalid):
        verify_request(headers, "GET", PATH, NETWORK, NOW)
    moved = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW) | {TIMESTAMP_HEADER: str(NOW + 1)}
    with pytest.raises(RequestSignatureInvalid):
        verify_request(moved, "GET", PATH, NETWORK, NOW)


def test_missing_and_malformed_headers_are_refused_by_name() -> None:
    headers = sign_request(CONSUMER, "GET", PATH, NETWORK, NOW)
    assert has_request_signature(headers) and not has_request_signature({})
    for name in (ACTOR_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
        partial = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(RequestUnsigned, match=name):
            verify_request(partial, "GET", PATH, NETWORK, NOW)
    for name, bad in (
        (ACTOR_HEADER, "not-an-id"),
        (TIMESTAMP_HEADER, "-5"),
        (TIMESTAMP_HEADER, "1" * 21),
        (SIGNATURE_HEADER, "zz" * 64),
        (SIGNATURE_HEADER, "ab" * 63),
    ):
        with pytest.raises(MalformedRequestAuth):
            verify_request(headers | {name: bad}, "GET", PATH, NETWORK, NOW)

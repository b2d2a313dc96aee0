"""Signed HTTP requests (issue 17): who asks to read or write an object, proven like a command.

A read of a plaintext object is allowed to some actors only (the job's consumer, node and
drawn validators), so the request must prove its signer. It carries three headers:
``X-Flop-Actor`` (the base58 Ed25519 id), ``X-Flop-Timestamp-Ns`` (decimal nanoseconds) and
``X-Flop-Signature`` (hex of the Ed25519 signature over the signing payload). The payload
binds a domain tag, the network, the method, the path with its query and the timestamp, so
a signature cannot be used for another network, route, object or job, nor outside
``REQUEST_SKEW_NS`` of the verifier's clock (the command envelope's freshness window).

Within the window a captured request can be replayed verbatim: it then reads what its
signer may read, to whoever captured it, so requests go over TLS (as commands do). A PUT's
body is not signed: it is content-addressed, and the ledger attributes an upload only by
the ``object.record_stored`` command its uploader signs.

The payload is the canonical JSON of the five fields (``proofs.encoding``), not their raw
concatenation, so no two field lists give equal bytes.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping

from proofs.encoding import encode_canonical
from proofs.identity import SIGNATURE_BYTES, Identity, is_actor_id, verify_signature

REQUEST_TAG = "flopledger/request/v1"
REQUEST_SKEW_NS = 300 * 1_000_000_000
"""How far the signed timestamp may be from the verifier's clock, either way."""
ACTOR_HEADER = "X-Flop-Actor"
TIMESTAMP_HEADER = "X-Flop-Timestamp-Ns"
SIGNATURE_HEADER = "X-Flop-Signature"
TIMESTAMP_DIGITS_MAX = 20
PATH_CHARS_MAX = 2048
METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})


class RequestAuthError(ValueError):
    """A signed request refused; ``code`` is stable API (the API answers 401)."""

    code = "request_auth_invalid"


class RequestUnsigned(RequestAuthError):
    """A signature header is missing."""

    code = "request_unsigned"


class MalformedRequestAuth(RequestAuthError):
    """A header is present but not of its form."""

    code = "request_auth_malformed"


class RequestExpired(RequestAuthError):
    """The timestamp is outside the skew window (stale, replayed late, or a wrong clock)."""

    code = "request_expired"


class RequestSignatureInvalid(RequestAuthError):
    """The signature is not the actor's over this network, method, path and timestamp."""

    code = "request_signature_invalid"


def compute_request_payload(method: str, path_qs: str, network_id: str, timestamp_ns: int) -> bytes:
    """The bytes a request's signer signs."""
    return encode_canonical(
        {
            "domain": REQUEST_TAG,
            "network": network_id,
            "method": method.upper(),
            "path": path_qs,
            "timestamp_ns": timestamp_ns,
        }
    )


def sign_request(
    identity: Identity, method: str, path_qs: str, network_id: str, now_ns: int
) -> dict[str, str]:
    """The headers that prove ``identity`` asks for ``method path_qs`` on ``network_id`` now
    (``path_qs``: the path and, when there is one, ``?`` and the query, as sent)."""
    payload = compute_request_payload(method, path_qs, network_id, now_ns)
    return {
        ACTOR_HEADER: identity.id,
        TIMESTAMP_HEADER: str(now_ns),
        SIGNATURE_HEADER: identity.sign(payload).hex(),
    }


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path_qs: str,
    network_id: str,
    now_ns: int,
    *,
    skew_ns: int = REQUEST_SKEW_NS,
) -> str:
    """The actor id that signed this request; raises a RequestAuthError otherwise.

    Checks in a fixed order: present, form, freshness, signature. ``headers`` is looked up
    by the exact names above and by their lowercase (HTTP header names are
    case-insensitive; ASGI servers hand them lowercased)."""
    actor = _header(headers, ACTOR_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature_hex = _header(headers, SIGNATURE_HEADER)
    if not is_actor_id(actor):
        raise MalformedRequestAuth(f"{ACTOR_HEADER} is not a base58 Ed25519 public key")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > TIMESTAMP_DIGITS_MAX:
        raise MalformedRequestAuth(f"{TIMESTAMP_HEADER} must be decimal nanoseconds")
    try:
        signature = bytes.fromhex(signature_hex)
    except (ValueError, binascii.Error) as exc:
        raise MalformedRequestAuth(f"{SIGNATURE_HEADER} is not hex") from exc
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedRequestAuth(f"{SIGNATURE_HEADER} must be {SIGNATURE_BYTES} bytes in hex")
    if method.upper() not in METHODS or len(path_qs) > PATH_CHARS_MAX:
        raise MalformedRequestAuth("the request's method or path cannot be signed")
    timestamp_ns = int(timestamp)
    if abs(now_ns - timestamp_ns) > skew_ns:
        raise RequestExpired(
            f"request signed at {timestamp_ns} ns, outside {skew_ns // 1_000_000_000} s of now"
        )
    payload = compute_request_payload(method, path_qs, network_id, timestamp_ns)
    if not verify_signature(actor, payload, signature):
        raise RequestSignatureInvalid(
            "signature does not match the actor, network, method, path and timestamp"
        )
    return actor


def has_request_signature(headers: Mapping[str, str]) -> bool:
    """Whether any of the signature headers is present (a request that tries to sign)."""
    names = (ACTOR_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
    return any(name in headers or name.lower() in headers for name in names)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        raise RequestUnsigned(f"the request carries no {name} header")
    return value

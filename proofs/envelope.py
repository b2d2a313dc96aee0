"""Signed command envelopes: who asked for a change, when, and with which exact body.

The signature covers the canonical encoding of (domain tag, kind, body, actor, nonce,
issued-at, network), so a signature for one kind or body cannot be replayed for another,
nor on another deployment: ``network`` names the network the command is meant for (issue 16,
item 9), and the ledger refuses a foreign one. An envelope without a network (``""``, what
every envelope was before rules v4) signs the payload without the key, so stored envelopes
keep their signatures and digests. Replay of the
same envelope is stopped by the ledger (nonce seen) and by the issued-at window checked here.
``EnvelopeIn`` is the envelope on the wire (JSON, signature in base64), shared by the API
and its clients.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated, Any

import msgspec

from proofs.encoding import encode_canonical
from proofs.identity import SIGNATURE_BYTES, Identity, is_actor_id, verify_signature

ENVELOPE_DOMAIN = "flopledger/command/v1"
KIND_CHARS_MAX = 64
NONCE_CHARS_MAX = 64
BODY_BYTES_MAX = 256 * 1024
FRESHNESS_WINDOW_NS = 300 * 1_000_000_000  # issued-at may be this far in the past or future
ENVELOPE_BODY_FIELDS_MAX = 64
NETWORK_ID_CHARS_MAX = 64  # the form of domain.policy's network_id (proofs imports no domain)

Kind = Annotated[str, msgspec.Meta(min_length=1, max_length=KIND_CHARS_MAX, pattern=r"^[a-z_.]+$")]
Nonce = Annotated[str, msgspec.Meta(min_length=8, max_length=NONCE_CHARS_MAX)]
ActorId = Annotated[
    str, msgspec.Meta(min_length=32, max_length=44, pattern="^[1-9A-HJ-NP-Za-km-z]+$")
]
NetworkId = Annotated[
    str,
    msgspec.Meta(
        max_length=NETWORK_ID_CHARS_MAX,
        pattern=r"^([a-z0-9]([a-z0-9.-]*[a-z0-9])?)?$",
        description="the network the command is signed for (GET /v1/network); empty only "
        "on networks that name none (rules before v4)",
    ),
]
SignatureB64 = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9+/]{86}==$",
        description="base64 of the 64-byte Ed25519 signature over the canonical payload",
    ),
]


class EnvelopeError(ValueError):
    """Base of envelope rejections; ``code`` is stable API."""

    code = "envelope_invalid"


class MalformedEnvelope(EnvelopeError):
    code = "envelope_malformed"


class BadSignature(EnvelopeError):
    code = "signature_invalid"


class WrongActor(EnvelopeError):
    code = "actor_mismatch"


class ExpiredEnvelope(EnvelopeError):
    code = "envelope_expired"


class ForeignNetwork(EnvelopeError):
    """Signed for another network (or for none where this one names itself)."""

    code = "network_mismatch"


class CommandEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A command as signed by its actor. ``body`` is the command's fields as plain JSON values.

    ``network`` is omitted from the encoding when empty, so an envelope stored before it
    existed encodes (and hashes) as it did."""

    kind: Kind
    body: dict[str, Any]
    actor: str
    nonce: Nonce
    issued_at_ns: int
    signature: bytes
    network: str = ""

    def signing_payload(self) -> bytes:
        return compute_signing_payload(
            self.kind, self.body, self.actor, self.nonce, self.issued_at_ns, network=self.network
        )

    def digest(self) -> bytes:
        """SHA-256 over the signed payload and the signature: the command's identity."""
        return hashlib.sha256(self.signing_payload() + self.signature).digest()

    def command_id(self) -> str:
        return self.digest().hex()


class EnvelopeIn(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A signed command envelope (CommandEnvelope on the wire: the signature in base64)."""

    kind: Annotated[
        str, msgspec.Meta(min_length=1, max_length=KIND_CHARS_MAX, pattern=r"^[a-z_.]+$")
    ]
    body: Annotated[dict[str, Any], msgspec.Meta(max_length=ENVELOPE_BODY_FIELDS_MAX)]
    actor: ActorId
    nonce: Annotated[str, msgspec.Meta(min_length=8, max_length=NONCE_CHARS_MAX)]
    # No upper bound: any time outside the freshness window is refused (401) all the same.
    issued_at_ns: Annotated[int, msgspec.Meta(ge=0)]
    signature: SignatureB64
    network: NetworkId = ""


def compute_signing_payload(
    kind: str,
    body: dict[str, Any],
    actor: str,
    nonce: str,
    issued_at_ns: int,
    *,
    network: str = "",
) -> bytes:
    """The bytes an actor signs; ``network`` is in them when named (issue 16, item 9)."""
    fields: dict[str, Any] = {
        "domain": ENVELOPE_DOMAIN,
        "kind": kind,
        "body": body,
        "actor": actor,
        "nonce": nonce,
        "issued_at_ns": issued_at_ns,
    }
    if network:
        fields["network"] = network
    return encode_canonical(fields)


def sign_command(
    identity: Identity,
    kind: str,
    body: dict[str, Any],
    *,
    nonce: str,
    issued_at_ns: int,
    network: str = "",
) -> CommandEnvelope:
    """Build and sign an envelope for ``network`` (``GET /v1/network``; ``""`` only for a
    network that names none). ``body`` must hold JSON values only (no floats for money)."""
    plain = msgspec.json.decode(encode_canonical(body))
    payload = compute_signing_payload(
        kind, plain, identity.id, nonce, issued_at_ns, network=network
    )
    return CommandEnvelope(
        kind=kind,
        body=plain,
        actor=identity.id,
        nonce=nonce,
        issued_at_ns=issued_at_ns,
        signature=identity.sign(payload),
        network=network,
    )


def decode_envelope(raw: bytes) -> CommandEnvelope:
    """Parse JSON bytes into an envelope; raises MalformedEnvelope naming what is wrong."""
    if len(raw) > BODY_BYTES_MAX:
        raise MalformedEnvelope(f"envelope is {len(raw)} bytes, the limit is {BODY_BYTES_MAX}")
    try:
        return msgspec.json.decode(raw, type=CommandEnvelope)
    except msgspec.ValidationError as exc:
        raise MalformedEnvelope(f"envelope: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise MalformedEnvelope(f"envelope is not valid JSON: {exc}") from exc


def verify_envelope(
    envelope: CommandEnvelope,
    *,
    now_ns: int,
    expected_actor: str | None = None,
    window_ns: int = FRESHNESS_WINDOW_NS,
) -> None:
    """Check form, actor, freshness and signature, in that fixed order; raise on the first fail."""
    if not is_actor_id(envelope.actor):
        raise MalformedEnvelope(f"actor {envelope.actor!r} is not a base58 Ed25519 public key")
    if len(envelope.signature) != SIGNATURE_BYTES:
        raise MalformedEnvelope(f"signature must be {SIGNATURE_BYTES} bytes")
    if expected_actor is not None and envelope.actor != expected_actor:
        raise WrongActor(f"command is signed by {envelope.actor}, expected {expected_actor}")
    if abs(now_ns - envelope.issued_at_ns) > window_ns:
        raise ExpiredEnvelope(
            f"issued_at is {(now_ns - envelope.issued_at_ns) / 1e9:.0f} s from now; "
            f"the window is ±{window_ns / 1e9:.0f} s: sign a fresh command"
        )
    if not verify_signature(envelope.actor, envelope.signing_payload(), envelope.signature):
        raise BadSignature("signature does not verify for this actor, kind and body")


def check_network(envelope: CommandEnvelope, network_id: str) -> None:
    """The envelope was signed for ``network_id``; ForeignNetwork naming both if not."""
    if envelope.network != network_id:
        signed_for = repr(envelope.network) if envelope.network else "no network"
        raise ForeignNetwork(
            f"the command is signed for {signed_for}, this ledger is network {network_id!r}: "
            "sign it for this network (GET /v1/network)"
        )


def to_command_envelope(envelope: EnvelopeIn) -> CommandEnvelope:
    """The proofs-level envelope; MalformedEnvelope when the signature is not base64."""
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEnvelope("signature is not valid base64") from exc
    return CommandEnvelope(
        kind=envelope.kind,
        body=envelope.body,
        actor=envelope.actor,
        nonce=envelope.nonce,
        issued_at_ns=envelope.issued_at_ns,
        signature=signature,
        network=envelope.network,
    )


def from_command_envelope(envelope: CommandEnvelope) -> EnvelopeIn:
    """The wire form of a signed envelope (what a client posts)."""
    return EnvelopeIn(
        kind=envelope.kind,
        body=envelope.body,
        actor=envelope.actor,
        nonce=envelope.nonce,
        issued_at_ns=envelope.issued_at_ns,
        signature=base64.b64encode(envelope.signature).decode(),
        network=envelope.network,
    )

"""The probe protocol's messages (issue 15): a validator times a node over request-reply.

Every message travels sealed: ``SignedProbeMessage(body, signer, signature)``, the signature
being the signer's Ed25519 signature over ``PROBE_SIGNING_TAG || body``; the body is the
msgpack of ``ProbeBody(to, message)``, so a request signed for one node cannot be replayed to
another (a node cannot have a stranger's GPU answer a challenge it was sent). Every size is
bounded here, at decoding: a validator cannot make a node allocate or decode without limit,
nor a node a validator (``PROBE_MESSAGE_BYTES_MAX`` is NATS's default payload limit).

Requests and their answers (a node may answer any request with ``ProbeRefused``):

| request            | answer                | timed by the validator            |
|--------------------|-----------------------|-----------------------------------|
| ``Ping``           | ``Pong``              | round-trip time (median of 3)     |
| ``ComputeChallenge``| ``ComputeCommitted`` | ``compute_deadline_ns`` + RTT     |
| ``MemoryFill``     | ``MemoryFilled``      | ``fill_deadline_ns`` + RTT        |
| ``MemoryRead``     | ``MemoryReadCommitted``| ``read_deadline_ns`` + RTT       |
| ``OpenRows``       | ``RowsOpened``        | no (the commitment came first)    |
| ``Release``        | ``Released``          | no                                |
| ``CcEvidenceRequest``| ``CcEvidence``      | no (NVIDIA's signature binds it)  |

The randomness of a probe comes from the validator's Ed25519 signatures, which are
deterministic (RFC 8032 §5.1.6): a probe seed is ``SHA-256(tag || challenge seed ||
sig(node, nonce, device, phase))``, unpredictable to the node until it is sent and checkable
by anyone holding the signature (``check_probe_seed``); the read key and the rows opened are
fixed by signatures over the node's ack and root, so they exist only after those arrived.
The nonce of a confidential-computing report is derived the same way (``compute_cc_nonce``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec

from proofs.encoding import encode_canonical
from proofs.identity import SIGNATURE_BYTES, Identity, verify_signature
from proofs.probe import SIDE_MAX, RowOpening

PROBE_SUBJECT_PREFIX = "flop.probe"
"""Requests to a node go to ``flop.probe.<node id token>``."""
PROBE_SIGNING_TAG = b"flopledger/probe/v1\x00"
_SEED_TAG = "flopledger/probe-seed/v1"
_READ_KEY_TAG = "flopledger/probe-read-key/v1"
_OPENINGS_TAG = "flopledger/probe-openings/v1"
_CC_NONCE_TAG = "flopledger/probe-cc-nonce/v1"

PROBE_MESSAGE_BYTES_MAX = 1024 * 1024
"""A sealed message is at most this long (NATS's default max_payload), both ways."""
PROBE_ID_CHARS_MAX = 64
DEVICES_MAX = 64
# The columns of a product are bounded by proofs.probe.SIDE_MAX (a row of 4-byte entries
# fits a message many times over), an opening's row and path by proofs.probe.RowOpening.
ROWS_MAX = 2**22
"""Rows of a probe product (the memory probe of a 141 GB card at 25% has about 2**20)."""
INNER_MAX = 2**27
"""Inner size k (the compute probe of the fastest table model needs about 2**24)."""
OPEN_ROWS_MAX = 64
"""Rows one ``OpenRows`` asks for (the validator batches so the answer fits a message)."""
NONCE_BYTES_MAX = 64
REASON_CHARS_MAX = 64
HASH_BYTES = 32
OPENING_OVERHEAD_BYTES = 64
"""Generous msgpack framing of one opening besides its row and path (size estimates)."""
MESSAGE_OVERHEAD_BYTES = 1024
"""Generous framing of a sealed message besides its openings (signer, signature, ids)."""
CC_NONCE_BYTES = 32
"""The nonce of an SPDM GET_MEASUREMENTS request, which a CC-mode GPU signs into its report."""
CC_EVIDENCE_BYTES_MAX = 256 * 1024
"""A CC evidence bundle: a Hopper report and its chain take about 12 KiB per GPU in JSON."""

Phase = Literal["compute", "memory"]
ProbeId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=PROBE_ID_CHARS_MAX, pattern="^[0-9a-f]+$")
]
AnyProbeId = Annotated[str, msgspec.Meta(max_length=PROBE_ID_CHARS_MAX, pattern="^[0-9a-f]*$")]
DeviceIndex = Annotated[int, msgspec.Meta(ge=0, lt=DEVICES_MAX)]
Rows = Annotated[int, msgspec.Meta(ge=1, le=ROWS_MAX)]
Side = Annotated[int, msgspec.Meta(ge=1, le=SIDE_MAX)]
Inner = Annotated[int, msgspec.Meta(ge=1, le=INNER_MAX)]
RowIndex = Annotated[int, msgspec.Meta(ge=0, lt=ROWS_MAX)]
Hash = Annotated[bytes, msgspec.Meta(min_length=HASH_BYTES, max_length=HASH_BYTES)]
Nonce = Annotated[bytes, msgspec.Meta(min_length=8, max_length=NONCE_BYTES_MAX)]
Reason = Annotated[str, msgspec.Meta(max_length=REASON_CHARS_MAX, pattern="^[a-z_]*$")]
ReportedNs = Annotated[int, msgspec.Meta(ge=0)]
ActorId = Annotated[
    str, msgspec.Meta(min_length=32, max_length=44, pattern="^[1-9A-HJ-NP-Za-km-z]+$")
]


class _Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Base of every probe message: msgpack with a ``kind`` tag."""


class Ping(_Message, frozen=True, tag="ping"):
    nonce: Nonce


class Pong(_Message, frozen=True, tag="pong"):
    nonce: Nonce


class ComputeChallenge(_Message, frozen=True, tag="compute_challenge"):
    """Compute C = A(n×k)·B(k×m) from ``seed`` and commit to its rows (keyed by the seed)."""

    probe_id: ProbeId
    device_index: DeviceIndex
    seed: Hash
    n: Rows
    m: Side
    k: Inner


class ComputeCommitted(_Message, frozen=True, tag="compute_committed"):
    """The Merkle root over C's rows; ``reported_ns`` is the node's own timing (informative
    only: the validator's clock decides)."""

    probe_id: ProbeId
    root: Hash
    reported_ns: ReportedNs = 0


class MemoryFill(_Message, frozen=True, tag="memory_fill"):
    """Compute the working set M (n×m, inner size k) from ``seed`` and hold it."""

    probe_id: ProbeId
    device_index: DeviceIndex
    seed: Hash
    n: Rows
    m: Side
    k: Inner


class MemoryFilled(_Message, frozen=True, tag="memory_filled"):
    probe_id: ProbeId
    reported_ns: ReportedNs = 0


class MemoryRead(_Message, frozen=True, tag="memory_read"):
    """Commit, keyed by ``key``, to the ``rows`` rows of M that ``choose_rows(key, n, rows)``
    picks, in that order."""

    probe_id: ProbeId
    key: Hash
    rows: Rows


class MemoryReadCommitted(_Message, frozen=True, tag="memory_read_committed"):
    probe_id: ProbeId
    root: Hash
    reported_ns: ReportedNs = 0


class OpenRows(_Message, frozen=True, tag="open_rows"):
    """Open the leaves at ``indices`` of the phase's last commitment."""

    probe_id: ProbeId
    phase: Phase
    indices: Annotated[list[RowIndex], msgspec.Meta(min_length=1, max_length=OPEN_ROWS_MAX)]


class RowsOpened(_Message, frozen=True, tag="rows_opened"):
    probe_id: ProbeId
    openings: Annotated[list[RowOpening], msgspec.Meta(max_length=OPEN_ROWS_MAX)]


class Release(_Message, frozen=True, tag="release"):
    """Drop what the probe holds (the product, the working set)."""

    probe_id: ProbeId


class Released(_Message, frozen=True, tag="released"):
    probe_id: ProbeId


class CcEvidenceRequest(_Message, frozen=True, tag="cc_evidence_request"):
    """Answer with NVIDIA's confidential-computing attestation of every GPU over ``nonce``
    (``adapters.compute.cc_attestation.collect_cc_evidence``)."""

    nonce: Annotated[bytes, msgspec.Meta(min_length=CC_NONCE_BYTES, max_length=CC_NONCE_BYTES)]


class CcEvidence(_Message, frozen=True, tag="cc_evidence"):
    """The evidence bundle (``cc_attestation.CcEvidenceBundle``, JSON); empty where the node
    has no GPU in CC mode or no NVIDIA verifier to collect with."""

    evidence: Annotated[bytes, msgspec.Meta(max_length=CC_EVIDENCE_BYTES_MAX)]


class ProbeRefused(_Message, frozen=True, tag="probe_refused"):
    """The node will not answer a request; ``probe_id`` is empty when none could be read."""

    probe_id: AnyProbeId
    reason: Reason


ProbeMessage = (
    Ping
    | Pong
    | ComputeChallenge
    | ComputeCommitted
    | MemoryFill
    | MemoryFilled
    | MemoryRead
    | MemoryReadCommitted
    | OpenRows
    | RowsOpened
    | Release
    | Released
    | CcEvidenceRequest
    | CcEvidence
    | ProbeRefused
)
ProbeRequest = (
    Ping | ComputeChallenge | MemoryFill | MemoryRead | OpenRows | Release | CcEvidenceRequest
)


class ProbeBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a signature covers: the recipient's id and the message."""

    to: Annotated[str, msgspec.Meta(max_length=44)]
    message: ProbeMessage


class SignedProbeMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A sealed message: ``signature`` is ``signer``'s over ``PROBE_SIGNING_TAG || body``."""

    body: Annotated[bytes, msgspec.Meta(max_length=PROBE_MESSAGE_BYTES_MAX)]
    signer: ActorId
    signature: Annotated[bytes, msgspec.Meta(min_length=SIGNATURE_BYTES, max_length=64)]


class ProbeWireError(ValueError):
    """A sealed message that cannot be accepted; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


MALFORMED = "probe_malformed"
SIGNATURE_INVALID = "signature_invalid"
WRONG_RECIPIENT = "wrong_recipient"
TOO_LARGE = "probe_too_large"

_BODY_ENCODER = msgspec.msgpack.Encoder()
_BODY_DECODER = msgspec.msgpack.Decoder(ProbeBody)
_SEALED_DECODER = msgspec.msgpack.Decoder(SignedProbeMessage)


def seal(identity: Identity, message: ProbeMessage, *, to: str) -> bytes:
    """The wire bytes of ``message`` for ``to``, signed by ``identity``."""
    body = _BODY_ENCODER.encode(ProbeBody(to=to, message=message))
    signed = SignedProbeMessage(
        body=body, signer=identity.id, signature=identity.sign(PROBE_SIGNING_TAG + body)
    )
    return _BODY_ENCODER.encode(signed)


def unseal(
    data: bytes, expected_signer: str | None = None, *, recipient: str | None = None
) -> tuple[str, ProbeMessage]:
    """(signer, message) of sealed bytes; raises ProbeWireError (``probe_too_large``,
    ``probe_malformed``, ``signature_invalid``, ``wrong_recipient``): the signature is
    checked before the body is decoded, so unsigned bytes are never parsed further."""
    if len(data) > PROBE_MESSAGE_BYTES_MAX:
        raise ProbeWireError(TOO_LARGE, f"a probe message is at most {PROBE_MESSAGE_BYTES_MAX}")
    sealed = decode_sealed(data)
    if expected_signer is not None and sealed.signer != expected_signer:
        raise ProbeWireError(SIGNATURE_INVALID, f"signed by {sealed.signer}, not the expected")
    if not verify_signature(sealed.signer, PROBE_SIGNING_TAG + sealed.body, sealed.signature):
        raise ProbeWireError(SIGNATURE_INVALID, "the signature does not verify")
    try:
        body = _BODY_DECODER.decode(sealed.body)
    except msgspec.DecodeError as exc:
        raise ProbeWireError(MALFORMED, f"probe body: {exc}") from exc
    if recipient is not None and body.to != recipient:
        raise ProbeWireError(WRONG_RECIPIENT, f"addressed to {body.to!r}, not {recipient!r}")
    return sealed.signer, body.message


def decode_sealed(data: bytes) -> SignedProbeMessage:
    """The envelope alone, signature unchecked (to know whom to answer); ProbeWireError."""
    try:
        return _SEALED_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ProbeWireError(MALFORMED, f"sealed probe message: {exc}") from exc


def compute_seed_statement(*, node_id: str, nonce: str, device_index: int, phase: Phase) -> bytes:
    """What the validator signs to derive one device's probe seed for one phase."""
    return encode_canonical([_SEED_TAG, node_id, nonce, device_index, phase])


def compute_probe_seed(challenge_seed: bytes, statement_signature: bytes) -> bytes:
    """``SHA-256(tag || challenge seed || signature over the seed statement)``."""
    return hashlib.sha256(_SEED_TAG.encode() + challenge_seed + statement_signature).digest()


def check_probe_seed(
    validator_id: str,
    statement_signature: bytes,
    *,
    node_id: str,
    nonce: str,
    device_index: int,
    phase: Phase,
    challenge_seed: bytes,
    seed: bytes,
) -> bool:
    """Whether ``seed`` is the probe seed ``validator_id`` had to send (anyone can check)."""
    statement = compute_seed_statement(
        node_id=node_id, nonce=nonce, device_index=device_index, phase=phase
    )
    if not verify_signature(validator_id, statement, statement_signature):
        return False
    return compute_probe_seed(challenge_seed, statement_signature) == seed


def compute_read_key_statement(*, node_id: str, probe_id: str) -> bytes:
    """What the validator signs once the fill ack arrived: its hash is the read key."""
    return encode_canonical([_READ_KEY_TAG, node_id, probe_id])


def compute_read_key(statement_signature: bytes) -> bytes:
    return hashlib.sha256(_READ_KEY_TAG.encode() + statement_signature).digest()


def compute_openings_statement(*, node_id: str, probe_id: str, phase: Phase, root: bytes) -> bytes:
    """What the validator signs once a root arrived: the signature picks the rows opened."""
    return encode_canonical([_OPENINGS_TAG, node_id, probe_id, phase, root.hex()])


def compute_cc_nonce_statement(*, node_id: str, nonce: str) -> bytes:
    """What the validator signs to derive the nonce of a node's CC report in a round."""
    return encode_canonical([_CC_NONCE_TAG, node_id, nonce])


def compute_cc_nonce(challenge_seed: bytes, statement_signature: bytes) -> bytes:
    """``SHA-256(tag || challenge seed || signature over the CC statement)``: 32 bytes, fresh
    for the round, unpredictable to the node until sent, checkable by anyone."""
    return hashlib.sha256(_CC_NONCE_TAG.encode() + challenge_seed + statement_signature).digest()


def check_cc_nonce(
    validator_id: str,
    statement_signature: bytes,
    *,
    node_id: str,
    nonce: str,
    challenge_seed: bytes,
    cc_nonce: bytes,
) -> bool:
    """Whether ``cc_nonce`` is the one ``validator_id`` had to send for this round."""
    statement = compute_cc_nonce_statement(node_id=node_id, nonce=nonce)
    if not verify_signature(validator_id, statement, statement_signature):
        return False
    return compute_cc_nonce(challenge_seed, statement_signature) == cc_nonce


def compute_opening_bytes(m: int, n_leaves: int) -> int:
    """A generous bound on one opening's encoded size (row, audit path, framing)."""
    path_length = max(0, (n_leaves - 1).bit_length())
    return 4 * m + (HASH_BYTES + 2) * path_length + OPENING_OVERHEAD_BYTES


def compute_openings_per_message(m: int, n_leaves: int, payload_bytes_max: int) -> int:
    """How many openings of an ``m``-column product fit one answer of ``payload_bytes_max``."""
    room = payload_bytes_max - MESSAGE_OVERHEAD_BYTES
    return max(1, min(OPEN_ROWS_MAX, room // compute_opening_bytes(m, n_leaves)))


# Verdict reasons of a probe (validator.prober), beside the opening codes of proofs.probe.
REASON_OK = "ok"
REASON_UNANSWERED = "probe_unanswered"
REASON_REFUSED = "probe_refused"
REASON_MALFORMED = MALFORMED
REASON_SIGNATURE_INVALID = SIGNATURE_INVALID
REASON_COMPUTE_DEADLINE_MISSED = "compute_deadline_missed"
REASON_FILL_DEADLINE_MISSED = "fill_deadline_missed"
REASON_READ_DEADLINE_MISSED = "read_deadline_missed"
REASON_CC = "cc"
"""A CC report verified: the validator votes pass with this reason (the "cc" tier)."""
REASON_CC_ABSENT = "cc_evidence_absent"
"""The node sent no CC evidence (no GPU in CC mode, no verifier): probe it by timing instead."""

# Why a node refuses a request (ProbeRefused.reason; node_agent.probe_responder).
REFUSED_UNAUTHORIZED = "unauthorized"
REFUSED_DEVICE_UNKNOWN = "device_unknown"
REFUSED_DEVICE_BUSY = "device_busy"
REFUSED_DEVICE_ERROR = "device_error"
REFUSED_PROBE_UNKNOWN = "probe_unknown"
REFUSED_PROBE_ID_IN_USE = "probe_id_in_use"
REFUSED_TOO_COSTLY = "probe_too_costly"
REFUSED_RESPONSE_TOO_LARGE = "response_too_large"
REFUSED_NOT_A_REQUEST = "not_a_request"

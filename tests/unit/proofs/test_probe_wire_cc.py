"""The probe pair of the CC tier: a nonce of exactly 32 bytes out, bounded evidence back,
both sealed; the nonce derived from the validator's signature, checkable by anyone."""

from __future__ import annotations

import msgspec
import pytest

from proofs.identity import Identity
from proofs.probe_wire import (
    CC_EVIDENCE_BYTES_MAX,
    CC_NONCE_BYTES,
    PROBE_SIGNING_TAG,
    CcEvidence,
    CcEvidenceRequest,
    ProbeBody,
    ProbeWireError,
    SignedProbeMessage,
    check_cc_nonce,
    compute_cc_nonce,
    compute_cc_nonce_statement,
    seal,
    unseal,
)

VALIDATOR = Identity.from_seed(bytes(range(32)))
NODE = Identity.from_seed(bytes(range(1, 33)))
OTHER = Identity.from_seed(bytes(range(2, 34)))
CHALLENGE_SEED = bytes(range(100, 132))


def _seal_raw(identity: Identity, message: dict[str, object], *, to: str) -> bytes:
    """Seal a body the structs would not build (to test the receiver's bounds)."""
    body = msgspec.msgpack.encode({"to": to, "message": message})
    signed = SignedProbeMessage(
        body=body, signer=identity.id, signature=identity.sign(PROBE_SIGNING_TAG + body)
    )
    return msgspec.msgpack.encode(signed)


def test_the_request_and_its_answer_unseal_to_what_was_sealed() -> None:
    request = CcEvidenceRequest(nonce=bytes(CC_NONCE_BYTES))
    assert unseal(seal(VALIDATOR, request, to=NODE.id), recipient=NODE.id) == (
        VALIDATOR.id,
        request,
    )
    answer = CcEvidence(evidence=b"x" * CC_EVIDENCE_BYTES_MAX)
    assert unseal(seal(NODE, answer, to=VALIDATOR.id), NODE.id) == (NODE.id, answer)


@pytest.mark.parametrize("length", [CC_NONCE_BYTES - 1, CC_NONCE_BYTES + 1])
def test_a_nonce_other_than_32_bytes_is_refused_at_decoding(length: int) -> None:
    data = _seal_raw(VALIDATOR, {"kind": "cc_evidence_request", "nonce": bytes(length)}, to=NODE.id)
    with pytest.raises(ProbeWireError) as caught:
        unseal(data, recipient=NODE.id)
    assert caught.value.code == "probe_malformed"


def test_evidence_past_its_bound_is_refused_at_decoding() -> None:
    data = _seal_raw(
        NODE, {"kind": "cc_evidence", "evidence": b"x" * (CC_EVIDENCE_BYTES_MAX + 1)}, to="v"
    )
    with pytest.raises(ProbeWireError) as caught:
        unseal(data, NODE.id)
    assert caught.value.code == "probe_malformed"


def test_the_cc_nonce_is_checkable_and_bound_to_node_and_round() -> None:
    statement = compute_cc_nonce_statement(node_id=NODE.id, nonce="round-1")
    signature = VALIDATOR.sign(statement)
    cc_nonce = compute_cc_nonce(CHALLENGE_SEED, signature)
    assert len(cc_nonce) == CC_NONCE_BYTES
    fields = {"node_id": NODE.id, "nonce": "round-1", "challenge_seed": CHALLENGE_SEED}
    assert check_cc_nonce(VALIDATOR.id, signature, cc_nonce=cc_nonce, **fields)
    assert not check_cc_nonce(VALIDATOR.id, signature, cc_nonce=bytes(32), **fields)
    assert not check_cc_nonce(OTHER.id, signature, cc_nonce=cc_nonce, **fields)
    other_round = fields | {"nonce": "round-2"}
    assert not check_cc_nonce(VALIDATOR.id, signature, cc_nonce=cc_nonce, **other_round)
    other_node = fields | {"node_id": OTHER.id}
    assert not check_cc_nonce(VALIDATOR.id, signature, cc_nonce=cc_nonce, **other_node)


def test_the_body_type_lists_the_pair() -> None:
    # A node answering the request with the evidence is a ProbeBody like any other.
    body = ProbeBody(to=NODE.id, message=CcEvidenceRequest(nonce=bytes(32)))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(body), type=ProbeBody) == body

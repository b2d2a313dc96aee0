"""Probe messages: sealed both ways, bounded at decoding, seeds checkable from the transcript."""

from __future__ import annotations

import msgspec
import pytest

from proofs.identity import Identity
from proofs.probe import SIDE_MAX, RowOpening
from proofs.probe_wire import (
    INNER_MAX,
    OPEN_ROWS_MAX,
    PROBE_MESSAGE_BYTES_MAX,
    ROWS_MAX,
    ComputeChallenge,
    OpenRows,
    Ping,
    ProbeBody,
    ProbeRefused,
    ProbeWireError,
    RowsOpened,
    SignedProbeMessage,
    check_probe_seed,
    compute_opening_bytes,
    compute_openings_per_message,
    compute_probe_seed,
    compute_seed_statement,
    seal,
    unseal,
)

VALIDATOR = Identity.from_seed(bytes(range(32)))
NODE = Identity.from_seed(bytes(range(1, 33)))
OTHER = Identity.from_seed(bytes(range(2, 34)))
SEED = bytes(32)


def challenge(**changes: int) -> ComputeChallenge:
    fields = {"n": 64, "m": 64, "k": 64} | changes
    return ComputeChallenge(probe_id="ab12", device_index=0, seed=SEED, **fields)


def test_a_sealed_message_unseals_to_its_signer_and_message() -> None:
    data = seal(VALIDATOR, challenge(), to=NODE.id)
    signer, message = unseal(data, VALIDATOR.id, recipient=NODE.id)
    assert signer == VALIDATOR.id
    assert message == challenge()


def test_a_message_addressed_to_another_node_is_refused() -> None:
    data = seal(VALIDATOR, challenge(), to=OTHER.id)
    with pytest.raises(ProbeWireError) as caught:
        unseal(data, recipient=NODE.id)
    assert caught.value.code == "wrong_recipient"


def test_a_tampered_body_or_foreign_signature_is_refused() -> None:
    sealed = msgspec.msgpack.decode(
        seal(VALIDATOR, challenge(), to=NODE.id), type=SignedProbeMessage
    )
    other_body = msgspec.msgpack.encode(ProbeBody(to=NODE.id, message=challenge(k=128)))
    forged = msgspec.msgpack.encode(
        SignedProbeMessage(body=other_body, signer=sealed.signer, signature=sealed.signature)
    )
    with pytest.raises(ProbeWireError) as caught:
        unseal(forged)
    assert caught.value.code == "signature_invalid"
    with pytest.raises(ProbeWireError) as caught:
        unseal(seal(OTHER, challenge(), to=NODE.id), VALIDATOR.id)
    assert caught.value.code == "signature_invalid"


def test_unsigned_bytes_are_malformed() -> None:
    for data in (b"", b"\x00garbage", msgspec.msgpack.encode({"body": b"x"})):
        with pytest.raises(ProbeWireError) as caught:
            unseal(data)
        assert caught.value.code == "probe_malformed"


def test_a_message_past_the_payload_limit_is_refused_before_decoding() -> None:
    with pytest.raises(ProbeWireError) as caught:
        unseal(b"\x00" * (PROBE_MESSAGE_BYTES_MAX + 1))
    assert caught.value.code == "probe_too_large"


@pytest.mark.parametrize(("field", "largest"), [("n", ROWS_MAX), ("m", SIDE_MAX), ("k", INNER_MAX)])
def test_sizes_are_bounded_at_decoding(field: str, largest: int) -> None:
    assert unseal(seal(VALIDATOR, challenge(**{field: largest}), to=NODE.id))[1] == challenge(
        **{field: largest}
    )
    with pytest.raises(ProbeWireError) as caught:
        unseal(seal(VALIDATOR, challenge(**{field: largest + 1}), to=NODE.id))
    assert caught.value.code == "probe_malformed"


def test_an_open_request_and_its_answer_are_bounded_in_rows() -> None:
    widest = OpenRows(probe_id="ab", phase="compute", indices=list(range(OPEN_ROWS_MAX)))
    assert unseal(seal(VALIDATOR, widest, to=NODE.id))[1] == widest
    too_wide = OpenRows(probe_id="ab", phase="compute", indices=list(range(OPEN_ROWS_MAX + 1)))
    with pytest.raises(ProbeWireError):
        unseal(seal(VALIDATOR, too_wide, to=NODE.id))
    row = RowOpening(index=0, row=b"", path=[])
    too_many = RowsOpened(probe_id="ab", openings=[row] * (OPEN_ROWS_MAX + 1))
    with pytest.raises(ProbeWireError):
        unseal(seal(NODE, too_many, to=VALIDATOR.id))


def test_a_batch_of_openings_fits_one_message() -> None:
    for m, leaves in ((8192, 8192), (SIDE_MAX, ROWS_MAX), (16, 2)):
        count = compute_openings_per_message(m, leaves, PROBE_MESSAGE_BYTES_MAX)
        row = RowOpening(index=leaves - 1, row=b"\xff" * 4 * m, path=[b"\xff" * 32] * 22)
        answer = RowsOpened(probe_id="f" * 64, openings=[row] * count)
        data = seal(NODE, answer, to=VALIDATOR.id)
        assert len(data) <= PROBE_MESSAGE_BYTES_MAX
        assert count * compute_opening_bytes(m, leaves) <= PROBE_MESSAGE_BYTES_MAX
    assert compute_openings_per_message(SIDE_MAX, ROWS_MAX, PROBE_MESSAGE_BYTES_MAX) >= 1


def test_a_refusal_without_a_probe_id_and_a_ping_round_trip() -> None:
    refused = ProbeRefused(probe_id="", reason="unauthorized")
    assert unseal(seal(NODE, refused, to=""))[1] == refused
    ping = Ping(nonce=b"12345678")
    assert unseal(seal(VALIDATOR, ping, to=NODE.id))[1] == ping


def test_a_probe_seed_is_checkable_from_the_signature() -> None:
    statement = compute_seed_statement(
        node_id=NODE.id, nonce="n-1", device_index=0, phase="compute"
    )
    signature = VALIDATOR.sign(statement)
    seed = compute_probe_seed(b"challenge", signature)
    fields = {"node_id": NODE.id, "nonce": "n-1", "device_index": 0, "phase": "compute"}
    assert check_probe_seed(
        VALIDATOR.id, signature, challenge_seed=b"challenge", seed=seed, **fields
    )
    other = fields | {"device_index": 1}
    assert not check_probe_seed(
        VALIDATOR.id, signature, challenge_seed=b"challenge", seed=seed, **other
    )
    assert not check_probe_seed(
        OTHER.id, signature, challenge_seed=b"challenge", seed=seed, **fields
    )
    memory = compute_seed_statement(node_id=NODE.id, nonce="n-1", device_index=0, phase="memory")
    assert compute_probe_seed(b"challenge", VALIDATOR.sign(memory)) != seed

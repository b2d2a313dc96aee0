"""Inference proofs: every output shipped under its root, items drawn from the round's
randomness, and the size bound of a whole batch."""

from __future__ import annotations

import hashlib
import struct

import msgspec
import pytest

from proofs.inference_commitment import (
    BATCH_MAX,
    FLOAT32_BYTES,
    OUTPUT_DIM_MAX,
    OUTPUTS_BYTES_MAX,
    InferenceProof,
    decode_inference_proof,
    encode_inference_proof,
    get_outputs,
    make_inference_proof,
    select_items,
)

DIM = 3
OUTPUTS = [struct.pack("<3f", i, -i, 0.5 * i) for i in range(40)]
PROOF = make_inference_proof(b"job-seed", OUTPUTS, DIM)


def test_shipped_outputs_are_the_committed_ones() -> None:
    assert get_outputs(PROOF) == OUTPUTS
    assert get_outputs(decode_inference_proof(encode_inference_proof(PROOF))) == OUTPUTS
    flipped = PROOF.outputs[:5] + bytes([PROOF.outputs[5] ^ 1]) + PROOF.outputs[6:]
    assert get_outputs(msgspec.structs.replace(PROOF, outputs=flipped)) is None
    assert get_outputs(msgspec.structs.replace(PROOF, outputs=PROOF.outputs[:-4])) is None
    assert get_outputs(msgspec.structs.replace(PROOF, batch=39)) is None


def test_items_depend_on_the_round_randomness() -> None:
    first = select_items(b"round-1", 4000, PROOF.root, 32)
    assert first == select_items(b"round-1", 4000, PROOF.root, 32)
    assert first != select_items(b"round-2", 4000, PROOF.root, 32)
    assert len(first) == 32 and first == sorted(set(first))
    assert select_items(b"round-1", 40, PROOF.root, 40) == list(range(40))
    with pytest.raises(ValueError):
        select_items(b"r" * 257, 40, PROOF.root, 32)


def test_largest_batch_fits_its_bound_and_one_byte_more_is_refused() -> None:
    assert OUTPUTS_BYTES_MAX == FLOAT32_BYTES * OUTPUT_DIM_MAX * BATCH_MAX
    largest = InferenceProof(
        seed=b"s",
        batch=BATCH_MAX,
        output_dim=OUTPUT_DIM_MAX,
        root=hashlib.sha256(b"r").digest(),
        outputs=bytes(OUTPUTS_BYTES_MAX),
    )
    assert decode_inference_proof(encode_inference_proof(largest)).batch == BATCH_MAX
    too_long = msgspec.structs.replace(largest, outputs=bytes(OUTPUTS_BYTES_MAX + 1))
    with pytest.raises(msgspec.ValidationError):
        decode_inference_proof(encode_inference_proof(too_long))

"""Merkle trees beyond the vectors: generators agree with verifiers, the incremental tree
agrees with the batch root, tampering is rejected, signed tree heads verify."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from proofs import merkle
from proofs.merkle_incremental import IncrementalMerkleTree
from proofs.tree_head import (
    SignedTreeHead,
    decode_tree_head,
    encode_tree_head,
    sign_tree_head,
    verify_tree_head,
)

LEAVES = [i.to_bytes(4, "big") * (i % 3) for i in range(70)]
HASHES = [merkle.leaf_hash(d) for d in LEAVES]


def _reference_root(hashes: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1 (recursive split), as an independent oracle."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


def test_root_matches_recursive_definition() -> None:
    for size in range(len(HASHES) + 1):
        assert merkle.root_from_hashes(HASHES[:size]) == _reference_root(HASHES[:size])


def test_every_inclusion_proof_verifies_and_no_other_index_does() -> None:
    for size in (1, 2, 3, 5, 8, 13, 33, 70):
        top = merkle.root_from_hashes(HASHES[:size])
        proofs = merkle.inclusion_proofs_from_hashes(HASHES[:size], range(size))
        for index, proof in enumerate(proofs):
            assert merkle.verify_inclusion(HASHES[index], index, size, proof, top)
            other = (index + 1) % size
            if other != index:
                assert not merkle.verify_inclusion(HASHES[index], other, size, proof, top)


def test_every_consistency_proof_verifies() -> None:
    for new_size in range(1, 34):
        new_root = merkle.root_from_hashes(HASHES[:new_size])
        for old_size in range(1, new_size + 1):
            proof = merkle.consistency_proof_from_hashes(HASHES[:new_size], old_size)
            old_root = merkle.root_from_hashes(HASHES[:old_size])
            assert merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
            if old_size < new_size:
                assert not merkle.verify_consistency(old_size, new_size, new_root, old_root, proof)


def test_generators_reject_out_of_range() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof_from_hashes(HASHES[:4], 4)
    with pytest.raises(ValueError):
        merkle.inclusion_proof_from_hashes([], 0)
    with pytest.raises(ValueError):
        merkle.consistency_proof_from_hashes(HASHES[:4], 0)
    with pytest.raises(ValueError):
        merkle.consistency_proof_from_hashes(HASHES[:4], 5)


def test_verifiers_reject_malformed_types_without_raising() -> None:
    top = merkle.root_from_hashes(HASHES[:4])
    proof = merkle.inclusion_proof_from_hashes(HASHES[:4], 1)
    assert not merkle.verify_inclusion(HASHES[1], 1, 4, b"".join(proof), top)  # type: ignore[arg-type]
    assert not merkle.verify_inclusion(HASHES[1], -1, 4, proof, top)
    assert not merkle.verify_inclusion(HASHES[1], 1, 2**64, proof, top)
    assert not merkle.verify_inclusion(HASHES[1], True, 4, proof, top)
    assert not merkle.verify_inclusion(HASHES[1], 1, 4, [*proof, *proof] * 20, top)
    assert not merkle.verify_consistency(2, 4, top, top, [top] * (merkle.PROOF_LENGTH_MAX + 1))


@given(st.data())
def test_flipping_any_byte_of_an_inclusion_proof_rejects(data: st.DataObject) -> None:
    size = data.draw(st.integers(2, 40))
    index = data.draw(st.integers(0, size - 1))
    top = merkle.root_from_hashes(HASHES[:size])
    proof = merkle.inclusion_proof_from_hashes(HASHES[:size], index)
    blob = bytearray(b"".join(proof))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] ^= data.draw(st.integers(1, 255))
    tampered = [bytes(blob[i : i + 32]) for i in range(0, len(blob), 32)]
    assert not merkle.verify_inclusion(HASHES[index], index, size, tampered, top)


@given(st.lists(st.binary(max_size=40), max_size=80))
def test_incremental_tree_matches_batch_root(leaves: list[bytes]) -> None:
    tree = IncrementalMerkleTree()
    for data in leaves:
        tree.append(data)
    assert tree.size == len(leaves)
    assert len(tree.frontier) == len(leaves).bit_count()
    assert tree.root() == merkle.root(leaves)
    resumed = IncrementalMerkleTree.from_frontier(tree.size, tree.frontier)
    resumed.append_leaf_hash(merkle.leaf_hash(b"next"))
    assert resumed.root() == merkle.root([*leaves, b"next"])


def test_incremental_tree_rejects_bad_state() -> None:
    with pytest.raises(ValueError):
        IncrementalMerkleTree.from_frontier(3, [HASHES[0]])
    with pytest.raises(ValueError):
        IncrementalMerkleTree().append_leaf_hash(b"short")


def test_signed_tree_head_round_trip_and_tamper() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    top = merkle.root_from_hashes(HASHES[:9])
    sth = sign_tree_head(key, 9, top, 1_700_000_000_000_000_000)
    assert verify_tree_head(sth)
    assert verify_tree_head(sth, signer=sth.signer)
    assert not verify_tree_head(sth, signer=bytes(32))
    decoded = decode_tree_head(encode_tree_head(sth))
    assert decoded == sth and verify_tree_head(decoded)
    for changed in (
        msgspec.structs.replace(sth, size=10),
        msgspec.structs.replace(sth, timestamp_ns=sth.timestamp_ns + 1),
        msgspec.structs.replace(sth, root=bytes(32)),
        msgspec.structs.replace(sth, signer=bytes(32)),
        msgspec.structs.replace(sth, signature=sth.signature[:-1] + b"\x00"),
        msgspec.structs.replace(sth, root=b"short"),
        msgspec.structs.replace(sth, size=-1),
        msgspec.structs.replace(sth, size=9.0),  # msgspec does not validate on replace
        msgspec.structs.replace(sth, signature=None),
        msgspec.structs.replace(sth, root="not bytes"),
    ):
        assert not verify_tree_head(changed)


def test_decode_tree_head_rejects_bad_lengths() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    sth = sign_tree_head(key, 0, merkle.EMPTY_ROOT, 0)
    bad = msgspec.structs.replace(sth, signature=b"x")
    with pytest.raises(msgspec.ValidationError):
        decode_tree_head(msgspec.json.encode(bad))
    assert isinstance(decode_tree_head(encode_tree_head(sth)), SignedTreeHead)

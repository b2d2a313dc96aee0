"""Proofs from the read model's stored tree (``adapters.store.tree_table``) equal the proofs
computed from every record hash, at every small size and around powers of two."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.store.memory import MemoryEventStore
from api.read_model import ReadModel
from api.transparency import TransparencyLog
from domain.records import NewEvent, StreamAppend
from proofs import merkle

EDGE = 1024
RECORDS = EDGE + 37
SMALL = 40


@pytest.fixture
async def log_and_hashes() -> tuple[TransparencyLog, list[bytes]]:
    store = MemoryEventStore()
    for index in range(RECORDS):
        event = NewEvent(event_type="Happened", data=str(index).encode())
        await store.append(
            [StreamAppend(f"s-{index % 7}", "test", None, (event,))], command_id=f"c{index}"
        )
    read_model = ReadModel(store)
    log = TransparencyLog(read_model, Ed25519PrivateKey.generate(), lambda: 1)
    hashes = [r.hash for r in await store.read_all(1, RECORDS)]
    return log, hashes


async def test_inclusion_proofs_equal_the_full_trees(
    log_and_hashes: tuple[TransparencyLog, list[bytes]],
) -> None:
    log, hashes = log_and_hashes
    sizes = [*range(1, SMALL), EDGE - 1, EDGE, EDGE + 1, RECORDS]
    for size in sizes:
        for position in {1, 2, EDGE, EDGE + 1, size // 2 + 1, size - 1, size}:
            if not 1 <= position <= size:
                continue
            view = await log.get_inclusion_proof(position, size)
            expected = merkle.inclusion_proof_from_hashes(hashes[:size], position - 1)
            assert view.proof == [p.hex() for p in expected], (size, position)
            assert view.root == merkle.root_from_hashes(hashes[:size]).hex()
            assert view.leaf_hash == hashes[position - 1].hex()
    assert len(log.read_model.nodes) == RECORDS


async def test_consistency_proofs_equal_the_full_trees(
    log_and_hashes: tuple[TransparencyLog, list[bytes]],
) -> None:
    log, hashes = log_and_hashes
    for second in [*range(1, SMALL), EDGE, EDGE + 5, RECORDS]:
        for first in {1, 2, second // 2 + 1, EDGE - 1, EDGE, EDGE + 1, second - 1, second}:
            if not 1 <= first <= second:
                continue
            view = await log.get_consistency_proof(first, second)
            expected = merkle.consistency_proof_from_hashes(hashes[:second], first)
            assert view.proof == [p.hex() for p in expected], (first, second)
            assert view.first_root == merkle.root_from_hashes(hashes[:first]).hex()
            assert view.second_root == merkle.root_from_hashes(hashes[:second]).hex()
    head = await log.get_tree_head()
    assert head.size == RECORDS and head.root == merkle.root_from_hashes(hashes).hex()

"""The audit's view of the transparency log: roots at any sealed size, heads, witnesses, anchors.

Every record hash is a leaf (RFC 9162 §2.1, the record hash used as the leaf hash, as the
sealer and the API do). A signed head at size ``s`` is stored at a position after ``s``, and
sizes only grow, so one lagging ``IncrementalMerkleTree`` fed from a queue of not yet sealed
hashes gives every head's root in O(n) overall. With ``keep_hashes`` every leaf is kept so
that consistency and inclusion proofs can be generated and re-verified (``--verify-proofs``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice

from proofs import merkle
from proofs.merkle_incremental import IncrementalMerkleTree

# With --verify-proofs: inclusion proofs re-checked per head (first, middle and last leaf).
INCLUSION_SAMPLES_PER_HEAD = 3


@dataclass(frozen=True)
class AnchorClaim:
    """A LogAnchored record: which head, where on chain, at which log position."""

    position: int
    size: int
    root: bytes
    chain_signature: str
    slot: int


@dataclass
class LogView:
    """Roots of the log at every sealed size, and the heads, co-signatures and anchors seen."""

    keep_hashes: bool = False
    heads: dict[int, bytes] = field(default_factory=dict)
    cosignatures: int = 0
    anchors: list[AnchorClaim] = field(default_factory=list)
    last_size: int = 0
    proofs_checked: int = 0
    _lag: IncrementalMerkleTree = field(default_factory=IncrementalMerkleTree)
    _pending: deque[bytes] = field(default_factory=deque)
    _hashes: list[bytes] = field(default_factory=list)

    def add_leaf(self, record_hash: bytes) -> None:
        self._pending.append(record_hash)
        if self.keep_hashes:
            self._hashes.append(record_hash)

    @property
    def size(self) -> int:
        return self._lag.size + len(self._pending)

    def root_at(self, size: int) -> bytes:
        """Merkle root of the first ``size`` leaves; sizes must not go back (ValueError)."""
        if size < self._lag.size or size > self.size:
            raise ValueError(f"no root for size {size} (sealed {self._lag.size}, seen {self.size})")
        while self._lag.size < size:
            self._lag.append_leaf_hash(self._pending.popleft())
        return self._lag.root()

    def peek_root(self, size: int) -> bytes:
        """Merkle root of the first ``size`` leaves without sealing them, so a later head of a
        smaller size still has its root (a trusted head, ``validator.audit_history``)."""
        if size < self._lag.size or size > self.size:
            raise ValueError(f"no root for size {size} (sealed {self._lag.size}, seen {self.size})")
        tree = IncrementalMerkleTree.from_frontier(self._lag.size, self._lag.frontier)
        for leaf in islice(self._pending, size - self._lag.size):
            tree.append_leaf_hash(leaf)
        return tree.root()

    def check_proofs(self, previous_size: int, size: int, root: bytes) -> str | None:
        """Generate and verify (proofs.merkle) a consistency proof from the previous head and
        sampled inclusion proofs; the reason they fail, or None."""
        if not self.keep_hashes:
            return None
        hashes = self._hashes[:size]
        if previous_size:
            old_root = self.heads[previous_size]
            proof = merkle.consistency_proof_from_hashes(hashes, previous_size)
            if not merkle.verify_consistency(previous_size, size, old_root, root, proof):
                return f"consistency proof {previous_size} -> {size} does not verify"
        for index in sorted({0, size // 2, size - 1}):
            path = merkle.inclusion_proof_from_hashes(hashes, index)
            if not merkle.verify_inclusion(hashes[index], index, size, path, root):
                return f"inclusion proof of leaf {index} in the head of size {size} fails"
        self.proofs_checked += 1 + INCLUSION_SAMPLES_PER_HEAD
        return None

    def check_consistency(
        self, old_size: int, old_root: bytes, size: int, root: bytes
    ) -> str | None:
        """Generate and verify a consistency proof from (old_size, old_root) to (size, root),
        as a client holding the older head checks the API's (``--verify-proofs`` with a
        trusted head); the reason it fails, or None (and None without kept hashes)."""
        if not self.keep_hashes or not 0 < old_size < size:
            return None
        proof = merkle.consistency_proof_from_hashes(self._hashes[:size], old_size)
        if not merkle.verify_consistency(old_size, size, old_root, root, proof):
            return f"consistency proof from the trusted head {old_size} -> {size} does not verify"
        self.proofs_checked += 1
        return None

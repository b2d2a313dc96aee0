"""The transparency log over record hashes: signed tree heads, inclusion and consistency proofs.

Leaf ``i`` of the RFC 9162 tree is the hash of the record at position ``i + 1`` (the record
hash is used as the leaf hash). The heads served are the sealer's (``operations.sealer``),
recorded on the log stream with their witness co-signatures and anchors (``domain.log``), as
the read model folds them; proofs default to the latest sealed head, so a client checks them
against a head that witnesses co-signed. Only while nothing is sealed yet (or for a size no
head was sealed at) does this process sign a head itself with the server's Ed25519 log key
(``proofs.tree_head``): one per tree size, reused, so clients polling an idle log see one
head. Every response says which (``source``).

Proofs come from the read model's tree table (every node of the tree, stored): O(log n)
lookups and hashes, computed on a worker thread so that a proof never holds the event loop
(issue 16, item 8; ``bench/proofs.py`` measures ``inclusion_proof_ms_100k``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.ledger_api.wire import (
    TREE_HEAD_IN_PROCESS,
    TREE_HEAD_SEALED,
    AnchorView,
    ConsistencyProofView,
    CosignatureView,
    InclusionProofView,
    TreeHeadView,
)
from api.errors import ApiError
from api.read_model import ReadModel
from domain.errors import RejectionCode
from domain.log import HeadState
from proofs.merkle_chunked import ChunkedTree, RunRoots
from proofs.tree_head import SignedTreeHead, sign_tree_head


class TransparencyLog:
    """Serves tree heads from the read model's running tree; proofs from its tree table."""

    def __init__(
        self, read_model: ReadModel, key: Ed25519PrivateKey, clock_ns: Callable[[], int]
    ) -> None:
        self.read_model = read_model
        self.key = key
        self.clock_ns = clock_ns
        self._head: SignedTreeHead | None = None

    async def get_tree_head(self) -> TreeHeadView:
        """The latest sealed head with its co-signatures; an in-process head of the whole log
        while nothing is sealed."""
        await self.read_model.catch_up()
        sealed = self._sealed_head(None)
        if sealed is not None:
            return _sealed_view(sealed)
        tree = self.read_model.tree
        if self._head is None or self._head.size != tree.size:
            self._head = sign_tree_head(self.key, tree.size, tree.root(), self.clock_ns())
        head = self._head
        return TreeHeadView(
            size=head.size,
            root=head.root.hex(),
            timestamp_ns=head.timestamp_ns,
            signer=head.signer.hex(),
            signature=head.signature.hex(),
            source=TREE_HEAD_IN_PROCESS,
        )

    async def get_sealed_tree_head(self, size: int) -> TreeHeadView:
        """The sealed head of ``size`` records with its co-signatures (404 when none)."""
        await self.read_model.catch_up()
        sealed = self._sealed_head(size)
        if sealed is None:
            raise ApiError(
                RejectionCode.TREE_HEAD_NOT_FOUND, f"no sealed tree head of size {size}", status=404
            )
        return _sealed_view(sealed)

    async def get_inclusion_proof(self, position: int, tree_size: int | None) -> InclusionProofView:
        """Audit path of the record at ``position`` in the tree of ``tree_size`` records
        (default: the latest sealed head, else the whole log)."""
        size = await self._tree_size(tree_size)
        if not 1 <= position <= size:
            raise ApiError(
                "tree_size_out_of_range", f"position {position} is not in a tree of size {size}"
            )
        leaf, root, proof = await asyncio.to_thread(
            compute_inclusion, self.read_model.nodes, position - 1, size
        )
        return InclusionProofView(
            position=position,
            leaf_index=position - 1,
            tree_size=size,
            leaf_hash=leaf.hex(),
            root=root.hex(),
            proof=[p.hex() for p in proof],
            source=self._source(size),
        )

    async def get_consistency_proof(self, first: int, second: int | None) -> ConsistencyProofView:
        """Proof that the tree of ``first`` records is a prefix of the tree of ``second``
        (default: the latest sealed head, else the whole log)."""
        size = await self._tree_size(second)
        if not 1 <= first <= size:
            raise ApiError("tree_size_out_of_range", f"first {first} is not in 1..{size}")
        first_root, second_root, proof = await asyncio.to_thread(
            compute_consistency, self.read_model.nodes, first, size
        )
        return ConsistencyProofView(
            first=first,
            second=size,
            first_root=first_root.hex(),
            second_root=second_root.hex(),
            proof=[p.hex() for p in proof],
            source=self._source(size),
        )

    async def _tree_size(self, tree_size: int | None) -> int:
        """The size asked for (default: the latest sealed head, else the whole log)."""
        size = await self.read_model.catch_up()
        if tree_size is None:
            latest = self._sealed_head(None)
            return size if latest is None else latest.size
        if not 1 <= tree_size <= size:
            raise ApiError("tree_size_out_of_range", f"tree size {tree_size} is not in 1..{size}")
        return tree_size

    def _sealed_head(self, size: int | None) -> HeadState | None:
        log = self.read_model.log
        if log is None:
            return None
        return log.latest if size is None else log.heads.get(size)

    def _source(self, size: int) -> str:
        return TREE_HEAD_SEALED if self._sealed_head(size) is not None else TREE_HEAD_IN_PROCESS


def compute_inclusion(nodes: RunRoots, index: int, size: int) -> tuple[bytes, bytes, list[bytes]]:
    """(leaf hash, root, audit path) of leaf ``index`` in the tree of ``size`` leaves, from
    stored nodes: O(log size) lookups and hashes."""
    tree = ChunkedTree(size, 1, nodes, {})
    return nodes.get_run_root(index, 1), tree.root(), tree.inclusion_proof(index)


def compute_consistency(nodes: RunRoots, first: int, size: int) -> tuple[bytes, bytes, list[bytes]]:
    """(first root, second root, proof) that ``first`` leaves are a prefix of ``size``."""
    tree = ChunkedTree(size, 1, nodes, {})
    first_root = ChunkedTree(first, 1, nodes, {}).root()
    return first_root, tree.root(), tree.consistency_proof(first)


def _sealed_view(head: HeadState) -> TreeHeadView:
    anchor = None
    if head.anchor_signature:
        anchor = AnchorView(chain_signature=head.anchor_signature, slot=head.anchor_slot)
    return TreeHeadView(
        size=head.size,
        root=head.root.hex(),
        timestamp_ns=head.timestamp_ns,
        signer=head.signer.hex(),
        signature=head.signature.hex(),
        source=TREE_HEAD_SEALED,
        cosignatures=[
            CosignatureView(validator_id=validator_id, signature=signature.hex())
            for validator_id, signature in sorted(head.cosigners.items())
        ],
        anchor=anchor,
    )

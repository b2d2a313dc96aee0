"""The transparency log: signed tree heads, inclusion and consistency proofs over records."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from api.controllers.common import READ_ERRORS
from api.schemas import POSITION_MAX, ConsistencyProofView, InclusionProofView, TreeHeadView
from api.state import Deps

Position = Annotated[int, Parameter(ge=1, le=POSITION_MAX, description="record position")]
TreeSize = Annotated[
    int | None,
    Parameter(ge=1, le=POSITION_MAX, required=False, description="tree size (default: head)"),
]


class LogController(Controller):
    """``/v1/log``."""

    path = "/v1/log"
    tags = ("log",)

    @get("/tree-head", operation_id="getTreeHead", responses=READ_ERRORS)
    async def tree_head(self, deps: Deps) -> TreeHeadView:
        """The signed tree head of the whole log (Ed25519, ``proofs.tree_head``)."""
        return await deps.log.get_tree_head()

    @get("/inclusion", operation_id="getInclusionProof", responses=READ_ERRORS)
    async def inclusion(
        self, deps: Deps, position: Position, tree_size: TreeSize = None
    ) -> InclusionProofView:
        """Audit path of the record at ``position`` in the tree of ``tree_size`` records."""
        return await deps.log.get_inclusion_proof(position, tree_size)

    @get("/consistency", operation_id="getConsistencyProof", responses=READ_ERRORS)
    async def consistency(
        self, deps: Deps, first: Position, second: TreeSize = None
    ) -> ConsistencyProofView:
        """Proof that the first ``first`` records are a prefix of the first ``second``."""
        return await deps.log.get_consistency_proof(first, second)

"""The transparency log: sealed tree heads with their witness co-signatures, inclusion and
consistency proofs over records, and witnesses' co-signatures (``log.cosign``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import (
    POSITION_MAX,
    CommandAccepted,
    ConsistencyProofView,
    InclusionProofView,
    TreeHeadView,
)
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, READ_ERRORS, SignedEnvelope, to_accepted
from api.state import Deps

Position = Annotated[int, Parameter(ge=1, le=POSITION_MAX, description="record position")]
SizePath = Annotated[int, Parameter(ge=1, le=POSITION_MAX, description="sealed tree size")]
TreeSize = Annotated[
    int | None,
    Parameter(
        ge=1,
        le=POSITION_MAX,
        required=False,
        description="tree size (default: the latest sealed head, else the whole log)",
    ),
]

PATH = "/v1/log"
COSIGN_ROUTE = COMMAND_ROUTES["log.cosign"]


class LogController(Controller):
    """``/v1/log``."""

    path = PATH
    tags = ("log",)

    @get("/tree-head", operation_id="getTreeHead", responses=READ_ERRORS)
    async def tree_head(self, deps: Deps) -> TreeHeadView:
        """The latest sealed tree head with its witness co-signatures and anchor; while
        nothing is sealed, a head this process signs over the whole log (``source``)."""
        return await deps.log.get_tree_head()

    @get("/tree-heads/{size:int}", operation_id="getSealedTreeHead", responses=READ_ERRORS)
    async def sealed_tree_head(self, deps: Deps, size: SizePath) -> TreeHeadView:
        """The sealed tree head of ``size`` records with its co-signatures and anchor."""
        return await deps.log.get_sealed_tree_head(size)

    @post(
        COSIGN_ROUTE.compute_handler_path(PATH),
        operation_id="cosignTreeHead",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def cosign(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """A validator's BLS co-signature of a sealed head it replayed (``log.cosign``)."""
        return to_accepted(await run_command(deps, request, data, COSIGN_ROUTE))

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

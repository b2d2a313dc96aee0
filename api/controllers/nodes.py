"""Nodes: registration, attestation, jailing; lists filtered by region, state and GPU class."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import CommandAccepted, NodeList, NodeView
from api.commands import run_command
from api.controllers.common import (
    COMMAND_ERRORS,
    DEFAULT_LIMIT,
    LIST_ERRORS,
    READ_ERRORS,
    ActorPath,
    Filter,
    Limit,
    Offset,
    SignedEnvelope,
    StateFilter,
    make_page,
    to_accepted,
)
from api.errors import ApiError
from api.state import Deps
from domain.errors import RejectionCode
from domain.node import Node
from domain.services.queries import get_aggregate

PATH = "/v1/nodes"
REGISTER_ROUTE = COMMAND_ROUTES["node.register"]
ATTESTATION_CHALLENGE_ROUTE = COMMAND_ROUTES["node.attestation.challenge"]
ATTESTATION_SUBMIT_ROUTE = COMMAND_ROUTES["node.attestation.submit"]
ATTESTATION_DECIDE_ROUTE = COMMAND_ROUTES["node.attestation.decide"]
ATTESTATION_COMMIT_VERDICT_ROUTE = COMMAND_ROUTES["node.attestation.commit_verdict"]
ATTESTATION_RECORD_VERDICT_ROUTE = COMMAND_ROUTES["node.attestation.record_verdict"]
ATTESTATION_EXPIRE_ROUTE = COMMAND_ROUTES["node.attestation.expire"]
ATTESTATION_RECHALLENGE_ROUTE = COMMAND_ROUTES["node.attestation.rechallenge"]
INVENTORY_UPDATE_ROUTE = COMMAND_ROUTES["node.inventory.update"]
UNJAIL_ROUTE = COMMAND_ROUTES["node.unjail"]
DEREGISTER_ROUTE = COMMAND_ROUTES["node.deregister"]
ADVERTISE_MODELS_ROUTE = COMMAND_ROUTES["node.advertise_models"]  # issue 18


class NodeController(Controller):
    """``/v1/nodes``: node commands and reads."""

    path = PATH
    tags = ("nodes",)

    @post(
        REGISTER_ROUTE.compute_handler_path(PATH),
        operation_id="registerNode",
        status_code=201,
        responses=COMMAND_ERRORS,
    )
    async def register(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Register the signing key as a node (kind ``node.register``)."""
        return to_accepted(await run_command(deps, request, data, REGISTER_ROUTE))

    @get("/", operation_id="listNodes", responses=LIST_ERRORS)
    async def list_nodes(
        self,
        deps: Deps,
        region: Filter = None,
        state_filter: StateFilter = None,
        gpu_class: Filter = None,
        offset: Offset = 0,
        limit: Limit = DEFAULT_LIMIT,
    ) -> NodeList:
        """Nodes in order of registration, filtered by region, state and GPU class."""
        views, total = await deps.read_model.list(
            Node.STREAM_TYPE,
            {"region": region, "state": state_filter, "gpu_class": gpu_class},
            offset=offset,
            limit=limit,
        )
        items = [msgspec.convert(v, NodeView) for v in views]
        return NodeList(items=items, page=make_page(offset, limit, len(items), total))

    @get("/{node_id:str}", operation_id="getNode", responses=READ_ERRORS)
    async def get_node(self, deps: Deps, node_id: ActorPath) -> NodeView:
        """One node, its reputation scored now under the policy in force."""
        node = await get_aggregate(deps.store, Node, node_id)
        if node is None:
            raise ApiError(RejectionCode.NODE_NOT_FOUND, f"no node {node_id}", status=404)
        scored = node.view_reputation(
            now_ns=deps.clock_ns(), policy=await deps.service.get_policy()
        )
        return msgspec.convert({**node.view(), **scored}, NodeView)

    @post(
        ATTESTATION_CHALLENGE_ROUTE.compute_handler_path(PATH),
        operation_id="requestAttestationChallenge",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def request_challenge(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Ask for a fresh attestation challenge (``node.attestation.challenge``)."""
        result = await run_command(deps, request, data, ATTESTATION_CHALLENGE_ROUTE)
        return to_accepted(result)

    @post(
        ATTESTATION_SUBMIT_ROUTE.compute_handler_path(PATH),
        operation_id="submitAttestation",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def submit_attestation(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Answer the open challenge (``node.attestation.submit``)."""
        result = await run_command(deps, request, data, ATTESTATION_SUBMIT_ROUTE)
        return to_accepted(result)

    @post(
        ATTESTATION_DECIDE_ROUTE.compute_handler_path(PATH),
        operation_id="decideAttestation",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def decide_attestation(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Accept or reject a submitted attestation (``node.attestation.decide``, operators)."""
        result = await run_command(deps, request, data, ATTESTATION_DECIDE_ROUTE)
        return to_accepted(result)

    @post(
        ATTESTATION_COMMIT_VERDICT_ROUTE.compute_handler_path(PATH),
        operation_id="commitAttestationVerdict",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def commit_attestation_verdict(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Commit a salted attestation verdict hash (``node.attestation.commit_verdict``)."""
        result = await run_command(deps, request, data, ATTESTATION_COMMIT_VERDICT_ROUTE)
        return to_accepted(result)

    @post(
        ATTESTATION_RECORD_VERDICT_ROUTE.compute_handler_path(PATH),
        operation_id="recordAttestationVerdict",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def record_attestation_verdict(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Reveal a committed attestation verdict (``node.attestation.record_verdict``)."""
        result = await run_command(deps, request, data, ATTESTATION_RECORD_VERDICT_ROUTE)
        return to_accepted(result)

    @post(
        ATTESTATION_EXPIRE_ROUTE.compute_handler_path(PATH),
        operation_id="expireAttestationVote",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def expire_attestation_vote(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Crank an attestation vote whose reveal window closed (``node.attestation.expire``)."""
        result = await run_command(deps, request, data, ATTESTATION_EXPIRE_ROUTE)
        return to_accepted(result)

    @post(
        ATTESTATION_RECHALLENGE_ROUTE.compute_handler_path(PATH),
        operation_id="rechallengeNode",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def rechallenge(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Challenge a node's attestation again (``node.attestation.rechallenge``: an active
        validator or the owner, rules v3)."""
        result = await run_command(deps, request, data, ATTESTATION_RECHALLENGE_ROUTE)
        return to_accepted(result)

    @post(
        INVENTORY_UPDATE_ROUTE.compute_handler_path(PATH),
        operation_id="updateNodeInventory",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def update_inventory(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Replace the node's GPU list (``node.inventory.update``, rules v3): it claims again
        once the new list is attested."""
        result = await run_command(deps, request, data, INVENTORY_UPDATE_ROUTE)
        return to_accepted(result)

    @post(
        UNJAIL_ROUTE.compute_handler_path(PATH),
        operation_id="unjailNode",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def unjail(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Leave jail after the jail period (``node.unjail``)."""
        result = await run_command(deps, request, data, UNJAIL_ROUTE)
        return to_accepted(result)

    @post(
        DEREGISTER_ROUTE.compute_handler_path(PATH),
        operation_id="deregisterNode",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def deregister(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """Leave the network once all stake is withdrawn (``node.deregister``)."""
        result = await run_command(deps, request, data, DEREGISTER_ROUTE)
        return to_accepted(result)

    @post(
        ADVERTISE_MODELS_ROUTE.compute_handler_path(PATH),
        operation_id="advertiseModels",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def advertise_models(
        self, deps: Deps, request: Request[Any, Any, Any], node_id: ActorPath, data: SignedEnvelope
    ) -> CommandAccepted:
        """The registered models the node holds warm and its completion server's URL
        (``node.advertise_models``, issue 18)."""
        return to_accepted(await run_command(deps, request, data, ADVERTISE_MODELS_ROUTE))

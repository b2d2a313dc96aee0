"""``GET /v1/network``: the network id clients sign for and the operator keys (issue 16)."""

from __future__ import annotations

from litestar import Controller, get

from adapters.ledger_api.wire import NetworkView
from api.controllers.common import READ_ERRORS
from api.state import Deps


class NetworkController(Controller):
    """``/v1/network``."""

    path = "/v1/network"
    tags = ("network",)

    @get("/", operation_id="getNetwork", responses=READ_ERRORS)
    async def get_network(self, deps: Deps) -> NetworkView:
        """The rules in force: the network id every envelope names, the rules version, the
        operators, the log key and the deposit authority."""
        policy = await deps.service.get_policy()
        return NetworkView(
            network_id=policy.network_id,
            rules_version=policy.rules_version,
            operators=list(policy.operators),
            log_key=policy.log_key,
            deposit_authority=policy.deposit_authority,
        )

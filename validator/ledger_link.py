"""Commands to the ledger through the HTTP API, and the validator's registration.

The API client is synchronous (httpx); calls run in a worker thread. A 4xx problem is a
rejection (``CommandRefused``, not retried); a transport error or a 5xx is an operating error
(``ConnectionError``), retried by the daemon later.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import structlog

from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem
from proofs import bls
from validator.daemon import CommandRefused

_log = structlog.get_logger("flopledger.validator")


class ApiLedgerLink:
    """``LedgerLink`` over the ledger API client (signed with the validator's key)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def send(self, path: str, kind: str, body: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.client.send, path, kind, body)
        except ApiProblem as problem:
            if problem.status >= 500:
                raise ConnectionError(str(problem)) from problem
            raise CommandRefused(problem.code) from problem
        except httpx.TransportError as exc:
            raise ConnectionError(str(exc)) from exc


def ensure_registered(client: ApiClient, *, bls_secret: int, stake: int) -> dict[str, Any]:
    """Register the validator (BLS key with proof of possession) unless it is, and bond up to
    ``stake``. Returns the validator's view."""
    assert client.identity is not None
    validator_id = client.identity.id
    try:
        view = dict(client.get(f"/v1/validators/{validator_id}"))
    except NotFoundProblem:
        body = {
            "bls_public_key": _b64(bls.sk_to_pk(bls_secret)),
            "proof_of_possession": _b64(bls.pop_prove(bls_secret)),
        }
        client.send("/v1/validators", "validator.register", body)
        _log.info("validator_registered", validator_id=validator_id)
        view = dict(client.get(f"/v1/validators/{validator_id}"))
    missing = stake - int(view.get("stake", 0))
    if missing > 0:
        client.send("/v1/stake/bond", "stake.bond", {"target": validator_id, "amount": missing})
        _log.info("stake_bonded", validator_id=validator_id, amount=missing)
        view = dict(client.get(f"/v1/validators/{validator_id}"))
    return view


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

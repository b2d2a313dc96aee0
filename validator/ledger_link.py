"""Commands to the ledger through the HTTP API, and the validator's registration.

The API client is synchronous (httpx); calls run in a worker thread. A 4xx problem is a
rejection (``CommandRefused``, not retried); a transport error or a 5xx is an operating error
(``ConnectionError``), retried by the daemon later.
"""

from __future__ import annotations

import asyncio

import httpx
import structlog

from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem
from adapters.ledger_api.keys_client import ensure_encryption_key
from adapters.ledger_api.wire import ValidatorView
from domain.commands import BondStake, Command, RegisterValidator
from proofs import bls
from validator.daemon import CommandRefused

_log = structlog.get_logger("flopledger.validator")


class ApiLedgerLink:
    """``LedgerLink`` over the ledger API client (signed with the validator's key)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def send(self, command: Command) -> None:
        try:
            await asyncio.to_thread(self.client.send, command)
        except ApiProblem as problem:
            if problem.status >= 500:
                raise ConnectionError(str(problem)) from problem
            raise CommandRefused(problem.code) from problem
        except httpx.TransportError as exc:
            raise ConnectionError(str(exc)) from exc


def ensure_registered(client: ApiClient, *, bls_secret: int, stake: int) -> ValidatorView:
    """Register the validator (BLS key with proof of possession) unless it is, and bond up to
    ``stake``. Returns the validator's view."""
    if client.identity is None:
        raise ValueError("registering a validator needs the client's identity")
    validator_id = client.identity.id
    try:
        view = client.get_validator(validator_id)
    except NotFoundProblem:
        client.send(
            RegisterValidator(
                bls_public_key=bls.sk_to_pk(bls_secret),
                proof_of_possession=bls.pop_prove(bls_secret),
                stake=stake if stake > 0 else None,
            )
        )
        _log.info("validator_registered", validator_id=validator_id)
        view = client.get_validator(validator_id)
    missing = stake - view.stake
    if missing > 0:
        client.send(BondStake(target=validator_id, amount=missing))
        _log.info("stake_bonded", validator_id=validator_id, amount=missing)
        view = client.get_validator(validator_id)
    return view


def ensure_encryption_key_registered(client: ApiClient) -> None:
    """Register the validator's X25519 key (derived from its key file) on first use, so
    that private jobs' keys can be released to it (issue 17); a ledger before rules v5
    refuses, which matters only to private jobs."""
    if client.identity is None:
        raise ValueError("registering an encryption key needs the client's identity")
    try:
        ensure_encryption_key(client, client.identity)
    except ApiProblem as problem:
        _log.warning("encryption_key_refused", code=problem.code, detail=problem.detail)

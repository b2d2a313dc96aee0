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
from domain.commands import BondStake, Command, DeclareCheckModels, RegisterValidator
from domain.errors import RejectionCode
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


def ensure_check_models_declared(client: ApiClient, model_ids: list[str]) -> bool:
    """Declare the models this validator checks (``validator.declare_models``) unless the
    ledger's view of it says so already: a sampled completion is drawn only to its model's
    declarers. An unchanged refusal (a concurrent start declared the same) is success.
    Returns whether a declaration was sent."""
    if client.identity is None:
        raise ValueError("declaring models needs the client's identity")
    validator_id = client.identity.id
    wanted = sorted(set(model_ids))
    if sorted(client.get_validator(validator_id).check_models) == wanted:
        return False
    try:
        client.send(DeclareCheckModels(validator_id=validator_id, models=wanted))
    except ApiProblem as problem:
        if problem.code != RejectionCode.VALIDATOR_MODELS_UNCHANGED:
            raise
        return False
    _log.info("check_models_declared", validator_id=validator_id, models=wanted)
    return True

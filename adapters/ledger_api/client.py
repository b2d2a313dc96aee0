"""A Python client of the HTTP API: signs typed commands, parses answers into wire types.

``send(command)`` takes a command of ``domain.commands``, derives its kind and route from the
command table (``adapters.ledger_api.routes``), signs and posts it, and returns the typed
answer; reads return the views of ``adapters.ledger_api.wire``.

Every command is sent with an ``Idempotency-Key`` (the envelope's digest), so a retry after a
lost connection returns the first response instead of executing twice. Problem+json answers
become ``ApiProblem`` subclasses chosen by status, carrying the stable ``code``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, overload

import httpx
import msgspec

from adapters.ledger_api.routes import get_route
from adapters.ledger_api.wire import (
    ApiKeyView,
    BalanceView,
    CommandAccepted,
    CompletionAccepted,
    CompletionRecordView,
    EncryptionKeyView,
    JobAccepted,
    JobList,
    JobView,
    NetworkView,
    NodeList,
    NodeView,
    RegisteredModelList,
    RegisteredModelView,
    TreeHeadView,
    ValidatorView,
)
from domain.commands import (
    AbortCompletion,
    AdvertiseModels,
    CancelJob,
    Command,
    CommitCompletion,
    DeclareCheckModels,
    OpenCompletion,
    SubmitJob,
    WarmModelSpec,
    Withdraw,
    encode_command_body,
)
from proofs.envelope import from_command_envelope, sign_command
from proofs.identity import Identity

DEFAULT_TIMEOUT_S = 10.0
TRANSPORT_RETRIES_MAX = 2
NONCE_BYTES = 12


class ApiProblem(Exception):
    """An RFC 9457 problem returned by the API."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.code = str(problem.get("code", f"http_{status}"))
        self.type = str(problem.get("type", "about:blank"))
        self.detail = str(problem.get("detail", ""))
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        self.request_id = problem.get("request_id")
        super().__init__(f"{status} {self.code}: {self.detail}")


class NotAuthenticated(ApiProblem):
    """401: bad signature, expired or replayed envelope."""


class Forbidden(ApiProblem):
    """403: the actor may not do this."""


class NotFoundProblem(ApiProblem):
    """404."""


class Conflict(ApiProblem):
    """409: not allowed in the current state, or an Idempotency-Key reused."""


class InvalidRequest(ApiProblem):
    """422: the request or the command broke a rule; ``errors`` names fields."""


class Unavailable(ApiProblem):
    """503: the store (or another dependency) is unavailable; worth a later retry."""


class ServerError(ApiProblem):
    """500: a bug on the server; quote ``request_id``."""


_BY_STATUS: dict[int, type[ApiProblem]] = {
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFoundProblem,
    409: Conflict,
    422: InvalidRequest,
    500: ServerError,
    503: Unavailable,
}


class ApiClient:
    """Synchronous client. Pass ``http`` to reuse a client (e.g. Litestar's TestClient)."""

    def __init__(
        self,
        base_url: str = "",
        *,
        identity: Identity | None = None,
        http: httpx.Client | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock_ns: Callable[[], int] = time.time_ns,
        network_id: str | None = None,
    ) -> None:
        self.identity = identity
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout_s)
        self.clock_ns = clock_ns
        self._network_id = network_id

    def close(self) -> None:
        self.http.close()

    # -- commands -------------------------------------------------------------------------

    @overload
    def send(self, command: SubmitJob, *, identity: Identity | None = None) -> JobAccepted: ...
    @overload
    def send(
        self, command: OpenCompletion, *, identity: Identity | None = None
    ) -> CompletionAccepted: ...
    @overload
    def send(self, command: Command, *, identity: Identity | None = None) -> CommandAccepted: ...
    def send(self, command: Command, *, identity: Identity | None = None) -> CommandAccepted:
        """Sign ``command``, POST it to its route (``routes.COMMAND_ROUTES``), parse the answer.

        The kind and the path come from the command's type and ids, never from the caller."""
        route = get_route(command)
        body = encode_command_body(command)
        answer = self.post_signed(route.compute_path(body), route.kind, body, identity=identity)
        return msgspec.convert(answer, route.result_type)

    def cancel_job(self, job_id: str, *, identity: Identity | None = None) -> CommandAccepted:
        """Cancel an unclaimed job of the signer's (``job.cancel``, rules v5): its escrow goes
        back to the signer's account."""
        return self.send(CancelJob(job_id=job_id), identity=identity)

    # -- issue 18: LLM completions ---------------------------------------------------------

    def advertise_models(
        self,
        node_id: str,
        models: list[tuple[str, int]],
        endpoint: str = "",
        *,
        identity: Identity | None = None,
    ) -> CommandAccepted:
        """Say which registered models node ``node_id`` holds warm, as (model id, capacity)
        pairs, and the URL of its completion server (``node.advertise_models``, signed by
        the node's key; ``node_models_unchanged`` when nothing changed)."""
        specs = [WarmModelSpec(model_id=m, capacity=n) for m, n in models]
        command = AdvertiseModels(node_id=node_id, models=specs, endpoint=endpoint)
        return self.send(command, identity=identity)

    def declare_check_models(
        self, validator_id: str, models: list[str], *, identity: Identity | None = None
    ) -> CommandAccepted:
        """Say which registered models validator ``validator_id`` checks
        (``validator.declare_models``, signed by the validator's key; an empty list: none;
        ``validator_models_unchanged`` when nothing changed)."""
        command = DeclareCheckModels(validator_id=validator_id, models=list(models))
        return self.send(command, identity=identity)

    def open_completion(
        self,
        *,
        key_id: str,
        model_id: str,
        node_id: str,
        request_digest: bytes,
        prompt_tokens_max: int,
        max_tokens: int,
        greedy: bool,
        identity: Identity | None = None,
    ) -> CompletionAccepted:
        """Open a completion under a consumer's key (``completion.open``, signed by a
        completion signer); the answer's ``completion_id`` names it."""
        command = OpenCompletion(
            key_id=key_id,
            model_id=model_id,
            node_id=node_id,
            request_digest=request_digest,
            prompt_tokens_max=prompt_tokens_max,
            max_tokens=max_tokens,
            greedy=greedy,
        )
        return self.send(command, identity=identity)

    def commit_completion(
        self,
        completion_id: str,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        commitment: bytes,
        proof_digest: bytes,
        identity: Identity | None = None,
    ) -> CommandAccepted:
        """The serving node's usage and commitment (``completion.commit``): settled at once."""
        command = CommitCompletion(
            completion_id=completion_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            commitment=commitment,
            proof_digest=proof_digest,
        )
        return self.send(command, identity=identity)

    def abort_completion(
        self, completion_id: str, reason: str = "", *, identity: Identity | None = None
    ) -> CommandAccepted:
        """Void an uncommitted completion (``completion.abort``): the escrow goes back."""
        command = AbortCompletion(completion_id=completion_id, reason=reason)
        return self.send(command, identity=identity)

    def get_completion_record(self, completion_id: str) -> CompletionRecordView:
        """A completion's ledger record (NotFoundProblem when there is none)."""
        answer = self.get(f"/v1/completion-records/{completion_id}")
        return msgspec.convert(answer, CompletionRecordView)

    def withdraw(
        self, amount: int, destination: str | None = None, *, identity: Identity | None = None
    ) -> CommandAccepted:
        """Withdraw ``amount`` from the signer's account to ``destination`` on Solana (the
        signer's own address when None): the gateway pays it (``account.withdraw``)."""
        return self.send(Withdraw(amount=amount, destination=destination), identity=identity)

    def post_signed(
        self, path: str, kind: str, body: dict[str, Any], *, identity: Identity | None = None
    ) -> Any:
        """Sign ``body`` as a ``kind`` command and POST it to ``path`` as given: ``send`` is
        the way to run a command; this is for probing the API's own checks (a kind on the
        wrong route, a body the ledger refuses) and returns the decoded JSON answer."""
        signer = identity or self.identity
        if signer is None:
            raise ValueError("a command needs an identity to sign it")
        envelope = sign_command(
            signer,
            kind,
            body,
            nonce=secrets.token_hex(NONCE_BYTES),
            issued_at_ns=self.clock_ns(),
            network=self.get_network_id(),
        )
        payload = msgspec.json.encode(from_command_envelope(envelope))
        headers = {
            "content-type": "application/json",
            "idempotency-key": envelope.digest().hex(),
        }
        for attempt in range(TRANSPORT_RETRIES_MAX + 1):
            try:
                response = self.http.post(path, content=payload, headers=headers)
            except httpx.TransportError:
                if attempt == TRANSPORT_RETRIES_MAX:
                    raise
                continue
            return self._decode(response)
        raise AssertionError("unreachable")

    def get_network_id(self) -> str:
        """The network this client signs for: given at construction, else the server's
        (``GET /v1/network``, asked once; ``""`` while the ledger has no genesis yet)."""
        if self._network_id is None:
            try:
                network = self.get_network()
            except InvalidRequest as exc:
                if exc.code == "genesis_missing":
                    return ""
                raise
            self._network_id = network.network_id
        return self._network_id

    # -- reads ----------------------------------------------------------------------------

    def get_network(self) -> NetworkView:
        return msgspec.convert(self.get("/v1/network"), NetworkView)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` and decode its JSON (None-valued params are left out)."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self._decode(self.http.get(path, params=clean))

    def get_node(self, node_id: str) -> NodeView:
        return msgspec.convert(self.get(f"/v1/nodes/{node_id}"), NodeView)

    def list_nodes(self, **filters: Any) -> NodeList:
        return msgspec.convert(self.get("/v1/nodes", filters), NodeList)

    def get_job(self, job_id: str) -> JobView:
        return msgspec.convert(self.get(f"/v1/jobs/{job_id}"), JobView)

    def list_jobs(self, **filters: Any) -> JobList:
        return msgspec.convert(self.get("/v1/jobs", filters), JobList)

    def get_encryption_key(self, actor_id: str) -> EncryptionKeyView:
        """An actor's registered encryption key (NotFoundProblem when it registered none)."""
        return msgspec.convert(self.get(f"/v1/keys/{actor_id}"), EncryptionKeyView)

    def get_api_key(self, key_id: str) -> ApiKeyView:
        """A delegated API key's record (NotFoundProblem when there is none)."""
        return msgspec.convert(self.get(f"/v1/apikeys/{key_id}"), ApiKeyView)

    def get_registered_model(self, model_id: str) -> RegisteredModelView:
        """A registered model (NotFoundProblem when there is none)."""
        return msgspec.convert(self.get(f"/v1/registered-models/{model_id}"), RegisteredModelView)

    def list_registered_models(self, *, offset: int = 0, limit: int = 100) -> RegisteredModelList:
        """One page of the registered models, in order of registration."""
        answer = self.get("/v1/registered-models", params={"offset": offset, "limit": limit})
        return msgspec.convert(answer, RegisteredModelList)

    def get_validator(self, validator_id: str) -> ValidatorView:
        return msgspec.convert(self.get(f"/v1/validators/{validator_id}"), ValidatorView)

    def get_balance(self, account_id: str) -> BalanceView:
        return msgspec.convert(self.get(f"/v1/accounts/{account_id}"), BalanceView)

    def get_tree_head(self) -> TreeHeadView:
        return msgspec.convert(self.get("/v1/log/tree-head"), TreeHeadView)

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:200]}
            if not isinstance(problem, dict):
                problem = {"detail": str(problem)[:200]}
            error_type = _BY_STATUS.get(response.status_code, ApiProblem)
            raise error_type(response.status_code, problem)
        return response.json()

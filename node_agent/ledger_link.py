"""The ledger as the agent sees it: the HTTP API through ``adapters.ledger_api.client.ApiClient``.

The client is synchronous (httpx); each call runs in a worker thread. Transport failures and
503 answers become ``LedgerUnavailable`` (an operating error the agent retries with
backoff); every other problem stays an ``ApiProblem`` carrying the ledger's stable code.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import httpx

from adapters.ledger_api.client import ApiClient, ApiProblem, NotFoundProblem, Unavailable

T = TypeVar("T")


class LedgerUnavailable(Exception):
    """The API cannot be reached (or answered 503); worth retrying later."""


class Ledger(Protocol):
    """What the agent needs from the ledger (``ApiLedger``; tests pass fakes)."""

    async def get_node(self, node_id: str) -> dict[str, Any] | None: ...
    async def register_node(self, body: dict[str, Any]) -> None: ...
    async def bond(self, node_id: str, amount: int) -> None: ...
    async def request_challenge(self, node_id: str) -> None: ...
    async def submit_attestation(self, body: dict[str, Any]) -> None: ...
    async def list_jobs(self, **filters: Any) -> list[dict[str, Any]]: ...
    async def get_job(self, job_id: str) -> dict[str, Any]: ...
    async def claim(self, job_id: str, node_id: str) -> None: ...
    async def release(self, job_id: str, reason: str) -> None: ...
    async def commit_result(
        self, job_id: str, commitment: bytes, artifact_digest: bytes, proof_digest: bytes
    ) -> None: ...


class ApiLedger:
    """``Ledger`` over the HTTP API, signing as the node."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def close(self) -> None:
        self._client.close()

    async def get_node(self, node_id: str) -> dict[str, Any] | None:
        try:
            return await self._call(lambda: self._client.get_node(node_id))
        except NotFoundProblem:
            return None

    async def register_node(self, body: dict[str, Any]) -> None:
        await self._send("/v1/nodes", "node.register", body)

    async def bond(self, node_id: str, amount: int) -> None:
        await self._send("/v1/stake/bond", "stake.bond", {"target": node_id, "amount": amount})

    async def request_challenge(self, node_id: str) -> None:
        path = f"/v1/nodes/{node_id}/attestation/challenge"
        await self._send(path, "node.attestation.challenge", {"node_id": node_id})

    async def submit_attestation(self, body: dict[str, Any]) -> None:
        path = f"/v1/nodes/{body['node_id']}/attestation"
        await self._send(path, "node.attestation.submit", body)

    async def list_jobs(self, **filters: Any) -> list[dict[str, Any]]:
        page = await self._call(lambda: self._client.list_jobs(**filters))
        return list(page.get("items", []))

    async def get_job(self, job_id: str) -> dict[str, Any]:
        return await self._call(lambda: self._client.get_job(job_id))

    async def claim(self, job_id: str, node_id: str) -> None:
        body = {"job_id": job_id, "node_id": node_id}
        await self._send(f"/v1/jobs/{job_id}/claim", "job.claim", body)

    async def release(self, job_id: str, reason: str) -> None:
        body = {"job_id": job_id, "reason": reason}
        await self._send(f"/v1/jobs/{job_id}/release", "job.release", body)

    async def commit_result(
        self, job_id: str, commitment: bytes, artifact_digest: bytes, proof_digest: bytes
    ) -> None:
        body = {
            "job_id": job_id,
            "commitment": b64(commitment),
            "artifact_digest": b64(artifact_digest),
            "proof_digest": b64(proof_digest),
        }
        await self._send(f"/v1/jobs/{job_id}/result", "job.commit_result", body)

    async def _send(self, path: str, kind: str, body: dict[str, Any]) -> None:
        await self._call(lambda: self._client.send(path, kind, body))

    async def _call(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except httpx.TransportError as exc:
            raise LedgerUnavailable(f"API unreachable: {exc}") from exc
        except Unavailable as exc:
            raise LedgerUnavailable(f"API unavailable: {exc.detail}") from exc


def b64(data: bytes) -> str:
    """Bytes as the API's JSON carries them (standard base64)."""
    return base64.b64encode(data).decode()


__all__ = ["ApiLedger", "ApiProblem", "Ledger", "LedgerUnavailable", "b64"]

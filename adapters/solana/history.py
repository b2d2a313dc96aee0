"""The chain's history as the audit reads it, over JSON-RPC (issue 16, items 3 and 4).

``RpcChainHistory`` asks any endpoint that speaks the subset of Solana's JSON-RPC the audit
needs: ``getTransaction`` (base64, ``maxSupportedTransactionVersion`` 0) and
``getSignaturesForAddress`` (paged with ``before``), at ``finalized`` commitment; a
transaction found only at ``confirmed`` is reported as not final. A real cluster's RPC
answers these, and so does the devnet operator's loopback endpoint (``/rpc``, served from
the LiteSVM chain log). Answers are parsed here, once; an unreachable or malformed endpoint
is a ``ChainError``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from adapters.solana.common import ChainError, decode_chain_transaction
from domain.ports import ChainMemo, ChainTransaction

REQUEST_TIMEOUT_S = 30.0
SIGNATURES_PAGE_MAX = 1000
SIGNATURE_PAGES_MAX = 100_000
FINALIZED = "finalized"
CONFIRMED = "confirmed"


class RpcChainHistory:
    """Read-only history of a cluster (or the devnet operator) at ``url``."""

    def __init__(
        self, url: str, treasury: str = "", *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url
        self.treasury = treasury
        self.http = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, transport=transport)
        self._ids = 0

    async def get_transaction(self, signature: str) -> ChainTransaction | None:
        found = await self._get_transaction(signature, FINALIZED)
        if found is not None:
            return found
        return await self._get_transaction(signature, CONFIRMED)

    async def get_memo(self, signature: str) -> ChainMemo | None:
        """The anchor check's view (``validator.audit_run.AnchorReader``)."""
        found = await self.get_transaction(signature)
        return None if found is None else ChainMemo(memo=found.memo, slot=found.slot)

    async def list_signatures(self, address: str) -> list[str]:
        """Every successful finalized signature naming ``address``, oldest first."""
        newest_first: list[str] = []
        before: str | None = None
        for _ in range(SIGNATURE_PAGES_MAX):
            options: dict[str, Any] = {"limit": SIGNATURES_PAGE_MAX, "commitment": FINALIZED}
            if before is not None:
                options["before"] = before
            page = await self._call("getSignaturesForAddress", [address, options])
            if not isinstance(page, list):
                raise ChainError(f"getSignaturesForAddress answered {type(page).__name__}")
            newest_first.extend(str(s["signature"]) for s in page if s.get("err") is None)
            if len(page) < SIGNATURES_PAGE_MAX:
                return newest_first[::-1]
            before = str(page[-1]["signature"])
        raise ChainError(f"{address} has more than {SIGNATURE_PAGES_MAX} pages of signatures")

    async def close(self) -> None:
        await self.http.aclose()

    async def _get_transaction(self, signature: str, commitment: str) -> ChainTransaction | None:
        options = {
            "encoding": "base64",
            "commitment": commitment,
            "maxSupportedTransactionVersion": 0,
        }
        found = await self._call("getTransaction", [signature, options])
        if found is None:
            return None
        try:
            raw = base64.b64decode(found["transaction"][0])
            tx = VersionedTransaction.from_bytes(raw)
            meta = found.get("meta") or {}
            loaded = meta.get("loadedAddresses") or {}
            addresses = [
                Pubkey.from_string(key)
                for key in (*loaded.get("writable", ()), *loaded.get("readonly", ()))
            ]
            return decode_chain_transaction(
                tx,
                int(found["slot"]),
                addresses,
                finalized=commitment == FINALIZED,
                succeeded=meta.get("err") is None,
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ChainError(f"getTransaction {signature}: malformed answer: {exc}") from exc

    async def _call(self, method: str, params: list[Any]) -> Any:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        try:
            response = await self.http.post(self.url, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainError(f"{method} at {self.url} failed: {exc}") from exc
        if not isinstance(answer, dict):
            raise ChainError(f"{method} at {self.url}: not a JSON-RPC answer")
        if answer.get("error") is not None:
            raise ChainError(f"{method} at {self.url}: {answer['error']}")
        return answer.get("result")

"""The devnet's participants' side of the operator process's chain (``devnet.operator``).

``ChainClient`` asks the faucet for lamports, signs a deposit to the treasury with the
depositor's own key (an Ed25519 seed is also a Solana keypair: the actor id is the address)
and sends it; ``AnchorReader`` reads memos back for the audit's on-chain anchor check.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from adapters.solana.common import build_transaction
from domain.ports import ChainMemo
from domain.services.bridge_service import DEPOSIT_MEMO_PREFIX

REQUEST_TIMEOUT_S = 10.0
FEE_LAMPORTS = 1_000_000  # comfortably more than a transaction's fee


class ChainClient:
    """Synchronous client of the operator process's chain endpoints."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def deposit(self, seed: bytes, amount: int) -> dict[str, Any]:
        """Airdrop the depositor enough lamports, then send ``amount`` to the treasury with
        the deposit memo; the operator credits it to the depositor's ledger account."""
        payer = Keypair.from_seed(seed)
        address = str(payer.pubkey())
        self._post("/faucet", {"address": address, "lamports": amount + FEE_LAMPORTS})
        chain = self._get("/blockhash")
        tx = build_transaction(
            payer,
            Hash.from_string(chain["blockhash"]),
            DEPOSIT_MEMO_PREFIX + address,
            Pubkey.from_string(chain["treasury"]),
            amount,
        )
        return self._post("/transactions", {"transaction": base64.b64encode(bytes(tx)).decode()})

    def health(self) -> dict[str, Any]:
        return self._get("/health")

    def _get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"chain {path} answered {response.status_code}: {response.text}")
        return response.json()


class AnchorReader:
    """The audit's ``AnchorReader`` over the operator process (async, read-only)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S)

    async def get_memo(self, signature: str) -> ChainMemo | None:
        response = await self.http.get(f"/memos/{signature}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        response.raise_for_status()
        body = response.json()
        return ChainMemo(memo=str(body["memo"]), slot=int(body["slot"]))

    async def close(self) -> None:
        await self.http.aclose()

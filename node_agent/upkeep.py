"""The node's standing with the ledger: registered, staked, attested; heartbeats out.

``ensure_registered`` registers the key as a node once. ``tend(node)`` runs on every
maintenance tick with the ledger's view of the node: it bonds stake up to the configured
amount and answers (or asks for) an attestation challenge. The heartbeat loop announces the
node's busy slots on NATS.

A timed challenge (rules v3, issue 15) is not answered here: the validators drawn for it
probe the node's devices over NATS (``node_agent.probe_responder``), and only they may
(``is_probe_authorized``). An attestation expires: the node asks for the next challenge
``reattest_margin_s`` before its attestation lapses, and again after a failed one (the
ledger spaces challenges by ``rechallenge_interval_min_ns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
import structlog
import torch

from adapters.compute.attestation import answer_challenge
from adapters.compute.nvml import Inventory, compute_gpu_specs
from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.wire import ChallengeView, NodeView
from domain.commands import BondStake, RegisterNode, RequestAttestationChallenge, SubmitAttestation
from domain.errors import RejectionCode
from domain.node import ACTIVE, ATTESTED, DEREGISTERED, JAILED, REGISTERED
from node_agent.config import AgentConfig
from node_agent.ledger_link import Ledger
from node_agent.sinks import ArtifactSink, ArtifactsUnavailable
from proofs.identity import Identity

_log = structlog.get_logger("flopledger.agent")


class HeartbeatSink(Protocol):
    async def heartbeat(self, node_id: str, region: str, gpus_total: int, busy: int) -> None: ...


class Upkeep:
    """Registration, stake and attestation of one node, and its heartbeats."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        identity: Identity,
        gpu_class: str,
        ledger: Ledger,
        artifacts: ArtifactSink,
        inventory: Inventory,
        devices: list[torch.device],
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.identity = identity
        self.node_id = identity.id
        self.gpu_class = gpu_class
        self.ledger = ledger
        self.artifacts = artifacts
        self.inventory = inventory
        self.devices = devices
        self.clock_ns = clock_ns
        self._answered_nonces: set[str] = set()
        self._probers: frozenset[str] = frozenset()

    async def ensure_registered(self) -> None:
        """Register the key as a node unless the ledger knows it."""
        if await self.ledger.get_node(self.node_id) is not None:
            return
        gpus = compute_gpu_specs(self.inventory)
        fields = {
            "region": self.config.region,
            "gpus": gpus,
            "gpu_class": self.gpu_class,
            "price": self.config.price,
        }
        await self.ledger.send(msgspec.convert(fields, RegisterNode))
        _log.info(
            "node_registered",
            node_id=self.node_id,
            region=self.config.region,
            gpu_class=self.gpu_class,
            gpus=len(gpus),
        )

    async def tend(self, node: NodeView) -> None:
        """Bond missing stake, then see to the attestation challenge."""
        await self._ensure_stake(node)
        await self._handle_attestation(node)

    async def heartbeat_loop(
        self, stop: asyncio.Event, sink: HeartbeatSink, slots_total: int, busy: Callable[[], int]
    ) -> None:
        """Announce the node's slots every ``heartbeat_interval_s`` until ``stop``."""
        while not stop.is_set():
            try:
                await sink.heartbeat(self.node_id, self.config.region, slots_total, busy())
            except ArtifactsUnavailable as exc:
                _log.warning("heartbeat_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.heartbeat_interval_s)

    async def _ensure_stake(self, node: NodeView) -> None:
        missing = self.config.stake - node.stake
        if missing <= 0 or node.state in (JAILED, DEREGISTERED):
            return
        try:
            await self.ledger.send(BondStake(target=self.node_id, amount=missing))
        except ApiProblem as problem:
            _log.warning("stake_bond_refused", code=problem.code, amount=missing)
            return
        _log.info("stake_bonded", node_id=self.node_id, amount=missing)

    def is_probe_authorized(self, validator_id: str, kind: str) -> bool:
        """Anyone may ping; only the validators drawn for the open challenge may probe."""
        return kind == "ping" or validator_id in self._probers

    async def _handle_attestation(self, node: NodeView) -> None:
        challenge = node.challenge
        self._probers = frozenset(node.attestation_validators if challenge else ())
        if challenge is None or challenge.deadline_ns < self.clock_ns():
            if self._needs_challenge(node):
                await self._request_challenge()
            return
        if challenge.probes or challenge.nonce in self._answered_nonces:
            return
        await self._answer(challenge)

    def _needs_challenge(self, node: NodeView) -> bool:
        """Registered and never attested; or the attestation lapses within the margin, or
        covers other GPUs than the node has now (rules v3)."""
        if node.state == REGISTERED:
            return True
        if node.state not in (ATTESTED, ACTIVE) or not node.attestation_tier:
            return False
        margin_ns = int(self.config.reattest_margin_s * 1e9)
        lapsing = node.attestation_expires_ns - margin_ns <= self.clock_ns()
        return lapsing or not node.inventory_attested

    async def _request_challenge(self) -> None:
        try:
            await self.ledger.send(RequestAttestationChallenge(node_id=self.node_id))
        except ApiProblem as problem:
            _log.info("attestation_challenge_refused", code=problem.code)
            return
        _log.info("attestation_challenge_requested", node_id=self.node_id)

    async def _answer(self, challenge: ChallengeView) -> None:
        answer = await asyncio.to_thread(
            answer_challenge,
            self.identity,
            nonce=challenge.nonce,
            seed=challenge.seed,
            size=challenge.size,
            inventory=self.inventory,
            devices=self.devices,
            now_ns=self.clock_ns(),
        )
        await self.artifacts.put(answer.report)
        submission = SubmitAttestation(
            node_id=self.node_id,
            nonce=challenge.nonce,
            inventory_digest=answer.inventory_digest,
            commitment=answer.commitment,
            timings_ns=answer.timings_ns,
        )
        try:
            await self.ledger.send(submission)
        except ApiProblem as problem:
            if problem.code != RejectionCode.ATTESTATION_ALREADY_SUBMITTED:
                raise
        self._answered_nonces.add(challenge.nonce)
        _log.info(
            "attestation_submitted",
            node_id=self.node_id,
            size=challenge.size,
            report=answer.inventory_digest.hex(),
            timings_ns=answer.timings_ns,
        )

"""Validator daemons that check sampled completions, against the in-process completion network
(tests/completion_network.py), and a node that serves a given bundle: for the daemon's
completion duty (tests/unit/validator/test_daemon_completions.py) and the detection matrix
played through the ledger (tests/adversarial/test_llm_detection.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from adapters.compute.llm_model import LoadedModel
from domain.completions import FINISHED_STATES, Completion
from domain.policy import PPM, LedgerPolicy
from flopledger.network import ValidatorKeys, b64
from proofs.identity import Identity
from proofs.llm_request import (
    CompletionBundle,
    compute_prompt_tokens_bound,
    compute_request_digest,
    encode_bundle,
)
from tests.completion_network import (
    MODEL_ID,
    NODE,
    POLICY,
    CompletionNet,
    register_model,
    start_completion_network,
)
from tests.inprocess import DictArtifacts, InProcessLedgerLink, follow_records
from validator.daemon import ValidatorDaemon
from validator.protection import SigningDatabase

STEPS_MAX = 64
"""Ticks (each one simulated second) a check may take to be decided."""
ALWAYS_SAMPLED = msgspec.structs.replace(POLICY, completion_sample_rate_ppm=PPM)
"""Every completion checked (the network's default samples 10 %)."""
VALIDATORS = 3


async def start_checked_network(
    model_id: str = MODEL_ID, policy: LedgerPolicy = ALWAYS_SAMPLED
) -> tuple[CompletionNet, list[ValidatorKeys]]:
    """The completion network (``policy``: every completion sampled), ``model_id``
    registered (float32) and held warm by its node, and three bonded validators."""
    cnet = await start_completion_network(policy)
    if model_id != MODEL_ID:
        await register_model(cnet.net, model_id)
        advertised = {
            "node_id": NODE.id,
            "models": [{"model_id": model_id, "capacity": 4}],
            "endpoint": "http://127.0.0.1:9300",
        }
        await cnet.net.run(NODE, "node.advertise_models", advertised)
    return cnet, await cnet.add_validators(VALIDATORS, check_models=())


class CheckingValidators:
    """One daemon per key, each holding the models in ``holds`` (by validator index; default:
    every model in ``models``), all reading ``artifacts``; ``declare`` has them declare."""

    def __init__(
        self,
        cnet: CompletionNet,
        keys: Sequence[ValidatorKeys],
        models: Mapping[str, LoadedModel],
        tmp: Path,
        holds: Mapping[int, Sequence[str]] | None = None,
    ) -> None:
        self.cnet, self.artifacts = cnet, DictArtifacts()
        self.daemons = [
            ValidatorDaemon(
                identity=k.identity,
                bls_secret=k.bls_secret,
                ledger=InProcessLedgerLink(cnet.net, k.identity),
                artifacts=self.artifacts,
                db=SigningDatabase(tmp / f"validator-{i}.db"),
                clock_ns=lambda: cnet.net.now_ns,
                check_models={
                    model_id: models[model_id]
                    for model_id in (holds.get(i, ()) if holds is not None else models)
                },
            )
            for i, k in enumerate(keys)
        ]

    async def declare(self, declares: Mapping[int, Sequence[str]] | None = None) -> None:
        """Each daemon declares the models it holds (as ``flopledger validator`` does at
        start), or, by validator index, those in ``declares`` (a declarer that holds none)."""
        for i, daemon in enumerate(self.daemons):
            models = declares.get(i, ()) if declares is not None else sorted(daemon.check_models)
            if models:
                await self.cnet.declare_models(daemon.identity, tuple(models))

    async def tick(self) -> None:
        for daemon in self.daemons:
            await daemon.follow(follow_records(self.cnet.net, daemon.checkpoint.position))
            await daemon.tick()

    async def settle(self, completion_id: str) -> Completion:
        """Tick (a second a step, the beacon run as its contributors would) until the
        completion is settled for good: cleared, verified or rejected."""
        for _ in range(STEPS_MAX):
            await self.tick()
            completion = await self.cnet.get(completion_id)
            if completion.state in FINISHED_STATES:
                return completion
            await self.cnet.net.run_beacon()
            self.cnet.net.advance(1)
        raise AssertionError(f"{completion_id} still {completion.state} after {STEPS_MAX} s")


async def start_checking(
    cnet: CompletionNet,
    keys: Sequence[ValidatorKeys],
    models: Mapping[str, LoadedModel],
    tmp: Path,
    holds: Mapping[int, Sequence[str]] | None = None,
) -> CheckingValidators:
    """``CheckingValidators`` that have declared the models they hold."""
    validators = CheckingValidators(cnet, keys, models, tmp, holds=holds)
    await validators.declare()
    return validators


async def serve_bundle(
    cnet: CompletionNet,
    bundle: CompletionBundle,
    artifacts: DictArtifacts | None,
    *,
    node: Identity = NODE,
) -> str:
    """The completion opened for ``bundle.request`` (by the API, under the consumer's key)
    and committed by ``node`` with the bundle's counts and commitment, the bundle stored in
    ``artifacts`` (None: never uploaded)."""
    request = bundle.request
    body = {
        "key_id": cnet.key_id,
        "model_id": request.model,
        "node_id": node.id,
        "request_digest": b64(compute_request_digest(request)),
        "prompt_tokens_max": compute_prompt_tokens_bound(request),
        "max_tokens": request.max_tokens,
        "greedy": request.is_greedy,
    }
    opened = await cnet.net.run(cnet.signer, "completion.open", body)
    completion_id = opened.subject.removeprefix("completion:")
    data = encode_bundle(bundle)
    digest = artifacts.put(data) if artifacts is not None else DictArtifacts().put(data)
    commit = {
        "completion_id": completion_id,
        "prompt_tokens": len(bundle.prompt_ids),
        "completion_tokens": len(bundle.token_ids),
        "commitment": b64(bundle.compute_commitment()),
        "proof_digest": b64(digest),
    }
    await cnet.net.run(node, "completion.commit", commit)
    return completion_id

"""Wiring for one validator process: API client, NATS (mirror and artifacts), signing database.

``run_validator`` registers (BLS key with proof of possession) and bonds if needed, then
replays FLOP_EVENTS from the checkpoint (sequence 1 on a fresh database), verifying the hash
chain, and follows it until ``stop`` is set. As a witness (the default) it co-signs the
sealed tree heads that match its replay; after a restart the witness first replays the
records up to the checkpoint, since its tree starts at position 1. The models of
``--check-model`` are loaded before it follows anything (``validator.check_models``: each must
be the registered one), so a validator that cannot check them stops at once; then declared
(``validator.declare_models``, only when the ledger's view differs), so that the sampled
completions of those models, and only those, are drawn to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

import structlog

from adapters.compute.cc_attestation import find_cc_sdk, verify_cc_evidence
from adapters.ledger_api.client import ApiClient, NotFoundProblem
from adapters.nats.connection import close_nats, connect_nats
from adapters.nats.consumer import replay
from adapters.nats.objects import ArtifactStore
from adapters.nats.probe import NatsProbeTransport
from adapters.nats.signals import subscribe_heartbeats
from domain.policy import LedgerPolicy
from proofs.identity import Identity
from validator.check_models import Registration, load_check_models
from validator.config import ValidatorConfig
from validator.daemon import ValidatorDaemon
from validator.ledger_link import (
    ApiLedgerLink,
    ensure_check_models_declared,
    ensure_encryption_key_registered,
    ensure_registered,
)
from validator.prober import Prober
from validator.protection import SigningDatabase
from validator.witness import Witness

_log = structlog.get_logger("flopledger.validator")


async def run_validator(
    config: ValidatorConfig, identity: Identity, bls_secret: int, stop: asyncio.Event
) -> ValidatorDaemon:
    """Run until ``stop``; returns the daemon (for its counters)."""
    client = ApiClient(config.api_url, identity=identity)
    view = await asyncio.to_thread(
        ensure_registered, client, bls_secret=bls_secret, stake=config.stake
    )
    _log.info("validator_ready", validator_id=identity.id, stake=view.stake)
    await asyncio.to_thread(ensure_encryption_key_registered, client)
    check_models = await asyncio.to_thread(
        load_check_models, config.check_models, functools.partial(_get_registration, client)
    )
    if check_models:
        _log.info("check_models_loaded", models=sorted(check_models))
    # only what loaded is declared: a sampled completion is drawn to its model's declarers
    await asyncio.to_thread(ensure_check_models_declared, client, sorted(check_models))
    db = SigningDatabase(config.db_path)
    nc = await connect_nats(config.nats_url, name=f"flopledger-validator-{identity.id[:8]}")
    try:
        artifacts = await ArtifactStore.open(nc)
        transport = NatsProbeTransport(nc)
        daemon = ValidatorDaemon(
            identity=identity,
            bls_secret=bls_secret,
            ledger=ApiLedgerLink(client),
            artifacts=artifacts,
            db=db,
            witness=_make_witness(config),
            prober=Prober(
                identity,
                transport,
                rtt_max_ns=LedgerPolicy().probe_rtt_max_ns,
                payload_bytes_max=transport.payload_bytes_max,
            ),
            cc_verify=_make_cc_verify(),
            check_models=check_models,
        )
        checkpoint = db.get_checkpoint()
        if daemon.witness is not None and checkpoint.position > 0:
            _log.info("witness_warm_up", until=checkpoint.position)
            await daemon.warm_witness(replay(nc, until=checkpoint.position))
        _log.info("validator_replay", from_position=checkpoint.position + 1)
        beats = asyncio.create_task(daemon.follow_heartbeats(subscribe_heartbeats(nc)))
        try:
            await daemon.run(replay(nc, checkpoint=checkpoint, follow=True), stop)
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
        return daemon
    finally:
        await close_nats(nc)
        db.close()
        client.close()


def _get_registration(client: ApiClient, model_id: str) -> Registration | None:
    """The ledger's registration of ``model_id`` (None when it has none)."""
    try:
        view = client.get_registered_model(model_id)
    except NotFoundProblem:
        return None
    return Registration(content_digest=bytes.fromhex(view.content_digest), dtype=view.dtype)


def _make_cc_verify() -> functools.partial[str] | None:
    """NVIDIA's verifier when its interpreter is installed (``make cc-sdk``,
    ``FLOP_CC_PYTHON``): live RIM and OCSP checks, which need the network."""
    sdk = find_cc_sdk()
    if sdk is None:
        return None
    _log.info("cc_verifier_found", python=sdk.python)
    return functools.partial(verify_cc_evidence, offline=False, sdk=sdk)


def _make_witness(config: ValidatorConfig) -> Witness | None:
    if not config.witness:
        return None
    if not config.log_signers:
        _log.warning("witness_unpinned", detail="any tree head key that verifies is accepted")
    return Witness(log_signers=config.log_signers)

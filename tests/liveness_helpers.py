"""Liveness epochs driven through a LocalNetwork for tests: validators that probe from a
region, reports of what each assigned prober saw, closings (``domain.liveness``)."""

from __future__ import annotations

from collections.abc import Mapping

from domain.liveness import (
    LivenessEpoch,
    Prober,
    compute_liveness_epoch,
    compute_probers,
    encode_bitmap,
)
from domain.node import Node
from domain.services.queries import get_aggregate
from domain.validators import Validator
from flopledger.network import LocalNetwork, ValidatorKeys, b64
from proofs import bls


async def register_prober(
    net: LocalNetwork, keys: ValidatorKeys, *, stake: int, region: str
) -> None:
    """Register a validator measuring from ``region`` and bond ``stake`` (deposited first)."""
    net.validator_keys[keys.identity.id] = keys
    await net.deposit(keys.identity, stake)
    await net.run(
        keys.identity,
        "validator.register",
        {
            "bls_public_key": b64(keys.bls_public),
            "proof_of_possession": b64(bls.pop_prove(keys.bls_secret)),
            "region": region,
            "stake": stake,
        },
    )


def current_epoch(net: LocalNetwork) -> int:
    return compute_liveness_epoch(net.now_ns, net.policy)


async def get_probers(net: LocalNetwork, epoch: int, validators: list[str]) -> tuple[Prober, ...]:
    """The epoch's snapshot if it has one, else ``validators`` as they stand (what its first
    report will freeze)."""
    found = await get_aggregate(net.store, LivenessEpoch, LivenessEpoch.stream_id(epoch))
    if found is not None:
        return found.probers
    probers = []
    for validator_id in validators:
        validator = await get_aggregate(net.store, Validator, validator_id)
        assert validator is not None
        probers.append(Prober(validator_id, validator.owner, validator.region))
    return tuple(probers)


async def assigned_probers(
    net: LocalNetwork, epoch: int, node_id: str, validators: list[str]
) -> tuple[str, ...]:
    node = await get_aggregate(net.store, Node, node_id)
    assert node is not None
    probers = await get_probers(net, epoch, validators)
    return compute_probers(
        epoch, node_id, probers, count=net.policy.liveness_probers, node_owner=node.owner
    )


async def report(
    net: LocalNetwork, keys: ValidatorKeys, epoch: int, seen: Mapping[str, tuple[bool, int]]
) -> None:
    """``keys`` reports ``seen``: node id -> (up, rtt in µs)."""
    nodes = list(seen)
    await net.run(
        keys.identity,
        "liveness.report",
        {
            "epoch": epoch,
            "nodes": nodes,
            "up": b64(encode_bitmap([seen[n][0] for n in nodes])),
            "rtt_us": [seen[n][1] for n in nodes],
        },
    )


async def close_epoch(net: LocalNetwork, epoch: int) -> None:
    """Let the epoch after ``epoch`` pass (advancing the clock) and close ``epoch``."""
    net.now_ns = max(net.now_ns, (epoch + 2) * net.policy.liveness_epoch_ns)
    await net.run(net.operator, "liveness.close", {"epoch": epoch})


async def run_epoch(
    net: LocalNetwork,
    keys_by_id: Mapping[str, ValidatorKeys],
    seen_by_validator: Mapping[str, Mapping[str, tuple[bool, int]]],
    *,
    epoch: int | None = None,
) -> int:
    """Every validator in ``seen_by_validator`` reports the nodes it is assigned of what it
    saw, then the epoch is closed. Returns the epoch."""
    epoch = current_epoch(net) if epoch is None else epoch
    validators = list(keys_by_id)
    for validator_id, seen in seen_by_validator.items():
        own = {}
        for node_id, result in seen.items():
            if validator_id in await assigned_probers(net, epoch, node_id, validators):
                own[node_id] = result
        if own:
            await report(net, keys_by_id[validator_id], epoch, own)
    await close_epoch(net, epoch)
    return epoch

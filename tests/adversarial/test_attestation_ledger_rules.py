"""Issue 15, the ledger side of attestation attacks (rules v3), played with valid keys
through the command bus:

- a CPU node claiming H100: registering a datacenter class without such a GPU is refused;
  registering an H100 name gets probes sized for an H100 (the validators' deadline is the
  H100's, not the node's choice), and today's forged report is refused;
- an expired attestation: no claim once it has expired, until a new challenge passes;
- a replayed answer: a pass verdict signed for one challenge does not count for the next
  (its commitment is the new challenge's seed), and a replayed envelope writes nothing new;
- one GPU UUID for two nodes: challenging either challenges both in one command, with one
  group, drawn from one beacon epoch, probed in the same slots.
"""

from __future__ import annotations

import pytest

from domain.devices import compute_probe_specs
from domain.errors import Rejection
from domain.node import ACTIVE, Node
from domain.policy import SECOND_NS
from domain.services.queries import get_aggregate
from domain.verdicts import attestation_subject, compute_verdict_commitment
from flopledger.network import LocalNetwork, b64, make_validator_keys
from proofs import bls
from proofs.envelope import sign_command
from proofs.identity import Identity
from proofs.quorum import attestation_verdict_message
from tests.adversarial._harness import POLICY, get_money_total, start_network

CPU_NODE, NODE, TWIN, CONSUMER = (Identity.from_seed(bytes([i]) * 32) for i in range(171, 175))
VALIDATORS = [make_validator_keys(170 + i) for i in range(3)]
H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81_559, "uuid": "GPU-dddd"}


async def _network() -> LocalNetwork:
    net = await start_network()
    for keys in VALIDATORS:
        await net.deposit(keys.identity, 2_000)
        await net.register_validator(keys, stake=1_000)
    for who in (CPU_NODE, NODE, TWIN, CONSUMER):
        await net.deposit(who, 20_000)
    return net


async def _node(net: LocalNetwork, who: Identity) -> Node:
    node = await get_aggregate(net.store, Node, who.id)
    assert node is not None
    return node


async def _register(net: LocalNetwork, who: Identity, gpus: list[dict[str, object]]) -> None:
    body = {"region": "eu-west", "gpus": gpus, "gpu_class": "datacenter", "price": 100}
    await net.run(who, "node.register", body)
    await net.run(who, "stake.bond", {"target": who.id, "amount": 5_000})


async def _pass(net: LocalNetwork, who: Identity) -> None:
    await net.run_beacon()
    drawn = (await _node(net, who)).validators
    await net.vote_attestation(who.id, [(k, True) for k in VALIDATORS if k.identity.id in drawn])


async def test_a_cpu_node_cannot_register_as_datacenter_and_an_h100_name_gets_h100_probes() -> None:
    net = await _network()
    money = await get_money_total(net)
    cpu_body = {"region": "eu-west", "gpus": [], "gpu_class": "datacenter", "price": 100}
    with pytest.raises(Rejection) as info:
        await net.run(CPU_NODE, "node.register", cpu_body)
    assert info.value.code == "gpu_class_above_models"
    # The CPU calls itself an H100: the protocol sizes the probes for an H100, so the
    # deadline it must meet is the H100's (validators time it: adapters and validator).
    await _register(net, CPU_NODE, [{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81_559}])
    await net.run(CPU_NODE, "node.attestation.challenge", {"node_id": CPU_NODE.id, "size": 1024})
    challenge = (await _node(net, CPU_NODE)).challenge
    assert challenge is not None
    assert challenge.probes == compute_probe_specs(("h100-sxm",), policy=POLICY)
    cpu_probe = compute_probe_specs((), policy=POLICY)[0]
    assert challenge.probes[0].k > cpu_probe.k  # far more work than a CPU's own probe
    # Today's forged report ("NVIDIA H100 80GB", 50 TFLOP/s, signed by the node) is refused.
    digest = b64(bytes(32))
    report = {
        "node_id": CPU_NODE.id,
        "nonce": challenge.nonce,
        "inventory_digest": digest,
        "commitment": digest,
        "timings_ns": [71_000_000],
    }
    with pytest.raises(Rejection) as info:
        await net.run(CPU_NODE, "node.attestation.submit", report)
    assert info.value.code == "attestation_by_report_retired"
    assert (await _node(net, CPU_NODE)).state != ACTIVE
    assert await get_money_total(net) == money


async def test_an_expired_attestation_claims_nothing_until_a_new_challenge_passes() -> None:
    net = await _network()
    await _register(net, NODE, [H100])
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    await _pass(net, NODE)
    node = await _node(net, NODE)
    net.now_ns = node.attestation_expires_ns
    job_id = await net.submit_job(CONSUMER, region="eu-west", max_price=1_000)
    claim = {"job_id": job_id, "node_id": NODE.id}
    with pytest.raises(Rejection) as info:
        await net.run(NODE, "job.claim", claim)
    assert info.value.code == "attestation_expired"
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    await _pass(net, NODE)
    await net.run(NODE, "job.claim", claim)


async def test_a_pass_verdict_of_an_earlier_challenge_does_not_count_for_the_next() -> None:
    net = await _network()
    await _register(net, NODE, [H100])
    await net.run(NODE, "node.attestation.challenge", {"node_id": NODE.id})
    first = (await _node(net, NODE)).challenge
    assert first is not None
    await _pass(net, NODE)
    net.advance(POLICY.rechallenge_interval_min_ns / SECOND_NS)
    rechallenge = sign_command(
        VALIDATORS[0].identity,
        "node.attestation.rechallenge",
        {"node_id": NODE.id},
        nonce="rechallenge-1",
        issued_at_ns=net.now_ns,
    )
    await net.service.execute(rechallenge, now_ns=net.now_ns)
    replayed = await net.service.execute(rechallenge, now_ns=net.now_ns)
    assert replayed.replayed  # the same envelope again writes nothing
    await net.run_beacon()
    node = await _node(net, NODE)
    assert node.challenge is not None and node.challenge.seed != first.seed
    drawn = next(k for k in VALIDATORS if k.identity.id in node.validators)
    old_message = attestation_verdict_message(
        NODE.id, node.challenge.nonce, bytes.fromhex(first.seed), True
    )
    salt = b"s" * 16
    # The drawn validator commits and reveals its pass of the first challenge again.
    verdict_hash = compute_verdict_commitment(
        subject=attestation_subject(NODE.id, node.challenge.nonce),
        result_commitment=bytes.fromhex(first.seed),
        validator_id=drawn.identity.id,
        passed=True,
        salt=salt,
    )
    await net.run(
        drawn.identity,
        "node.attestation.commit_verdict",
        {"node_id": NODE.id, "nonce": node.challenge.nonce, "verdict_hash": b64(verdict_hash)},
    )
    voting = (await _node(net, NODE)).attestation_round
    assert voting is not None
    net.now_ns = voting.commit_deadline_ns + 1
    with pytest.raises(Rejection) as info:
        await net.run(
            drawn.identity,
            "node.attestation.record_verdict",
            {
                "node_id": NODE.id,
                "nonce": node.challenge.nonce,
                "passed": True,
                "signature": b64(bls.sign(drawn.bls_secret, old_message)),
                "salt": b64(salt),
            },
        )
    assert info.value.code == "verdict_signature_invalid"


async def test_two_nodes_reporting_one_gpu_uuid_are_challenged_together() -> None:
    net = await _network()
    await _register(net, NODE, [H100])
    await _register(net, TWIN, [H100])
    await net.run(TWIN, "node.attestation.challenge", {"node_id": TWIN.id})
    node, twin = await _node(net, NODE), await _node(net, TWIN)
    assert node.challenge is not None and twin.challenge is not None
    assert node.challenge.group == twin.challenge.group != ""
    await net.run_beacon()
    node, twin = await _node(net, NODE), await _node(net, TWIN)
    assert node.attestation_round is not None and twin.attestation_round is not None
    for index in range(len(node.validators)):
        slot_node = node.compute_probe_slot_ns(node.validators[index], POLICY)
        slot_twin = twin.compute_probe_slot_ns(twin.validators[index], POLICY)
        assert slot_node == slot_twin is not None

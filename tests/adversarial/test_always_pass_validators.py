"""Attack 5 of issue 14: always voting "pass" is the rational validator.

Validators were paid only when a result passed and nobody was penalised for a wrong verdict,
so a validator that never checked earned most: two lazy validators passed a garbage matmul
result, were paid for it, and earned more than the honest one that failed it. The rules:
validators are paid for every decided job (pass or fail, the fail's fee out of the rejected
node's slash, never the consumer's escrow); a pass vote on a wrong result is provable by a
fraud proof the ledger checks itself (a committed row with its Merkle path that differs from
A·B), slashing every pass voter and rewarding the challenger; a false proof is refused and
earns nothing; canaries sealed before their job slash whoever passes them.

Played with valid keys through the command bus (``LocalNetwork``): the attackers are the
lazy validators (and the garbage node); the challenger is an outsider with its own key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest
from litestar.testing import TestClient

from adapters.compute.workloads import parse_params
from adapters.compute.zk_prover import encode_zk_artifact, run_zk_prove
from adapters.ledger_api.client import ApiProblem
from adapters.store.memory import MemoryEventStore
from api.app import create_app
from domain import commands as c
from domain.canary import compute_canary_digest
from domain.errors import Rejection
from domain.job import SETTLED, Job
from domain.ledger import BURN_ACCOUNT, TREASURY_ACCOUNT, stake_account, user_account
from domain.node import JAILED, Node
from domain.policy import BPS, RULES_VERSION, SECOND_NS
from domain.services.handlers_jobs import compute_job_id
from domain.services.ledger_service import compute_command_id
from domain.services.queries import get_aggregate
from domain.validators import Validator
from flopledger.network import LocalNetwork, ValidatorKeys, b64, make_validator_keys
from proofs.circuits import compute_binding
from proofs.envelope import sign_command
from proofs.identity import Identity
from proofs.job_seed import compute_job_seed
from proofs.matmul import canonical_row_bytes, compute_product, derive_inputs
from proofs.merkle import inclusion_proof_from_hashes, leaf_hash, root_from_hashes
from tests.adversarial._harness import LOG_FEE, POLICY, get_balance, get_money_total
from tests.unit.api.conftest import ApiEnv, Clock, make_deps, seeded

NODE, CHEATER, CONSUMER, CHALLENGER, PLANTER, CANARY_NODE = (
    Identity.from_seed(bytes([i]) * 32) for i in range(81, 87)
)
HONEST, LAZY_1, LAZY_2 = (make_validator_keys(80 + i) for i in range(3))
VALIDATORS = (HONEST, LAZY_1, LAZY_2)
VALIDATOR_STAKE = 10_000
NODE_STAKE = 5_000
N = 16
PRICE = 400
WRONG_ROW = 5


@dataclass(frozen=True)
class MatmulResult:
    """A node's C for a job, committed row by row: what a challenger can open."""

    rows: list[bytes]

    @property
    def hashes(self) -> list[bytes]:
        return [leaf_hash(row) for row in self.rows]

    @property
    def root(self) -> bytes:
        return root_from_hashes(self.hashes)

    def evidence(self, index: int) -> dict[str, object]:
        return {
            "type": "matmul_row",
            "index": index,
            "row": b64(self.rows[index]),
            "path": [b64(h) for h in inclusion_proof_from_hashes(self.hashes, index)],
        }


def compute_result(job_id: str, *, wrong_row: int | None = None) -> MatmulResult:
    """C = A·B for the job's inputs; ``wrong_row`` is the one a garbage node got wrong."""
    a, b = derive_inputs(compute_job_seed(job_id, ""), N)
    c = np.array(compute_product(a, b))
    if wrong_row is not None:
        c[wrong_row] += 1
    return MatmulResult([canonical_row_bytes(row) for row in c])


async def build_market(
    *, rules_version: int = RULES_VERSION, insecure_setups_allowed: bool = False
) -> LocalNetwork:
    policy = msgspec.structs.replace(
        POLICY, rules_version=rules_version, insecure_setups_allowed=insecure_setups_allowed
    )
    net = await LocalNetwork.start(MemoryEventStore(), policy=policy)
    for node in (NODE, CHEATER, CANARY_NODE):
        await net.deposit(node, 10_000)
        await net.register_active_node(node, region="eu-west", price=PRICE, stake=NODE_STAKE)
    for keys in VALIDATORS:
        await net.deposit(keys.identity, VALIDATOR_STAKE + LOG_FEE)  # a later unbond's fee
        await net.register_validator(keys, stake=VALIDATOR_STAKE)
    await net.deposit(CONSUMER, 10_000)
    await net.deposit(PLANTER, 10_000)
    return net


def matmul_job_body(net: LocalNetwork) -> dict[str, object]:
    return {
        "workload": {"kind": "matmul", "gpu_class_min": "consumer", "params": {"n": N}},
        "max_price": 1_000,
        "region": "eu-west",
        "redundancy": 3,
        "deadline_ns": net.now_ns + 3_600 * SECOND_NS,
    }


async def submit_matmul(net: LocalNetwork, consumer: Identity) -> str:
    return (await net.run(consumer, "job.submit", matmul_job_body(net))).subject


async def run_job(
    net: LocalNetwork,
    node: Identity,
    consumer: Identity,
    votes: list[tuple[ValidatorKeys, bool]],
    *,
    wrong_row: int | None = None,
    job_id: str | None = None,
) -> tuple[str, MatmulResult]:
    """A job claimed by ``node``, its result (garbage when ``wrong_row``) judged by every
    validator as ``votes`` says, in the order given."""
    job_id = job_id or await submit_matmul(net, consumer)
    await net.run(node, "job.claim", {"job_id": job_id, "node_id": node.id})
    result = compute_result(job_id, wrong_row=wrong_row)
    await net.commit_result(node, job_id, result.root)
    await net.vote_round(job_id, votes)
    return job_id, result


async def get_worth(net: LocalNetwork, keys: ValidatorKeys) -> int:
    """What a validator's owner holds on the ledger: its account and its stake."""
    owner = keys.identity.id
    return await get_balance(net, user_account(owner)) + await get_balance(
        net, stake_account(owner)
    )


async def get_stake(net: LocalNetwork, keys: ValidatorKeys) -> int:
    validator = await get_aggregate(net.store, Validator, keys.identity.id)
    assert validator is not None
    return validator.stake


async def prove_fraud(
    net: LocalNetwork, challenger: Identity, job_id: str, evidence: dict[str, object]
) -> None:
    await net.run(
        challenger,
        "job.prove_fraud",
        {"job_id": job_id, "attempt": 1, "evidence": evidence},
    )


async def test_always_pass_validators_are_slashed_and_earn_less_than_checking() -> None:
    net = await build_market()
    lazy = [(LAZY_1, True), (LAZY_2, True)]
    # Two honest results, then a garbage one: the lazy pair passes it (a quorum of 2 of 3).
    for _ in range(2):
        await run_job(net, NODE, CONSUMER, [(LAZY_1, True), (HONEST, True), (LAZY_2, True)])
    job_id, garbage = await run_job(
        net, CHEATER, CONSUMER, [(HONEST, False), *lazy], wrong_row=WRONG_ROW
    )
    job = await get_aggregate(net.store, Job, job_id)
    assert job is not None and job.state == SETTLED
    consumer_before = await get_balance(net, user_account(CONSUMER.id))

    await prove_fraud(net, CHALLENGER, job_id, garbage.evidence(WRONG_ROW))

    slash = VALIDATOR_STAKE * net.policy.fraud_slash_bps // BPS
    reward = slash * net.policy.fraud_challenger_reward_bps // BPS
    assert [await get_stake(net, k) for k in VALIDATORS] == [
        VALIDATOR_STAKE,
        *[VALIDATOR_STAKE - slash] * 2,
    ]
    assert await get_balance(net, user_account(CHALLENGER.id)) == 2 * reward
    cheater = await get_aggregate(net.store, Node, CHEATER.id)
    assert cheater is not None and cheater.state == JAILED and cheater.slashed_total > 0
    assert await get_balance(net, user_account(CONSUMER.id)) > consumer_before
    honest_worth = await get_worth(net, HONEST)
    for keys in (LAZY_1, LAZY_2):
        assert await get_worth(net, keys) < honest_worth
    assert await get_money_total(net) == 0


async def test_a_second_proof_of_the_same_fraud_is_refused() -> None:
    net = await build_market()
    job_id, garbage = await run_job(
        net,
        CHEATER,
        CONSUMER,
        [(LAZY_1, True), (LAZY_2, True), (HONEST, False)],
        wrong_row=WRONG_ROW,
    )
    await prove_fraud(net, CHALLENGER, job_id, garbage.evidence(WRONG_ROW))
    stakes = [await get_stake(net, k) for k in VALIDATORS]

    with pytest.raises(Rejection) as info:
        await prove_fraud(net, CONSUMER, job_id, garbage.evidence(WRONG_ROW))

    assert info.value.code == "fraud_already_proven"
    assert [await get_stake(net, k) for k in VALIDATORS] == stakes
    assert await get_money_total(net) == 0


async def test_false_fraud_proofs_are_refused_and_earn_nothing() -> None:
    """A griefer challenges an honest result: a correct row, a row not in the commitment, a
    row of the wrong job. Each is refused with a typed code and writes nothing."""
    net = await build_market()
    job_id, honest = await run_job(
        net, NODE, CONSUMER, [(HONEST, True), (LAZY_1, True), (LAZY_2, True)]
    )
    other_id, _ = await run_job(
        net, NODE, CONSUMER, [(HONEST, True), (LAZY_1, True), (LAZY_2, True)]
    )
    forged = compute_result(job_id, wrong_row=WRONG_ROW)
    head = (await net.store.head()).position
    attempts = [
        (job_id, honest.evidence(WRONG_ROW)),  # a committed row, and it is right
        (job_id, forged.evidence(WRONG_ROW)),  # a wrong row, but not the committed one
        (other_id, compute_result(job_id).evidence(0)),  # a row of another job's result
        (job_id, {"type": "groth16", "artifact": b64(b"{}")}),  # a proof of another kind
    ]
    codes = []
    for target, evidence in attempts:
        with pytest.raises(Rejection) as info:
            await prove_fraud(net, CHALLENGER, target, evidence)
        codes.append(info.value.code)

    assert codes == ["fraud_proof_invalid"] * 3 + ["fraud_evidence_kind_mismatch"]
    assert (await net.store.head()).position == head
    assert await get_balance(net, user_account(CHALLENGER.id)) == 0
    assert [await get_stake(net, k) for k in VALIDATORS] == [VALIDATOR_STAKE] * 3


async def test_a_fraud_proof_after_the_window_is_refused() -> None:
    net = await build_market()
    job_id, garbage = await run_job(
        net,
        CHEATER,
        CONSUMER,
        [(LAZY_1, True), (LAZY_2, True), (HONEST, False)],
        wrong_row=WRONG_ROW,
    )
    net.advance(net.policy.fraud_window_ns / SECOND_NS + 1)

    with pytest.raises(Rejection) as info:
        await prove_fraud(net, CHALLENGER, job_id, garbage.evidence(WRONG_ROW))

    assert info.value.code == "fraud_window_closed"
    assert [await get_stake(net, k) for k in VALIDATORS] == [VALIDATOR_STAKE] * 3


async def test_validators_are_paid_for_failing_a_result_out_of_the_cheats_stake() -> None:
    """Honest validators fail garbage and are paid; a node failing every attempt pays them
    from its stake and cannot drain the consumer: the consumer ends with more than it had."""
    net = await build_market()
    consumer_start = await get_balance(net, user_account(CONSUMER.id))
    job_id = await submit_matmul(net, CONSUMER)
    worth_start = [await get_worth(net, k) for k in VALIDATORS]
    cheaters = [CHEATER, NODE, CANARY_NODE][: net.policy.reassign_attempts_max]
    for cheater in cheaters:
        net.advance(10)
        await run_job(
            net,
            cheater,
            CONSUMER,
            [(HONEST, False), (LAZY_1, False), (LAZY_2, False)],
            wrong_row=WRONG_ROW,
            job_id=job_id,
        )

    fee = PRICE * net.policy.validator_fee_bps // BPS // 2  # two signers reach the quorum
    gained = [await get_worth(net, k) - w for k, w in zip(VALIDATORS, worth_start, strict=True)]
    assert gained[:2] == [fee * len(cheaters)] * 2  # HONEST, LAZY_1 signed every failure
    assert await get_balance(net, user_account(CONSUMER.id)) > consumer_start
    assert await get_money_total(net) == 0


async def plant_canary(net: LocalNetwork) -> tuple[str, bytes]:
    """The operator seals the id the planter's job will get (job ids derive from the
    submitting envelope's actor and nonce), then the planter submits it: an ordinary job."""
    nonce = f"canary-{secrets.token_hex(8)}"
    job_id = compute_job_id(compute_command_id(PLANTER.id, nonce))
    salt = secrets.token_bytes(32)
    await net.run(net.operator, "canary.seal", {"digest": b64(compute_canary_digest(job_id, salt))})
    envelope = sign_command(
        PLANTER, "job.submit", matmul_job_body(net), nonce=nonce, issued_at_ns=net.now_ns
    )
    assert (await net.service.execute(envelope, now_ns=net.now_ns)).subject == job_id
    return job_id, salt


async def reveal_canary(
    net: LocalNetwork, job_id: str, salt: bytes, evidence: dict[str, object] | None
) -> None:
    body: dict[str, object] = {"job_id": job_id, "attempt": 1, "salt": b64(salt)}
    if evidence is not None:
        body["evidence"] = evidence
    await net.run(net.operator, "canary.reveal", body)


async def test_a_validator_passing_a_canary_is_slashed_even_in_the_minority() -> None:
    net = await build_market()
    job_id, salt = await plant_canary(net)
    _, known_bad = await run_job(
        net,
        CANARY_NODE,
        PLANTER,
        [(LAZY_2, True), (HONEST, False), (LAZY_1, False)],
        wrong_row=WRONG_ROW,
        job_id=job_id,
    )
    treasury_before = await get_balance(net, TREASURY_ACCOUNT)

    with pytest.raises(Rejection) as info:
        await reveal_canary(net, job_id, salt, None)
    assert info.value.code == "canary_evidence_required"
    await reveal_canary(net, job_id, salt, known_bad.evidence(WRONG_ROW))

    slash = VALIDATOR_STAKE * net.policy.fraud_slash_bps // BPS
    assert [await get_stake(net, k) for k in VALIDATORS] == [
        VALIDATOR_STAKE,
        VALIDATOR_STAKE,
        VALIDATOR_STAKE - slash,
    ]
    reward = slash * net.policy.fraud_challenger_reward_bps // BPS
    assert await get_balance(net, TREASURY_ACCOUNT) == treasury_before + reward
    assert await get_balance(net, BURN_ACCOUNT) > 0
    assert await get_money_total(net) == 0


async def test_a_job_cannot_be_called_a_canary_after_the_fact() -> None:
    """The operator seals a digest for a job already submitted (and passed by the lazy pair):
    the reveal is refused, and the seal leaves the validators untouched."""
    net = await build_market()
    job_id, garbage = await run_job(
        net,
        CHEATER,
        CONSUMER,
        [(LAZY_1, True), (LAZY_2, True), (HONEST, False)],
        wrong_row=WRONG_ROW,
    )
    salt = secrets.token_bytes(32)
    await net.run(net.operator, "canary.seal", {"digest": b64(compute_canary_digest(job_id, salt))})

    with pytest.raises(Rejection) as info:
        await reveal_canary(net, job_id, salt, garbage.evidence(WRONG_ROW))

    assert info.value.code == "canary_sealed_after_job"
    assert [await get_stake(net, k) for k in VALIDATORS] == [VALIDATOR_STAKE] * 3


ZK_PARAMS = {"circuit": "poseidon_preimage", "inputs": '{"a": 3, "b": 4}', "setup_seed": 7}


def make_zk_artifact(job_id: str, *, honest: bool) -> bytes:
    """An honest proof artifact of the job's statement (bound to the job and its node), or
    one whose proof is another statement's (its public signal is not the job's hash)."""
    params = ZK_PARAMS if honest else {**ZK_PARAMS, "inputs": '{"a": 5, "b": 6}'}
    run = run_zk_prove(
        parse_params("zk-prove", params), binding=compute_binding(job_id, CHEATER.id)
    )
    return encode_zk_artifact(run.artifact)


async def run_zk_job(net: LocalNetwork, *, honest: bool) -> tuple[str, bytes]:
    body = {
        **matmul_job_body(net),
        "workload": {"kind": "zk-prove", "gpu_class_min": "consumer", "params": ZK_PARAMS},
    }
    job_id = (await net.run(CONSUMER, "job.submit", body)).subject
    await net.run(CHEATER, "job.claim", {"job_id": job_id, "node_id": CHEATER.id})
    artifact = make_zk_artifact(job_id, honest=honest)
    await net.commit_result(CHEATER, job_id, hashlib.sha256(artifact).digest())
    await net.vote_round(job_id, [(LAZY_1, True), (LAZY_2, True), (HONEST, False)])
    return job_id, artifact


async def test_a_groth16_proof_of_another_statement_passed_is_proven_wrong() -> None:
    # The zk job uses setup_seed test keys: this market's policy allows them (attack 8).
    net = await build_market(insecure_setups_allowed=True)
    job_id, copied = await run_zk_job(net, honest=False)
    honest_job, honest = await run_zk_job(net, honest=True)

    with pytest.raises(Rejection) as info:
        await prove_fraud(net, CHALLENGER, honest_job, {"type": "groth16", "artifact": b64(honest)})
    assert info.value.code == "fraud_proof_invalid"
    await prove_fraud(net, CHALLENGER, job_id, {"type": "groth16", "artifact": b64(copied)})

    slash = VALIDATOR_STAKE * net.policy.fraud_slash_bps // BPS
    assert [await get_stake(net, k) for k in VALIDATORS] == [
        VALIDATOR_STAKE,
        *[VALIDATOR_STAKE - slash] * 2,
    ]
    assert await get_money_total(net) == 0


def test_the_routes_refuse_over_the_http_api_with_their_problem_codes(tmp_path: Path) -> None:
    """As API clients play them: a fraud proof against nothing, a canary sealed by a key
    that is no operator; the operator's seal is accepted."""
    operator, clock = seeded("operator"), Clock()
    deps = make_deps(tmp_path, operator, clock)
    evidence = c.MatmulRowEvidence(index=0, row=bytes(4 * N), path=[])
    with TestClient(create_app(deps)) as http:
        env = ApiEnv(deps=deps, http=http, clock=clock, operator=operator)
        with pytest.raises(ApiProblem) as proof:
            env.client(CHALLENGER).send(
                c.ProveFraud(job_id="job-nothing", attempt=1, evidence=evidence)
            )
        with pytest.raises(ApiProblem) as seal:
            env.client(CHALLENGER).send(c.SealCanary(digest=bytes(32)))
        env.client(operator).send(c.SealCanary(digest=bytes(32)))

    assert (proof.value.status, proof.value.code) == (404, "job_not_found")
    assert (seal.value.status, seal.value.code) == (403, "operator_only")


async def test_unbonding_after_the_lazy_pass_does_not_escape_the_fraud_proof() -> None:
    """The lazy pair passes garbage, unbonds everything at once and waits for its stake:
    the fraud window closes before the unbonding period ends (a policy rule), so the proof
    still takes its share of the unbonding stake and the withdrawal pays only the rest."""
    net = await build_market()
    job_id, garbage = await run_job(
        net, CHEATER, CONSUMER, [(LAZY_1, True), (LAZY_2, True), (HONEST, False)], wrong_row=2
    )
    for keys in (LAZY_1, LAZY_2):
        target = {"target": keys.identity.id}
        await net.run(keys.identity, "stake.unbond", {**target, "amount": VALIDATOR_STAKE})
    net.advance(net.policy.fraud_window_ns / SECOND_NS - 1)
    with pytest.raises(Rejection) as early:
        await net.run(LAZY_1.identity, "stake.withdraw", {"target": LAZY_1.identity.id})

    await prove_fraud(net, CHALLENGER, job_id, garbage.evidence(2))
    net.advance(net.policy.unbonding_period_ns / SECOND_NS)
    await net.run(LAZY_1.identity, "stake.withdraw", {"target": LAZY_1.identity.id})

    assert early.value.code == "unbonding_not_complete"
    slash = VALIDATOR_STAKE * net.policy.fraud_slash_bps // BPS
    fee = PRICE * net.policy.validator_fee_bps // BPS // 2
    assert await get_balance(net, user_account(LAZY_1.identity.id)) == (
        fee + VALIDATOR_STAKE - slash
    )
    assert await get_money_total(net) == 0

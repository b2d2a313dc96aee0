"""The zk-prove workload's job binding and keys (issue 14, attack 8): a proof verifies only
for the (job, node) it was made for; ``setup_seed`` keys only where the policy allows them;
a key of our circuit from before the binding input is refused."""

from __future__ import annotations

import json

import pytest

from adapters.compute.workloads import WorkloadParamsError, ZkProveParams, parse_params
from adapters.compute.zk_prover import (
    INSECURE_SETUP,
    PROOF_INVALID,
    ZK_OK,
    build_circuit,
    check_key_fits,
    check_zk,
    run_zk_prove,
)
from proofs.circuits import Circuit, CircuitBuilder, compute_binding, poseidon_gadget
from proofs.groth16_setup import setup_from_seed

INPUTS = json.dumps({"a": 2, "b": 3})
SEEDED = parse_params(
    "zk-prove", {"circuit": "poseidon_preimage", "inputs": INPUTS, "setup_seed": 9}
)
BINDING = compute_binding("job-1", "node-1")


def test_a_proof_checks_only_for_its_own_job_and_node() -> None:
    assert isinstance(SEEDED, ZkProveParams)
    artifact = run_zk_prove(SEEDED, binding=BINDING).artifact
    allowed = {"insecure_setups_allowed": True}

    assert check_zk(SEEDED, artifact, binding=BINDING, **allowed) == ZK_OK
    other_job = compute_binding("job-2", "node-1")
    other_node = compute_binding("job-1", "node-2")
    assert check_zk(SEEDED, artifact, binding=other_job, **allowed) == PROOF_INVALID
    assert check_zk(SEEDED, artifact, binding=other_node, **allowed) == PROOF_INVALID
    # The default policy does not accept setup_seed keys at all.
    assert check_zk(SEEDED, artifact, binding=BINDING) == INSECURE_SETUP


def _circuit_before_the_binding(a: int, b: int) -> Circuit:
    """``poseidon_preimage`` as it was before issue 14: public [h] only."""
    builder = CircuitBuilder(n_outputs=1, public_inputs=(), private=(a, b))
    builder.set_output(1, poseidon_gadget(builder, [builder.wire(2), builder.wire(3)]))
    return builder.build()


def test_a_key_of_the_circuit_before_the_binding_is_refused() -> None:
    params = parse_params(
        "zk-prove", {"circuit": "poseidon_preimage", "inputs": INPUTS, "zkey": "ab" * 32}
    )
    assert isinstance(params, ZkProveParams)
    circuit = build_circuit(params, BINDING)
    old_key, _ = setup_from_seed(_circuit_before_the_binding(0, 0).r1cs, seed=1)
    new_key, _ = setup_from_seed(circuit.r1cs, seed=1)

    with pytest.raises(WorkloadParamsError, match="job binding"):
        check_key_fits(old_key, circuit)
    check_key_fits(new_key, circuit)

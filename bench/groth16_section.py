"""Groth16 section of ``bench/proofs.py``: verify, batch verify, prove (pure Python, BN254).

``measure()`` returns table rows ``(label, figure)`` and ``RESULT`` key/values. Baselines are
measured in the same run: py_ecc's own pairing API for one verification (four separate
pairings, as a naive port of snarkjs would do) and, when ``snarkjs`` is on the PATH,
``snarkjs groth16 verify`` of the same proof (usually absent: no Node.js packages here).
Batch proofs are distinct: re-randomisations ``(A/θ, θ·B, C)`` of one proof, which are valid
proofs of the same statement. Figures are CPU time of this process (``time.process_time``),
so other processes on a shared machine do not inflate them; the snarkjs row is wall time of a
whole CLI process. Runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from py_ecc.optimized_bn128 import FQ12, add, multiply, neg  # noqa: E402
from py_ecc.optimized_bn128 import final_exponentiate as py_ecc_final_exp  # noqa: E402
from py_ecc.optimized_bn128 import pairing as py_ecc_pairing  # noqa: E402

from proofs.bn254 import R  # noqa: E402
from proofs.circuits import Circuit, matvec, poseidon_preimage  # noqa: E402
from proofs.groth16 import (  # noqa: E402
    Proof,
    VerificationKey,
    batch_verify,
    encode_proof,
    encode_public,
    encode_verification_key,
    verify,
    verify_json,
)
from proofs.groth16_prover import prove  # noqa: E402
from proofs.groth16_setup import setup_from_seed  # noqa: E402
from proofs.msm import g1_mul  # noqa: E402

Row = tuple[str, str]
BATCH_SIZES = (16, 64)
VERIFY_REPEATS = 7
BATCH_REPEATS = 5
PROVE_REPEATS = 3
MATVEC_SIDE = 16
SEED = 20261124


def measure() -> tuple[list[Row], dict[str, str]]:
    """Run the Groth16 benchmarks; return table rows and RESULT key/values."""
    rows: list[Row] = []
    results: dict[str, str] = {}
    circuit = poseidon_preimage(secrets.randbelow(R), secrets.randbelow(R), secrets.randbelow(R))
    pk, vk = setup_from_seed(circuit.r1cs, SEED)
    proof, public = prove(pk, circuit.witness)
    if not verify(vk, proof, public):
        raise RuntimeError("bench: the Poseidon preimage proof does not verify")

    one_s = _median_s(lambda: verify(vk, proof, public), VERIFY_REPEATS)
    vk_json, proof_json = encode_verification_key(vk), encode_proof(proof)
    public_json = encode_public(public)
    json_s = _median_s(lambda: verify_json(vk_json, proof_json, public_json), VERIFY_REPEATS)
    py_ecc_s = _median_s(lambda: _py_ecc_four_pairings(vk, proof, public), 1, warmup=0)
    rows.append(("groth16 verify, 1 proof (decoded, 1 multi-pairing)", f"{one_s * 1e3:.1f} ms"))
    rows.append(
        ("groth16 verify from JSON (strict decoding incl. G2 subgroup)", f"{json_s * 1e3:.1f} ms")
    )
    rows.append(("baseline: py_ecc pairing() x4, one verify", f"{py_ecc_s * 1e3:.0f} ms"))
    results["groth16_verify_ms"] = f"{one_s * 1e3:.2f}"
    results["groth16_verify_json_ms"] = f"{json_s * 1e3:.2f}"
    results["groth16_py_ecc_4_pairings_ms"] = f"{py_ecc_s * 1e3:.1f}"

    items = _rerandomised(proof, public, max(BATCH_SIZES))
    for size in BATCH_SIZES:
        batch = items[:size]
        # Paired: one verify and one batch alternate, so load from other processes hits both.
        one_paired_s, batch_s = _paired_medians_s(
            lambda: verify(vk, proof, public),
            lambda b=batch: _require(batch_verify(vk, b)),  # type: ignore[misc]
            BATCH_REPEATS,
        )
        rows.append(
            (f"groth16 batch verify, {size} proofs", f"{batch_s * 1e3 / size:.1f} ms/proof")
        )
        results[f"groth16_batch{size}_ms_per_proof"] = f"{batch_s * 1e3 / size:.2f}"
        ratio = batch_s / one_paired_s
        rows.append((f"batch of {size}, total / one verify (paired runs)", f"{ratio:.1f}x"))
        results[f"groth16_batch{size}_over_one"] = f"{ratio:.2f}"

    for name, prove_circuit in (
        ("poseidon2_preimage", circuit),
        (f"matvec{MATVEC_SIDE}", _matvec_circuit()),
    ):
        rows_prove, results_prove = _measure_prove(name, prove_circuit)
        rows += rows_prove
        results.update(results_prove)

    rows.append(_snarkjs_row(vk, proof, public, results))
    return rows, results


def _measure_prove(name: str, circuit: Circuit) -> tuple[list[Row], dict[str, str]]:
    pk, vk = setup_from_seed(circuit.r1cs, SEED)
    n = len(circuit.r1cs.constraints)
    prove_s = _median_s(lambda: prove(pk, circuit.witness), PROVE_REPEATS, warmup=0)
    proof, public = prove(pk, circuit.witness)
    _require(verify(vk, proof, public))
    label = f"groth16 prove, {name} ({n} constraints, domain {pk.domain_size})"
    rows = [(label, f"{prove_s * 1e3:.0f} ms = {prove_s * 1e3 / n:.2f} ms/constraint")]
    results = {
        f"groth16_prove_{name}_ms": f"{prove_s * 1e3:.1f}",
        f"groth16_prove_{name}_ms_per_constraint": f"{prove_s * 1e3 / n:.3f}",
    }
    return rows, results


def _matvec_circuit() -> Circuit:
    side = MATVEC_SIDE
    matrix = [[secrets.randbelow(1 << 32) for _ in range(side)] for _ in range(side)]
    return matvec(matrix, [secrets.randbelow(1 << 32) for _ in range(side)], secrets.randbelow(R))


def _rerandomised(
    proof: Proof, public: tuple[int, ...], count: int
) -> list[tuple[Proof, tuple[int, ...]]]:
    out = []
    for _ in range(count):
        theta = secrets.randbelow(R - 1) + 1
        pi_a = g1_mul(proof.pi_a, pow(theta, -1, R))
        out.append((Proof(pi_a=pi_a, pi_b=multiply(proof.pi_b, theta), pi_c=proof.pi_c), public))
    return out


def _py_ecc_four_pairings(vk: VerificationKey, proof: Proof, public: tuple[int, ...]) -> bool:
    vk_x = vk.ic[0]
    for coefficient, point in zip(public, vk.ic[1:], strict=True):
        vk_x = add(vk_x, multiply(point, coefficient))
    product = FQ12.one()
    for g2, g1 in (
        (proof.pi_b, neg(proof.pi_a)),
        (vk.gamma_2, vk_x),
        (vk.delta_2, proof.pi_c),
        (vk.beta_2, vk.alpha_1),
    ):
        product = product * py_ecc_pairing(g2, g1, final_exponentiate=False)
    return bool(py_ecc_final_exp(product) == FQ12.one())


def _snarkjs_row(
    vk: VerificationKey, proof: Proof, public: tuple[int, ...], results: dict[str, str]
) -> Row:
    snarkjs = shutil.which("snarkjs")
    if snarkjs is None:
        results["groth16_snarkjs_verify_ms"] = "n/a"
        return ("snarkjs groth16 verify (same proof)", "not available (no snarkjs on PATH)")
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, value in (
            ("vkey.json", encode_verification_key(vk)),
            ("public.json", encode_public(public)),
            ("proof.json", encode_proof(proof)),
        ):
            path = Path(tmp) / name
            path.write_text(json.dumps(value))
            files.append(str(path))
        start = time.perf_counter()
        done = subprocess.run(
            [snarkjs, "groth16", "verify", *files], capture_output=True, timeout=120, check=False
        )
        elapsed = time.perf_counter() - start
    verdict = "OK" if done.returncode == 0 else f"exit {done.returncode}"
    results["groth16_snarkjs_verify_ms"] = f"{elapsed * 1e3:.0f}"
    return (
        "snarkjs groth16 verify (same proof, whole CLI process)",
        f"{elapsed * 1e3:.0f} ms ({verdict})",
    )


def _paired_medians_s(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    first()
    second()
    a_samples, b_samples = [], []
    for _ in range(repeats):
        start = time.process_time()
        first()
        middle = time.process_time()
        second()
        a_samples.append(middle - start)
        b_samples.append(time.process_time() - middle)
    return statistics.median(a_samples), statistics.median(b_samples)


def _median_s(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def _require(ok: bool) -> bool:
    if not ok:
        raise RuntimeError("bench: a verification that must succeed failed")
    return ok


if __name__ == "__main__":
    started = time.perf_counter()
    table, values = measure()
    width = max(len(label) for label, _ in table)
    for label, figure in table:
        print(f"{label.ljust(width)}  {figure}")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in values.items()))
    print(f"(section ran in {time.perf_counter() - started:.0f} s)")

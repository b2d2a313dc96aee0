"""Benchmark of proofs/: BLS quorum certificates, Merkle inclusion, matmul spot checks, Groth16,
and the API's log proofs from its stored tree over a 100,000-record log (``log_proofs``).

Each figure comes with a baseline measured in the same run, so ratios stay meaningful on a
busy or different machine. Prints one rich table, then a final ``RESULT key=value ...`` line.
Run: ``.venv/bin/python bench/proofs.py`` (about a minute on two cores), or name sections:
``bench/proofs.py log_proofs``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
# This script is itself named proofs.py: put the repository root, not bench/, first on the
# path so that ``proofs`` is the package; bench/ goes last, for groth16_section.
sys.path[:] = [str(BENCH_DIR.parent)] + [
    p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR
]
sys.path.append(str(BENCH_DIR))

from proofs import bls, matmul, merkle, quorum  # noqa: E402

Row = tuple[str, str]
QC_SIGNER_COUNTS = (4, 16, 64)
MERKLE_LEAVES = 1 << 16
MERKLE_PROOFS = 4000
MATMUL_SIZES = (512, 2048)
LOG_RECORDS = 100_000
LOG_EVENTS_PER_APPEND = 500
LOG_PROOFS = 300
LOG_BASELINE_PROOFS = 3


def _median_s(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _paired_medians_s(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Medians of two workloads timed alternately, so background load hits both alike."""
    first()
    second()
    a_samples, b_samples = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        first()
        middle = time.perf_counter()
        second()
        a_samples.append(middle - start)
        b_samples.append(time.perf_counter() - middle)
    return statistics.median(a_samples), statistics.median(b_samples)


def bench_bls(rows: list[Row], keys: dict[str, str]) -> None:
    """QC verification (warm key cache, as a validator with a fixed set runs) vs one Verify."""
    secret_keys = [bls.key_gen(i.to_bytes(32, "big")) for i in range(max(QC_SIGNER_COUNTS))]
    validators = [bls.sk_to_pk(sk) for sk in secret_keys]
    message = quorum.verdict_message("bench-job", b"\x07" * 32, True)
    signatures = {i: bls.sign(sk, message) for i, sk in enumerate(secret_keys)}
    single_s = _median_s(lambda: bls.verify(validators[0], message, signatures[0]), 30)
    rows.append((f"BLS Verify, one signature ({bls.BACKEND.name})", f"{single_s * 1e3:.2f} ms"))
    keys["bls_backend"] = bls.BACKEND.name
    keys["bls_verify_ms"] = f"{single_s * 1e3:.3f}"
    qc_ms: dict[int, float] = {}
    for count in QC_SIGNER_COUNTS:
        qc = quorum.make_qc(
            validators, {i: signatures[i] for i in range(count)}, message, check_signatures=False
        )
        assert quorum.verify_qc(validators, qc, threshold=count)
        qc_ms[count] = (
            _median_s(functools.partial(quorum.verify_qc, validators, qc, count), 30) * 1e3
        )
        rows.append(
            (
                f"QC verify, {count} of {len(validators)} signers",
                f"{qc_ms[count]:.2f} ms = {qc_ms[count] / (single_s * 1e3):.2f}x one Verify",
            )
        )
        keys[f"bls_qc{count}_ms"] = f"{qc_ms[count]:.3f}"
    ratio = qc_ms[64] / qc_ms[4]
    rows.append(("QC ratio qc64 / qc4 (target <= 1.20)", f"{ratio:.3f}"))
    keys["bls_qc64_over_qc4"] = f"{ratio:.3f}"
    _bench_bls_cold_and_reference(rows, keys, validators, signatures, message, single_s)


def _bench_bls_cold_and_reference(
    rows: list[Row],
    keys: dict[str, str],
    validators: list[bytes],
    signatures: dict[int, bytes],
    message: bytes,
    single_s: float,
) -> None:
    """QC 64 with every key decoded afresh, and py_ecc's Verify as the reference baseline."""
    qc = quorum.make_qc(validators, signatures, message, check_signatures=False)
    if bls.BACKEND.name == "blst":
        from proofs.bls_blst import _decode_public_key

        def cold() -> None:
            _decode_public_key.cache_clear()
            quorum.verify_qc(validators, qc, len(validators))

        cold_ms = _median_s(cold, 10) * 1e3
        rows.append(("QC verify, 64 signers, cold key cache", f"{cold_ms:.2f} ms"))
        keys["bls_qc64_cold_ms"] = f"{cold_ms:.3f}"
    pyecc = bls.get_backend("py_ecc")
    start = time.perf_counter()
    pyecc.verify(validators[0], message, signatures[0], bls.DST_SIGNATURE)
    pyecc_s = time.perf_counter() - start
    rows.append(
        ("BLS Verify, py_ecc reference", f"{pyecc_s * 1e3:.0f} ms = {pyecc_s / single_s:.0f}x")
    )
    keys["bls_pyecc_verify_ms"] = f"{pyecc_s * 1e3:.1f}"
    keys["bls_speedup_vs_pyecc"] = f"{pyecc_s / single_s:.1f}"


def bench_merkle(rows: list[Row], keys: dict[str, str]) -> None:
    """Inclusion verifications per second vs raw SHA-256 node hashes per second."""
    hashes = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(MERKLE_LEAVES)]
    top = merkle.root_from_hashes(hashes)
    step = MERKLE_LEAVES // MERKLE_PROOFS
    indices = list(range(0, MERKLE_LEAVES, step))
    proofs = merkle.inclusion_proofs_from_hashes(hashes, indices)
    cases = [(hashes[i], i, p) for i, p in zip(indices, proofs, strict=True)]

    def verify_all() -> None:
        for leaf, index, proof in cases:
            assert merkle.verify_inclusion(leaf, index, MERKLE_LEAVES, proof, top)

    elapsed = _median_s(verify_all, 3)
    per_s = len(cases) / elapsed
    blob = b"\x01" + bytes(64)
    hash_s = _median_s(lambda: [hashlib.sha256(blob).digest() for _ in range(20000)], 3) / 20000
    equivalents = (elapsed / len(cases)) / hash_s
    rows.append(
        (
            f"Merkle inclusion verify, 2^16 leaves ({len(proofs[0])} hashes)",
            f"{per_s:,.0f}/s = {equivalents:.1f} raw SHA-256 node hashes each",
        )
    )
    keys["merkle_inclusion_verifies_per_s"] = f"{per_s:.0f}"
    keys["merkle_verify_in_node_hashes"] = f"{equivalents:.1f}"


def bench_log_proofs(rows: list[Row], keys: dict[str, str]) -> None:
    """Inclusion and consistency proofs as ``GET /v1/log/inclusion`` computes them (the read
    model's stored tree, on a worker thread) over a 100,000-record log, vs the O(N) proof
    built from every record hash (what a request cost before the stored tree)."""
    asyncio.run(_bench_log_proofs(rows, keys))


async def _bench_log_proofs(rows: list[Row], keys: dict[str, str]) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from adapters.store.memory import MemoryEventStore
    from api.read_model import ReadModel
    from api.transparency import TransparencyLog
    from domain.records import NewEvent, StreamAppend

    store = MemoryEventStore()
    for start in range(0, LOG_RECORDS, LOG_EVENTS_PER_APPEND):
        events = tuple(
            NewEvent("Happened", str(i).encode())
            for i in range(start, start + LOG_EVENTS_PER_APPEND)
        )
        await store.append(
            [StreamAppend(f"s-{start}", "bench", None, events)], command_id=str(start)
        )
    log = TransparencyLog(ReadModel(store), Ed25519PrivateKey.generate(), time.time_ns)
    started = time.perf_counter()
    assert await log.read_model.catch_up() == LOG_RECORDS
    fold_s = time.perf_counter() - started
    picks = random.Random(16).sample(range(1, LOG_RECORDS + 1), LOG_PROOFS)
    samples = []
    for position in picks:
        started = time.perf_counter()
        view = await log.get_inclusion_proof(position, LOG_RECORDS)
        samples.append(time.perf_counter() - started)
    inclusion_ms = statistics.median(samples) * 1e3
    consistency = []
    for first in picks[: LOG_PROOFS // 3]:
        started = time.perf_counter()
        await log.get_consistency_proof(first, LOG_RECORDS)
        consistency.append(time.perf_counter() - started)
    consistency_ms = statistics.median(consistency) * 1e3
    hashes: list[bytes] = []
    while len(hashes) < LOG_RECORDS:
        hashes.extend(r.hash for r in await store.read_all(len(hashes) + 1, 1000))
    full_ms = (
        statistics.median(
            _median_s(functools.partial(merkle.inclusion_proof_from_hashes, hashes, p - 1), 1, 0)
            for p in picks[:LOG_BASELINE_PROOFS]
        )
        * 1e3
    )
    assert merkle.verify_inclusion(
        bytes.fromhex(view.leaf_hash),
        view.leaf_index,
        LOG_RECORDS,
        [bytes.fromhex(p) for p in view.proof],
        bytes.fromhex(view.root),
    )
    rows.append(
        (
            f"Log inclusion proof, {LOG_RECORDS:,} records ({len(view.proof)} hashes, stored tree)",
            f"{inclusion_ms:.3f} ms vs {full_ms:.0f} ms from every hash = "
            f"{full_ms / inclusion_ms:.0f}x faster (consistency {consistency_ms:.3f} ms; "
            f"folding the log {fold_s:.1f} s)",
        )
    )
    keys["inclusion_proof_ms_100k"] = f"{inclusion_ms:.3f}"
    keys["consistency_proof_ms_100k"] = f"{consistency_ms:.3f}"
    keys["inclusion_proof_from_all_hashes_ms_100k"] = f"{full_ms:.1f}"
    keys["log_fold_100k_s"] = f"{fold_s:.2f}"
    log.read_model.close()


def bench_matmul(rows: list[Row], keys: dict[str, str]) -> None:
    """Spot-check verification (459 openings) vs recomputing all of C in float64."""
    import numpy as np

    for n in MATMUL_SIZES:
        seed = f"bench-{n}".encode()
        a, b = matmul.derive_inputs(seed, n)
        c = matmul.compute_product(a, b)
        prove_s = _median_s(functools.partial(matmul.make_matmul_proof, c, seed), 1, 0)
        proof = matmul.make_matmul_proof(c, seed)
        assert matmul.verify_proof(proof)

        def full(seed: bytes = seed, n: int = n, c: np.ndarray = c) -> bool:
            a, b = matmul.derive_inputs(seed, n)
            return bool(np.array_equal(a.astype(np.float64) @ b.astype(np.float64), c))

        verify_s, full_s = _paired_medians_s(
            functools.partial(matmul.verify_proof, proof), full, 7 if n <= 512 else 3
        )
        rows.append(
            (
                f"Matmul n={n}: spot check ({len(proof.openings)} rows) vs full recompute",
                f"{verify_s * 1e3:.1f} ms vs {full_s * 1e3:.1f} ms = {verify_s / full_s:.2f}x"
                f" (prove {prove_s * 1e3:.0f} ms)",
            )
        )
        keys[f"matmul{n}_verify_ms"] = f"{verify_s * 1e3:.2f}"
        keys[f"matmul{n}_full_ms"] = f"{full_s * 1e3:.2f}"
        keys[f"matmul{n}_verify_over_full"] = f"{verify_s / full_s:.3f}"


def bench_groth16(rows: list[Row], keys: dict[str, str]) -> None:
    """Rows and RESULT keys from bench/groth16_section.py, written by the Groth16 owner."""
    if not (BENCH_DIR / "groth16_section.py").exists():
        rows.append(("groth16", "not measured (bench/groth16_section.py missing)"))
        keys["groth16"] = "missing"
        return
    section = importlib.import_module("groth16_section")
    section_rows, section_keys = section.measure()
    rows.extend(section_rows)
    keys.update(section_keys)


def main() -> None:
    rows: list[Row] = []
    keys: dict[str, str] = {}
    started = time.perf_counter()
    sections = {
        "bls": bench_bls,
        "merkle": bench_merkle,
        "log_proofs": bench_log_proofs,
        "matmul": bench_matmul,
        "groth16": bench_groth16,
    }
    chosen = sys.argv[1:] or list(sections)  # e.g. ``bench/proofs.py log_proofs``
    for name in chosen:
        sections[name](rows, keys)
    table = Table(title="proofs/ benchmark")
    table.add_column("measure")
    table.add_column("result")
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    keys["bench_s"] = f"{time.perf_counter() - started:.1f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in keys.items()))


if __name__ == "__main__":
    main()

"""Attestation answers (honest, stale, replayed, implausibly timed) and the NVML probe."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
import torch

from adapters.compute.attestation import (
    REPORT_TAG,
    AttestationReport,
    SignedReport,
    answer_challenge,
    is_timing_plausible,
    verify_attestation,
)
from adapters.compute.nvml import DEVICES_MAX, compute_gpu_class, probe_inventory
from adapters.keyfile import write_key_file
from node_agent.spool import PendingResult, ResultSpool
from proofs.identity import Identity

NODE = Identity.from_seed(b"node".ljust(32, b"\0"))
SEED_1 = hashlib.sha256(b"challenge-1").hexdigest()
SEED_2 = hashlib.sha256(b"challenge-2").hexdigest()
SIZE = 64


def answer(nonce: str, seed: str, size: int = SIZE) -> Any:
    return answer_challenge(
        NODE,
        nonce=nonce,
        seed=seed,
        size=size,
        inventory=probe_inventory(FakeNvml(driver=False)),
        devices=[torch.device("cpu")],
        now_ns=1,
    )


def check(ans: Any, nonce: str, seed: str, size: int = SIZE) -> str:
    return verify_attestation(
        ans.report,
        node_id=NODE.id,
        nonce=nonce,
        seed=seed,
        size=size,
        inventory_digest=ans.inventory_digest,
        commitment=ans.commitment,
        timings_ns=ans.timings_ns,
    )


def test_honest_answer_verifies() -> None:
    assert check(answer("n1", SEED_1), "n1", SEED_1) == "ok"


def test_replayed_answer_to_a_new_challenge_is_stale() -> None:
    old = answer("n1", SEED_1)
    assert check(old, "n2", SEED_2) == "report_stale"


def test_answer_signed_by_another_key_is_invalid() -> None:
    ans = answer("n1", SEED_1)
    other = Identity.from_seed(b"other".ljust(32, b"\0"))
    assert (
        verify_attestation(
            ans.report,
            node_id=other.id,
            nonce="n1",
            seed=SEED_1,
            size=SIZE,
            inventory_digest=ans.inventory_digest,
            commitment=ans.commitment,
            timings_ns=ans.timings_ns,
        )
        == "report_invalid"
    )


def test_reused_openings_under_a_fresh_nonce_fail_the_proof() -> None:
    """A node re-signs an old report with the new nonce and seed but the old product."""
    old = answer("n1", SEED_1)
    signed = msgspec.msgpack.decode(old.report, type=SignedReport)
    report = msgspec.msgpack.decode(signed.report, type=AttestationReport)
    proof = msgspec.structs.replace(report.proof, seed=bytes.fromhex(SEED_2))
    forged = msgspec.structs.replace(report, nonce="n2", seed=SEED_2, proof=proof)
    body = msgspec.msgpack.encode(forged)
    data = msgspec.msgpack.encode(SignedReport(body, NODE.sign(REPORT_TAG + body)))
    assert (
        verify_attestation(
            data,
            node_id=NODE.id,
            nonce="n2",
            seed=SEED_2,
            size=SIZE,
            inventory_digest=hashlib.sha256(data).digest(),
            commitment=old.commitment,
            timings_ns=old.timings_ns,
        )
        == "proof_invalid"
    )


def test_submitted_timings_must_match_the_report() -> None:
    ans = answer("n1", SEED_1)
    faster = msgspec.structs.replace(ans, timings_ns=[1])
    assert check(faster, "n1", SEED_1) == "timings_mismatch"


def test_timing_plausibility_bounds() -> None:
    n = 4096
    flops = 2 * n**3
    assert is_timing_plausible(n, int(flops / 1e12 * 1e9), "cpu")  # 1 TFLOP/s CPU
    assert not is_timing_plausible(n, int(flops / 100e12 * 1e9), "cpu")  # 100 TFLOP/s CPU
    assert not is_timing_plausible(n, int(flops / 0.1e12 * 1e9), "cuda")  # a CPU posing as GPU
    assert is_timing_plausible(n, int(flops / 50e12 * 1e9), "cuda")
    assert not is_timing_plausible(n, 0, "cuda")


class FakeNvml:
    """Just enough of pynvml: no driver (error 12), or GPUs with unsupported fields."""

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    def __init__(self, *, driver: bool, count: int = 2) -> None:
        self.driver, self.count = driver, count

    def nvmlInit(self) -> None:
        if not self.driver:
            raise self.NVMLError(12)

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle:08d}"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(total=81559 * 1024 * 1024)

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        return (9, 0)

    def nvmlDeviceGetPciInfo(self, handle: int) -> Any:
        raise self.NVMLError(3)  # NotSupported

    def nvmlDeviceGetConfComputeGpuCertificate(self, handle: int) -> Any:
        raise self.NVMLError(13)  # FunctionNotFound

    def nvmlSystemGetConfComputeState(self) -> Any:
        return SimpleNamespace(environment=1, ccFeature=0, devToolsMode=0)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040


def test_no_driver_reports_the_cpu_class() -> None:
    inventory = probe_inventory(FakeNvml(driver=False))
    assert inventory.device_class == "cpu" and inventory.gpus == []
    assert "no NVIDIA driver" in inventory.no_gpu_reason
    assert compute_gpu_class(inventory) == "cpu"


def test_gpus_with_unsupported_fields_are_reported() -> None:
    inventory = probe_inventory(FakeNvml(driver=True, count=DEVICES_MAX + 1))
    assert inventory.device_class == "cuda" and len(inventory.gpus) == DEVICES_MAX
    gpu = inventory.gpus[0]
    assert (gpu.uuid, gpu.memory_mib, gpu.compute_capability) == ("GPU-00000000", 81559, "9.0")
    assert gpu.pci_bus_id == "" and not gpu.cc_attestation_available
    assert inventory.driver_version == "550.54.15" and inventory.cuda_driver_version == "12.4"
    assert inventory.confidential_computing is not None
    assert compute_gpu_class(inventory) == "datacenter"


def test_key_file_is_private_and_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    key_id = write_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key_id) >= 32
    with pytest.raises(FileExistsError):
        write_key_file(path)
    assert write_key_file(path, force=True) != key_id


def test_spool_round_trip(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path)
    pending = PendingResult(
        job_id="job-1", commitment=b"c" * 32, artifact=b"a", proof=b"p", result_due_ns=5
    )
    spool.save(pending)
    assert ResultSpool(tmp_path).load("job-1") == pending
    assert spool.list_job_ids() == ["job-1"]
    spool.remove("job-1")
    assert spool.list_job_ids() == []
    with pytest.raises(ValueError):
        spool.load("../etc/passwd")

"""The CC tier's host side without NVIDIA's verifier: evidence parsing and its bounds, the
nonce, the SDK lookup, and when a node collects nothing. The verifier itself is exercised in
tests/integration/compute/test_cc_attestation.py."""

from __future__ import annotations

import base64
from pathlib import Path

import msgspec
import pytest

from adapters.compute.cc_attestation import (
    CC_PYTHON_ENV,
    CcEvidenceBundle,
    CcGpuEvidence,
    CcSdk,
    CcSdkError,
    collect_cc_evidence,
    decode_cc_evidence,
    find_cc_sdk,
    is_cc_reason_inconclusive,
    verify_cc_evidence,
)
from adapters.compute.nvml import (
    DEVICES_MAX,
    ConfidentialComputing,
    GpuDevice,
    Inventory,
)
from proofs.probe_wire import CC_EVIDENCE_BYTES_MAX, CC_NONCE_BYTES

NONCE = bytes(range(CC_NONCE_BYTES))
MISSING_PYTHON = CcSdk(python="/nonexistent/flop-cc/python")


def _gpu() -> CcGpuEvidence:
    return CcGpuEvidence(
        arch="HOPPER",
        certificate=base64.b64encode(b"chain").decode(),
        evidence=base64.b64encode(b"report").decode(),
    )


def _bundle(count: int = 1) -> bytes:
    return msgspec.json.encode(CcEvidenceBundle(gpus=[_gpu()] * count))


def _inventory(cc_feature: int) -> Inventory:
    return Inventory(
        device_class="cuda",
        gpus=[GpuDevice(index=0, name="NVIDIA H100 80GB HBM3")],
        confidential_computing=ConfidentialComputing(
            environment=1, cc_feature=cc_feature, dev_tools_mode=0
        ),
    )


def test_evidence_at_the_size_bound_decodes_and_one_byte_more_does_not() -> None:
    encoded = _bundle()
    at_bound = encoded + b" " * (CC_EVIDENCE_BYTES_MAX - len(encoded))
    assert decode_cc_evidence(at_bound) is not None
    assert decode_cc_evidence(at_bound + b" ") is None


def test_evidence_holds_one_to_devices_max_gpus() -> None:
    assert decode_cc_evidence(_bundle(DEVICES_MAX)) is not None
    assert decode_cc_evidence(_bundle(DEVICES_MAX + 1)) is None
    assert decode_cc_evidence(_bundle(0)) is None


@pytest.mark.parametrize(
    "evidence",
    [b"", b"not json", b'{"version": 2, "gpus": []}', b'{"gpus": [{"arch": "HOPPER"}]}'],
)
def test_malformed_evidence_is_refused_without_the_sdk(evidence: bytes) -> None:
    assert verify_cc_evidence(evidence, NONCE, offline=True, sdk=MISSING_PYTHON) == (
        "cc_evidence_malformed"
    )


def test_without_the_sdk_a_validator_cannot_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CC_PYTHON_ENV, raising=False)
    reason = verify_cc_evidence(_bundle(), NONCE, offline=True)
    assert reason == "cc_sdk_unavailable" and is_cc_reason_inconclusive(reason)
    assert not is_cc_reason_inconclusive("cc_nonce_mismatch")


@pytest.mark.parametrize("length", [CC_NONCE_BYTES - 1, CC_NONCE_BYTES + 1])
def test_a_nonce_is_exactly_32_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        verify_cc_evidence(_bundle(), bytes(length), offline=True, sdk=MISSING_PYTHON)
    with pytest.raises(ValueError, match="32 bytes"):
        collect_cc_evidence(bytes(length), sdk=MISSING_PYTHON, inventory=_inventory(1))


def test_the_sdk_is_named_by_an_existing_interpreter(tmp_path: Path) -> None:
    assert find_cc_sdk({}) is None
    assert find_cc_sdk({CC_PYTHON_ENV: str(tmp_path / "absent")}) is None
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\n")
    assert find_cc_sdk({CC_PYTHON_ENV: str(python)}) is None  # not executable
    python.chmod(0o755)
    assert find_cc_sdk({CC_PYTHON_ENV: str(python)}) == CcSdk(python=str(python))


def test_a_node_collects_nothing_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CC_PYTHON_ENV, raising=False)
    assert collect_cc_evidence(NONCE, inventory=_inventory(1)) is None


def test_a_node_collects_nothing_where_nvml_reports_cc_off() -> None:
    # The SDK's interpreter does not exist: None proves it was not even started.
    assert collect_cc_evidence(NONCE, sdk=MISSING_PYTHON, inventory=_inventory(0)) is None
    cpu = Inventory(device_class="cpu")
    assert collect_cc_evidence(NONCE, sdk=MISSING_PYTHON, inventory=cpu) is None


def test_a_node_in_cc_mode_asks_the_sdk_and_a_broken_one_is_an_operating_error() -> None:
    with pytest.raises(CcSdkError, match="did not run"):
        collect_cc_evidence(NONCE, sdk=MISSING_PYTHON, inventory=_inventory(1))

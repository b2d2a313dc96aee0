"""The CC tier against NVIDIA's own verifier (nv-local-gpu-verifier, in ``.venv-cc``: ``make
cc-sdk``) on the evidence it ships for machines without a GPU: one Hopper report with its
device certificate chain and nonce, and two RIMs for its no-GPU mode.

Offline the sample passes the evidence checks (chain to NVIDIA's pinned root, nonce, report
signature) and no more: the shipped RIMs are for other versions and their signers expired.
Revocation (OCSP) and NVIDIA's RIM service need the network; here they point at a closed port,
so online verification must answer "cannot decide", never "ok". A node replaying the report
through the probe protocol fails a validator's CC probe. A live check needs network
access and a CC-mode H100/H200, neither of which a test has.

Skipped with the reason printed where the verifier's environment is absent; under CI (``CI``
or ``FLOP_REQUIRE_CC_SDK`` set) that is a failure instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.compute.cc_attestation import (
    CC_PYTHON_ENV,
    CcEvidenceBundle,
    CcSample,
    CcSdk,
    decode_cc_evidence,
    find_cc_sdk,
    get_sdk_sample,
    get_sdk_version,
    is_cc_reason_inconclusive,
    verify_cc_evidence,
    verify_cc_evidence_detail,
)
from adapters.compute.probe_device import FakeClock
from node_agent.probe_responder import ProbeResponder
from tests.probing import CHALLENGE_SEED, NODE, NONCE, RTT_MAX_NS, VALIDATOR, LocalTransport
from validator.prober import Prober

REPO_VENV_PYTHON = Path(__file__).resolve().parents[3] / ".venv-cc" / "bin" / "python"
SDK_VERSION = "2.7.3"
SPDM_NONCE_OFFSET = 4
"""The request's nonce follows version, code, param1 and param2 (DSP0274 GET_MEASUREMENTS)."""
FRESH_NONCE = hashlib.sha256(b"flopledger cc test: a validator's fresh nonce").digest()


def _find_sdk() -> CcSdk | None:
    sdk = find_cc_sdk()
    if sdk is None and os.access(REPO_VENV_PYTHON, os.X_OK):
        sdk = CcSdk(python=str(REPO_VENV_PYTHON))
    return sdk


@pytest.fixture(scope="module")
def sdk() -> CcSdk:
    found = _find_sdk()
    if found is None:
        reason = (
            f"NVIDIA's verifier is not installed: `make cc-sdk` builds .venv-cc, or set "
            f"{CC_PYTHON_ENV} (it pins cryptography==43.0.1, so it has its own environment)"
        )
        if os.environ.get("CI") or os.environ.get("FLOP_REQUIRE_CC_SDK"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def sample(sdk: CcSdk) -> CcSample:
    return get_sdk_sample(sdk)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A bound port that does not listen: connections to it are refused at once."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_the_pinned_verifier_is_installed(sdk: CcSdk) -> None:
    assert get_sdk_version(sdk) == SDK_VERSION


def test_the_shipped_sample_passes_the_evidence_checks_offline(
    sdk: CcSdk, sample: CcSample
) -> None:
    outcome = verify_cc_evidence_detail(sample.evidence, sample.nonce, offline=True, sdk=sdk)
    assert outcome.reason == "ok", outcome.detail
    assert outcome.checked == ("cert_chain", "nonce", "signature")
    (gpu,) = outcome.gpus
    assert gpu.arch == "HOPPER" and gpu.hwmodel.startswith("GH100")
    assert (gpu.driver_version, gpu.vbios_version) == ("550.90.07", "96.00.9f.00.01")
    assert gpu.ueid.isdigit()


def test_a_report_over_another_nonce_is_refused(sdk: CcSdk, sample: CcSample) -> None:
    assert verify_cc_evidence(sample.evidence, FRESH_NONCE, offline=True, sdk=sdk) == (
        "cc_nonce_mismatch"
    )


def test_a_replayed_report_given_the_fresh_nonce_fails_its_signature(
    sdk: CcSdk, sample: CcSample
) -> None:
    def with_nonce(report: bytearray) -> None:
        assert report[SPDM_NONCE_OFFSET : SPDM_NONCE_OFFSET + 32] == sample.nonce
        report[SPDM_NONCE_OFFSET : SPDM_NONCE_OFFSET + 32] = FRESH_NONCE

    replayed = _edit_report(sample.evidence, with_nonce)
    assert verify_cc_evidence(replayed, FRESH_NONCE, offline=True, sdk=sdk) == (
        "cc_report_signature_invalid"
    )


def test_a_tampered_measurement_fails_the_signature(sdk: CcSdk, sample: CcSample) -> None:
    def flip(report: bytearray) -> None:
        report[200] ^= 0x01  # inside the response's measurement record

    tampered = _edit_report(sample.evidence, flip)
    assert verify_cc_evidence(tampered, sample.nonce, offline=True, sdk=sdk) == (
        "cc_report_signature_invalid"
    )


def test_a_device_certificate_not_issued_by_nvidia_is_refused(sdk: CcSdk, sample: CcSample) -> None:
    # The forger copies the genuine leaf's names and extensions (its FWID too) onto its own
    # key: only the issuer's signature tells them apart.
    bundle = _decode(sample.evidence)
    pem = base64.b64decode(bundle.gpus[0].certificate)
    end = b"-----END CERTIFICATE-----\n"
    cut = pem.index(end) + len(end)
    forged = _forge_like(x509.load_pem_x509_certificate(pem[:cut])) + pem[cut:]
    gpu = msgspec.structs.replace(bundle.gpus[0], certificate=base64.b64encode(forged).decode())
    evidence = msgspec.json.encode(CcEvidenceBundle(gpus=[gpu]))
    assert verify_cc_evidence(evidence, sample.nonce, offline=True, sdk=sdk) == (
        "cc_cert_chain_invalid"
    )


def test_an_architecture_the_verifier_does_not_attest_is_refused(
    sdk: CcSdk, sample: CcSample
) -> None:
    bundle = _decode(sample.evidence)
    gpu = msgspec.structs.replace(bundle.gpus[0], arch="AMPERE")
    evidence = msgspec.json.encode(CcEvidenceBundle(gpus=[gpu]))
    assert verify_cc_evidence(evidence, sample.nonce, offline=True, sdk=sdk) == (
        "cc_arch_unsupported"
    )


def test_the_shipped_rims_do_not_vouch_for_the_shipped_report(sdk: CcSdk, sample: CcSample) -> None:
    outcome = verify_cc_evidence_detail(
        sample.evidence, sample.nonce, offline=True, rims=sample.rims, sdk=sdk
    )
    assert outcome.reason == "cc_rim_invalid", outcome.detail
    assert "measurements" not in outcome.checked


def test_offline_with_a_rim_cache_lacking_the_rims_cannot_decide(
    sdk: CcSdk, sample: CcSample
) -> None:
    reason = verify_cc_evidence(sample.evidence, sample.nonce, offline=True, rims={}, sdk=sdk)
    assert reason == "cc_rim_unavailable" and is_cc_reason_inconclusive(reason)


def test_online_without_nvidias_services_never_passes(
    sdk: CcSdk, sample: CcSample, closed_port: int
) -> None:
    unreachable = f"http://127.0.0.1:{closed_port}/"
    cut_off = msgspec.structs.replace(sdk, ocsp_url=unreachable, rim_url=unreachable)
    reason = verify_cc_evidence(sample.evidence, sample.nonce, offline=False, sdk=cut_off)
    assert reason == "cc_ocsp_unavailable" and is_cc_reason_inconclusive(reason)


async def test_a_node_replaying_the_shipped_report_fails_the_validators_cc_probe(
    sdk: CcSdk, sample: CcSample
) -> None:
    clock = FakeClock()
    transport = LocalTransport(clock)
    responder = ProbeResponder(
        NODE,
        [],
        lambda signer, kind: True,
        clock_ns=clock.now_ns,
        collect_cc=lambda nonce: sample.evidence,
    )
    transport.handlers[NODE.id] = responder.handle
    prober = Prober(VALIDATOR, transport, clock_ns=clock.now_ns, rtt_max_ns=RTT_MAX_NS)

    def verify(evidence: bytes, nonce: bytes) -> str:
        return verify_cc_evidence(evidence, nonce, offline=True, sdk=sdk)

    outcome = await prober.attest_cc(
        NODE.id, nonce=NONCE, challenge_seed=CHALLENGE_SEED, verify=verify
    )
    assert (outcome.passed, outcome.reason) == (False, "cc_nonce_mismatch")


def _decode(evidence: bytes) -> CcEvidenceBundle:
    bundle = decode_cc_evidence(evidence)
    assert bundle is not None
    return bundle


def _edit_report(evidence: bytes, edit: object) -> bytes:
    bundle = _decode(evidence)
    report = bytearray(base64.b64decode(bundle.gpus[0].evidence))
    edit(report)  # type: ignore[operator]
    gpu = msgspec.structs.replace(bundle.gpus[0], evidence=base64.b64encode(report).decode())
    return msgspec.json.encode(CcEvidenceBundle(gpus=[gpu]))


def _forge_like(genuine: x509.Certificate) -> bytes:
    key = ec.generate_private_key(ec.SECP384R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(genuine.issuer)
        .public_key(key.public_key())
        .serial_number(genuine.serial_number)
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
    )
    for extension in genuine.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.PEM)

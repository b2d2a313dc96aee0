"""Confidential-computing attestation (the "cc" tier): a Hopper or Blackwell GPU in CC mode
signs an SPDM measurement report over the validator's nonce with a device key NVIDIA
certifies; NVIDIA's verifier (``nv-local-gpu-verifier``) checks it.

Where NVIDIA's code runs. nv-local-gpu-verifier 2.7.3 (BSD-3-Clause; every release since
2.0.0 pins alike) pins ``cryptography==43.0.1``, ``pyOpenSSL==24.2.1``, ``signxml==3.2.0``,
``nvidia-ml-py==12.550.52``; our core pins ``cryptography~=50.0``, so pip cannot install both
(``ResolutionImpossible``), and under newer libraries its RIM check fails (signxml 5:
``unexpected keyword argument 'ca_path'``). So it runs under its own pins in its own virtual
environment (``make cc-sdk`` builds ``.venv-cc`` from ``requirements-cc.txt``: about 15 wheels,
no CUDA) as a child process, ``cc_sdk_driver.py``, one JSON request and answer per call.
``CcSdk.python`` names that interpreter (``FLOP_CC_PYTHON``). nv-attestation-sdk, the wrapper
around it, adds nothing offline and pins pytest 8, pylint and twine; it is not used. NVIDIA
deprecates this Python verifier (end of support 2026-09-15, it warns when run) for its C++
SDK (github.com/NVIDIA/attestation-sdk), which is not on the package registry; 2.7.3 is the
last release there.

Evidence: per GPU NVIDIA's remote-evidence fields (``arch``; ``certificate``, the base64 PEM
device chain; ``evidence``, the base64 report = SPDM GET_MEASUREMENTS request (holding the
32-byte nonce) and signed response), as NRAS takes them, in a JSON ``CcEvidenceBundle``.

What a verification checks, in this order (the verifier's, but OCSP after the checks that
need no network), and what needs the network:

1. the device chain up to NVIDIA's device root pinned in the verifier, and the report's FWID
   equal to the leaf certificate's: offline;
2. the nonce inside the signed SPDM request is the one this validator sent: offline;
3. the report's ECDSA P-384 signature by the chain's leaf: offline;
4. OCSP revocation of the device chain: online only (NVIDIA's ocsp.ndis.nvidia.com);
5. the driver and VBIOS RIMs (reference measurements): schema, chain up to the pinned RIM
   root, OCSP on it (online only), signature, version: from a RIM cache offline, else from
   NVIDIA's RIM service (rim.attestation.nvidia.com);
6. the runtime measurements equal the RIMs' golden ones: wherever 5 ran.

Offline with no RIM cache, "ok" says: a GPU holding an NVIDIA-certified attestation key signed
a report over this nonce; not that its firmware and driver are NVIDIA's released ones, nor
that the key is unrevoked. The verifier ships one Hopper report with its chain (valid to
9999) and two RIMs for its no-GPU mode: those RIMs are for other versions (driver 545.00, VBIOS
96.00.5e.00.01, not the report's 550.90.07 and 96.00.9f.00.01) and their signing certificates
expired in June 2025, so the shipped sample passes the first three checks and no more.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from adapters.compute.nvml import DEVICES_MAX, Inventory, probe_inventory
from proofs.probe_wire import CC_EVIDENCE_BYTES_MAX, CC_NONCE_BYTES

CC_SDK_TIMEOUT_S = 120.0
"""One child call: the verifier waits up to 10 s per OCSP or RIM request, five of each at most."""
CC_PYTHON_ENV = "FLOP_CC_PYTHON"
EVIDENCE_VERSION = 1
DRIVER_PATH = Path(__file__).with_name("cc_sdk_driver.py")
FIELD_CHARS_MAX = 64 * 1024
DETAIL_CHARS_MAX = 300

CC_REASONS = (
    "ok",
    "cc_sdk_unavailable",
    "cc_evidence_malformed",
    "cc_arch_unsupported",
    "cc_cert_chain_invalid",
    "cc_nonce_mismatch",
    "cc_report_signature_invalid",
    "cc_cert_revoked",
    "cc_ocsp_unavailable",
    "cc_rim_unavailable",
    "cc_rim_invalid",
    "cc_measurements_mismatch",
)
"""Every answer of ``verify_cc_evidence``, stable."""
CC_REASONS_INCONCLUSIVE = frozenset(
    {"cc_sdk_unavailable", "cc_ocsp_unavailable", "cc_rim_unavailable"}
)
"""The validator could not check (no SDK, no network, no RIM): nothing against the node."""

Field = Annotated[str, msgspec.Meta(min_length=1, max_length=FIELD_CHARS_MAX)]


class CcGpuEvidence(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One GPU's evidence, NVIDIA's remote-evidence fields."""

    arch: Annotated[str, msgspec.Meta(max_length=16)]
    certificate: Field
    evidence: Field


class CcEvidenceBundle(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The evidence a node answers with: every GPU of the machine, in NVML order."""

    version: int = EVIDENCE_VERSION
    gpus: Annotated[list[CcGpuEvidence], msgspec.Meta(min_length=1, max_length=DEVICES_MAX)]


class CcGpuIdentity(msgspec.Struct, frozen=True):
    """What a verified report says about its GPU: the chip (the chain's device CA name),
    the device certificate's serial (a hardware identity, unlike NVML's self-reported UUID),
    and the driver and VBIOS versions in the signed report."""

    arch: str
    hwmodel: str
    ueid: str
    driver_version: str
    vbios_version: str


class CcVerification(msgspec.Struct, frozen=True):
    """The outcome: a reason of ``CC_REASONS``, what was checked, the verified GPUs."""

    reason: str
    detail: str = ""
    checked: tuple[str, ...] = ()
    gpus: tuple[CcGpuIdentity, ...] = ()


class CcSample(msgspec.Struct, frozen=True):
    """The evidence NVIDIA's verifier ships for machines without a GPU, its nonce, and the
    RIMs its no-GPU mode pairs with it (keyed by the RIM-service ids the report names)."""

    evidence: bytes
    nonce: bytes
    rims: dict[str, str]


class CcSdk(msgspec.Struct, frozen=True, kw_only=True):
    """Where NVIDIA's verifier runs: the interpreter of its environment; service URLs to
    override (empty: NVIDIA's; tests point them at a closed port)."""

    python: str
    timeout_s: float = CC_SDK_TIMEOUT_S
    ocsp_url: str = ""
    rim_url: str = ""


class CcSdkError(RuntimeError):
    """The verifier's process failed (crashed, timed out, answered nonsense): an operating
    error of this machine, never a verdict on the node."""


def find_cc_sdk(environ: Mapping[str, str] = os.environ) -> CcSdk | None:
    """The SDK named by ``FLOP_CC_PYTHON`` when that interpreter exists, else None."""
    python = environ.get(CC_PYTHON_ENV, "")
    if not python or not os.access(python, os.X_OK):
        return None
    return CcSdk(python=python)


def is_cc_enabled(inventory: Inventory) -> bool:
    """NVML's CC feature is on (the verifier's own test: ``ccFeature != 0``)."""
    cc = inventory.confidential_computing
    return cc is not None and cc.cc_feature != 0 and bool(inventory.gpus)


def is_cc_reason_inconclusive(reason: str) -> bool:
    """True when the verifier could not decide (see ``CC_REASONS_INCONCLUSIVE``)."""
    return reason in CC_REASONS_INCONCLUSIVE


def collect_cc_evidence(
    nonce: bytes, *, sdk: CcSdk | None = None, inventory: Inventory | None = None
) -> bytes | None:
    """Every GPU's report over ``nonce`` (node side); None where NVML reports CC off or
    no SDK is installed. ``inventory`` replaces the NVML probe (tests)."""
    _require_nonce(nonce)
    sdk = sdk or find_cc_sdk()
    if sdk is None:
        return None
    if not is_cc_enabled(inventory or probe_inventory()):
        return None
    answer = _call(sdk, {"op": "collect", "nonce": nonce.hex()})
    if answer.get("evidence") is None:
        return None
    gpus = msgspec.convert(answer["evidence"], list[CcGpuEvidence])
    return msgspec.json.encode(CcEvidenceBundle(gpus=gpus))


def verify_cc_evidence(
    evidence: bytes,
    nonce: bytes,
    *,
    offline: bool,
    rims: Mapping[str, str] | None = None,
    sdk: CcSdk | None = None,
) -> str:
    """ "ok" or a reason code (``CC_REASONS``): ``verify_cc_evidence_detail``'s reason."""
    return verify_cc_evidence_detail(evidence, nonce, offline=offline, rims=rims, sdk=sdk).reason


def verify_cc_evidence_detail(
    evidence: bytes,
    nonce: bytes,
    *,
    offline: bool,
    rims: Mapping[str, str] | None = None,
    sdk: CcSdk | None = None,
) -> CcVerification:
    """Verify a node's evidence against the nonce this validator sent (module docstring).

    ``offline``: no network; revocation is not checked, RIMs come only from ``rims`` (RIM
    service id -> swidtag XML) and measurements are compared only when ``rims`` is given.
    Online, RIMs missing from ``rims`` are fetched and every chain's OCSP status is asked.
    """
    _require_nonce(nonce)
    bundle = decode_cc_evidence(evidence)
    if bundle is None:
        return CcVerification(reason="cc_evidence_malformed", detail="not a CC evidence bundle")
    sdk = sdk or find_cc_sdk()
    if sdk is None:
        return CcVerification(reason="cc_sdk_unavailable", detail=f"{CC_PYTHON_ENV} is not set")
    request = {
        "op": "verify",
        "evidence": msgspec.to_builtins(bundle.gpus),
        "nonce": nonce.hex(),
        "offline": offline,
        "rims": dict(rims) if rims is not None else None,
    }
    answer = _call(sdk, request)
    try:
        outcome = msgspec.convert(answer, CcVerification)
    except msgspec.ValidationError as exc:
        raise CcSdkError(f"unexpected answer from the CC verifier: {exc}") from exc
    if outcome.reason not in CC_REASONS:
        raise CcSdkError(f"unknown reason from the CC verifier: {outcome.reason[:40]!r}")
    return msgspec.structs.replace(outcome, detail=outcome.detail[:DETAIL_CHARS_MAX])


def decode_cc_evidence(evidence: bytes) -> CcEvidenceBundle | None:
    """The bundle, or None for bytes that are not one (too long, not JSON, wrong shape)."""
    if len(evidence) > CC_EVIDENCE_BYTES_MAX:
        return None
    try:
        bundle = msgspec.json.decode(evidence, type=CcEvidenceBundle)
    except msgspec.DecodeError:
        return None
    return bundle if bundle.version == EVIDENCE_VERSION else None


def get_sdk_sample(sdk: CcSdk) -> CcSample:
    """NVIDIA's shipped sample evidence with its nonce and no-GPU-mode RIMs (tests)."""
    answer = _call(sdk, {"op": "sample"})
    gpus = msgspec.convert(answer["evidence"], list[CcGpuEvidence])
    return CcSample(
        evidence=msgspec.json.encode(CcEvidenceBundle(gpus=gpus)),
        nonce=bytes.fromhex(answer["nonce"]),
        rims=dict(answer["rims"]),
    )


def get_sdk_version(sdk: CcSdk) -> str:
    """The installed nv-local-gpu-verifier's version."""
    return str(_call(sdk, {"op": "version"})["version"])


def _require_nonce(nonce: bytes) -> None:
    # The nonce is the validator's own derivation: a wrong length is a bug, not bad input.
    if len(nonce) != CC_NONCE_BYTES:
        raise ValueError(f"a CC nonce is {CC_NONCE_BYTES} bytes, not {len(nonce)}")


def _call(sdk: CcSdk, request: dict[str, Any]) -> dict[str, Any]:
    """One request to the verifier's process; its failures become ``CcSdkError``."""
    env = dict(os.environ)
    if sdk.ocsp_url:
        env["NV_OCSP_URL"] = sdk.ocsp_url
    if sdk.rim_url:
        env["NV_RIM_URL"] = sdk.rim_url
    try:
        # -I: the child sees neither PYTHON* variables nor our directories on its path.
        done = subprocess.run(
            [sdk.python, "-I", str(DRIVER_PATH)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=sdk.timeout_s,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CcSdkError(f"the CC verifier did not run: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise CcSdkError(f"the CC verifier exited {done.returncode}: {tail[0][:DETAIL_CHARS_MAX]}")
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise CcSdkError("the CC verifier's answer is not JSON") from exc
    if not isinstance(answer, dict):
        raise CcSdkError("the CC verifier's answer is not an object")
    return answer

"""The child side of ``adapters.compute.cc_attestation``: NVIDIA's GPU verifier run under
NVIDIA's own pins, in the interpreter of its own virtual environment (``make cc-sdk``).

Run as ``<cc python> -I cc_sdk_driver.py`` with one JSON request on stdin; one JSON answer on
stdout. It imports the standard library and ``verifier`` (nv-local-gpu-verifier) only: none of
our packages are installed in that environment. Operations:

- ``collect`` {nonce}: the GPUs' evidence through NVML in CC mode
  (``cc_admin.collect_gpu_evidence_remote``: NVIDIA's remote-evidence fields arch, certificate,
  evidence), ``{"evidence": null, "detail": ...}`` where NVML reports CC off.
- ``verify`` {evidence, nonce, offline, rims}: the verifier's checks one by one (module
  docstring of ``cc_attestation`` lists them), ``{"reason", "detail", "checked", "gpus"}``.
- ``sample``: the evidence the verifier ships for machines without a GPU (its ``test_no_gpu``
  mode), the nonce inside it, and the two RIMs that mode pairs with it.
- ``version``: the verifier's version.

Why the checks are called one by one instead of ``cc_admin.attest``: ``attest`` asks NVIDIA's
OCSP responder unconditionally (its only switch is ``ocsp_nonce_disabled``) and fetches RIMs
from NVIDIA's RIM service unless file paths are given, so with no network it cannot pass; the
same functions are called here in ``attest``'s order, except that OCSP (only when online)
comes after the checks that need no network.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from typing import Any

ARCH_VALUES = {"HOPPER": 9, "BLACKWELL": 10}
"""NVML architecture numbers of the GPUs NVIDIA's verifier attests (``GPU_ARCHITECTURE_MAP``)."""


def main() -> None:
    # The verifier logs to stdout and writes verifier.log into the working directory when it
    # is imported: keep stdout for the answer and the log out of the caller's directory.
    answer_stream = sys.stdout
    sys.stdout = sys.stderr
    os.chdir(tempfile.mkdtemp(prefix="flop-cc-"))
    request = json.load(sys.stdin)
    operations = {"collect": _collect, "verify": _verify, "sample": _sample, "version": _version}
    answer = operations[request["op"]](request)
    json.dump(answer, answer_stream)
    answer_stream.flush()


def _version(request: dict[str, Any]) -> dict[str, Any]:
    from importlib.metadata import version

    return {"version": version("nv-local-gpu-verifier")}


def _collect(request: dict[str, Any]) -> dict[str, Any]:
    from verifier import cc_admin
    from verifier.nvml import NvmlHandler

    NvmlHandler.init_nvml()
    if not NvmlHandler.is_cc_enabled():
        return {"evidence": None, "detail": "NVML reports confidential computing off"}
    evidence = cc_admin.collect_gpu_evidence_remote(request["nonce"], ppcie_mode=True)
    return {"evidence": evidence}


def _sample(request: dict[str, Any]) -> dict[str, Any]:
    from verifier.attestation import AttestationReport
    from verifier.config import HopperSettings
    from verifier.utils import convert_string_to_blob

    with open(HopperSettings.ATTESTATION_REPORT_PATH, encoding="ascii") as f:
        report = convert_string_to_blob(f.read())
    with open(HopperSettings.GPU_ATTESTATION_CERTIFICATES_PATH, "rb") as f:
        chain = f.read()
    settings = HopperSettings()
    parsed = AttestationReport(report, settings)
    driver_id, vbios_id = _rim_ids(parsed, settings)
    rims = {}
    for rim_id, path in (
        (driver_id, HopperSettings.TEST_NO_GPU_DRIVER_RIM_PATH),
        (vbios_id, HopperSettings.TEST_NO_GPU_VBIOS_RIM_PATH),
    ):
        with open(path, encoding="utf-8") as f:
            rims[rim_id] = f.read()
    gpu = {
        "arch": "HOPPER",
        "certificate": base64.b64encode(chain).decode("ascii"),
        "evidence": base64.b64encode(report).decode("ascii"),
    }
    nonce = parsed.get_request_message().get_nonce().hex()
    return {"evidence": [gpu], "nonce": nonce, "rims": rims}


def _verify(request: dict[str, Any]) -> dict[str, Any]:
    checked: list[str] = []
    gpus: list[dict[str, str]] = []
    nonce = bytes.fromhex(request["nonce"])
    for gpu in request["evidence"]:
        reason, detail, identity = _verify_gpu(
            gpu, nonce, offline=request["offline"], rims=request["rims"], checked=checked
        )
        if reason != "ok":
            return {"reason": reason, "detail": detail, "checked": checked, "gpus": gpus}
        gpus.append(identity)
    return {"reason": "ok", "detail": "", "checked": checked, "gpus": gpus}


def _verify_gpu(
    gpu: dict[str, str],
    nonce: bytes,
    *,
    offline: bool,
    rims: dict[str, str] | None,
    checked: list[str],
) -> tuple[str, str, dict[str, str]]:
    """One GPU through the checks of ``cc_admin.attest`` (module docstring); the first that
    fails decides."""
    from verifier.attestation import AttestationReport
    from verifier.config import GPU_ARCHITECTURE_MAP
    from verifier.nvml import GpuCertificateChains
    from verifier.utils import format_vbios_version

    arch = ARCH_VALUES.get(gpu["arch"])
    if arch is None:
        return "cc_arch_unsupported", f"architecture {gpu['arch']!r}", {}
    # A fresh settings object per GPU: the verifier marks each check's outcome on it.
    settings = type(GPU_ARCHITECTURE_MAP[arch])()
    try:
        pem = base64.b64decode(gpu["certificate"], validate=True)
        report_bytes = base64.b64decode(gpu["evidence"], validate=True)
        # The node's root is dropped for the verifier's pinned NVIDIA device root, as
        # GpuCertificateChains does for a chain read from NVML.
        chain = GpuCertificateChains.extract_cert_chain(pem)[:-1]
        chain.append(_load_pem(settings.DEVICE_ROOT_CERT))
        report = AttestationReport(report_bytes, settings)
        opaque = report.get_response_message().get_opaque_data()
        driver_version = opaque.get_data("OPAQUE_FIELD_ID_DRIVER_VERSION").decode().rstrip("\0")
        vbios_version = format_vbios_version(opaque.get_data("OPAQUE_FIELD_ID_VBIOS_VERSION"))
    except Exception as exc:
        return "cc_evidence_malformed", _describe(exc), {}
    identity = {
        "arch": gpu["arch"],
        "hwmodel": _common_name(chain[1]) if len(chain) > 1 else "",
        "ueid": str(chain[0].get_serial_number()),
        "driver_version": driver_version,
        "vbios_version": vbios_version.lower(),
    }
    for step in (_check_device_chain, _check_report):
        reason, detail = step(chain, report, nonce, identity, settings, checked)
        if reason != "ok":
            return reason, detail, identity
    if not offline:
        reason, detail = _check_revocation(chain, settings, "GPU_ATTESTATION", checked)
        if reason != "ok":
            return reason, detail, identity
    if offline and rims is None:
        return "ok", "", identity
    reason, detail = _check_measurements(report, identity, settings, offline, rims or {}, checked)
    return reason, detail, identity


def _check_device_chain(
    chain: list[Any],
    report: Any,
    nonce: bytes,
    identity: dict[str, str],
    settings: Any,
    checked: list[str],
) -> tuple[str, str]:
    from verifier.cc_admin_utils import CcAdminUtils

    fwid = report.get_response_message().get_opaque_data().get_data("OPAQUE_FIELD_ID_FWID")
    try:
        outcome = CcAdminUtils.verify_gpu_certificate_chain(chain, settings, fwid.hex())
    except Exception as exc:
        return "cc_cert_chain_invalid", _describe(exc)
    # The verifier answers False (not a tuple) when the FWID differs from the certificate's.
    if outcome is False:
        return "cc_cert_chain_invalid", "the report's FWID is not the device certificate's"
    valid, expired, _ = outcome
    if not valid:
        return "cc_cert_chain_invalid", "expired" if expired else "not signed by NVIDIA's root"
    checked.append("cert_chain")
    return "ok", ""


def _check_report(
    chain: list[Any],
    report: Any,
    nonce: bytes,
    identity: dict[str, str],
    settings: Any,
    checked: list[str],
) -> tuple[str, str]:
    from verifier.cc_admin_utils import CcAdminUtils
    from verifier.exceptions import InvalidNonceError, NonceMismatchError

    # The versions are the report's own (signed) fields: a validator has no NVML of the node.
    try:
        CcAdminUtils.verify_attestation_report(
            attestation_report_obj=report,
            gpu_leaf_certificate=chain[0],
            nonce=nonce,
            driver_version=identity["driver_version"],
            vbios_version=identity["vbios_version"],
            settings=settings,
        )
    except (NonceMismatchError, InvalidNonceError) as exc:
        return "cc_nonce_mismatch", _describe(exc)
    except Exception as exc:
        return "cc_report_signature_invalid", _describe(exc)
    checked.extend(("nonce", "signature"))
    return "ok", ""


def _check_revocation(
    chain: list[Any], settings: Any, mode: str, checked: list[str]
) -> tuple[str, str]:
    """OCSP for every certificate of a chain but its root (NVIDIA's responder: network)."""
    from verifier.cc_admin_utils import CcAdminUtils
    from verifier.config import BaseSettings

    verification_mode = BaseSettings.Certificate_Chain_Verification_Mode[mode]
    try:
        # The verifier converts the list's items in place: hand it a copy.
        valid, _, status, why = CcAdminUtils.ocsp_certificate_chain_validation(
            list(chain), settings, verification_mode
        )
    except Exception as exc:
        return "cc_ocsp_unavailable", _describe(exc)
    if status in ("revoked", "unknown") and not valid:
        return "cc_cert_revoked", f"{mode}: {status} {why or ''}".strip()
    if not valid:
        return "cc_ocsp_unavailable", f"{mode}: the OCSP answer did not verify"
    if f"ocsp:{mode}" not in checked:
        checked.append(f"ocsp:{mode}")
    return "ok", ""


def _check_measurements(
    report: Any,
    identity: dict[str, str],
    settings: Any,
    offline: bool,
    rims: dict[str, str],
    checked: list[str],
) -> tuple[str, str]:
    """Driver and VBIOS RIMs (reference measurements signed by NVIDIA), then the comparison."""
    from verifier.verifier import Verifier

    driver_id, vbios_id = _rim_ids(report, settings)
    loaded = []
    for name, rim_id, version in (
        ("driver", driver_id, identity["driver_version"]),
        ("vbios", vbios_id, identity["vbios_version"]),
    ):
        reason, detail, rim = _load_rim(name, rim_id, version, settings, offline, rims)
        if reason != "ok":
            return reason, detail
        loaded.append(rim)
    if "rims" not in checked:
        checked.append("rims")
    try:
        matching = Verifier(report, loaded[0], loaded[1], settings=settings).verify(settings)
    except Exception as exc:
        return "cc_rim_invalid", _describe(exc)
    if not matching:
        return "cc_measurements_mismatch", "runtime measurements differ from the RIMs'"
    if "measurements" not in checked:
        checked.append("measurements")
    return "ok", ""


def _load_rim(
    name: str, rim_id: str, version: str, settings: Any, offline: bool, rims: dict[str, str]
) -> tuple[str, str, Any]:
    """A RIM from the caller's cache, else (online) from NVIDIA's RIM service; verified like
    ``RIM.verify`` (schema, certificate chain to the pinned RIM root, OCSP on that chain only
    when online, signature, version)."""
    from verifier.cc_admin_utils import CcAdminUtils
    from verifier.config import BaseSettings
    from verifier.rim import RIM
    from verifier.utils import function_wrapper_with_timeout

    content = rims.get(rim_id)
    if content is None and offline:
        return "cc_rim_unavailable", f"{rim_id} is not in the RIM cache", None
    if content is None:
        try:
            content = function_wrapper_with_timeout(
                [CcAdminUtils.fetch_rim_file, rim_id, "fetch_rim_file"],
                BaseSettings.MAX_NETWORK_TIME_DELAY,
            )
        except Exception as exc:
            return "cc_rim_unavailable", f"{rim_id}: {_describe(exc)}", None
    try:
        rim = RIM(rim_name=name, settings=settings, content=content)
        if not rim.validate_schema():
            return "cc_rim_invalid", f"{rim_id}: schema", None
        rim_chain = rim.extract_certificates()
        rim_chain.append(_load_pem(settings.RIM_ROOT_CERT))
        mode = "DRIVER_RIM_CERT" if name == "driver" else "VBIOS_RIM_CERT"
        valid, expired, _ = CcAdminUtils.verify_certificate_chain(
            rim_chain, settings, BaseSettings.Certificate_Chain_Verification_Mode[mode]
        )
        if not valid:
            return (
                "cc_rim_invalid",
                f"{rim_id}: certificate chain {'expired' if expired else 'invalid'}",
                None,
            )
        if not offline:
            reason, detail = _check_revocation(rim_chain, settings, mode, [])
            if reason != "ok":
                return reason, f"{rim_id}: {detail}", None
        rim.verify_signature(settings)
    except Exception as exc:
        return "cc_rim_invalid", f"{rim_id}: {_describe(exc)}", None
    # Only a RIM known to be NVIDIA's is read for its version: a cache can be stale.
    if rim.colloquialVersion.lower() != version.lower():
        return "cc_rim_invalid", f"{rim_id}: RIM of {rim.colloquialVersion}, not {version}", None
    return "ok", "", rim


def _rim_ids(report: Any, settings: Any) -> tuple[str, str]:
    """NVIDIA's RIM-service ids of the driver and VBIOS a report names (as ``attest`` does)."""
    from verifier.cc_admin_utils import CcAdminUtils
    from verifier.utils import format_vbios_version

    opaque = report.get_response_message().get_opaque_data()
    driver_version = opaque.get_data("OPAQUE_FIELD_ID_DRIVER_VERSION").decode().rstrip("\0")
    chip = (
        "GH100"
        if settings.GPU_ARCH_NAME == "HOPPER"
        else opaque.get_data("OPAQUE_FIELD_ID_CHIP_INFO")
    )
    driver_id = CcAdminUtils.get_driver_rim_file_id(driver_version, settings, chip)

    def text(field: str) -> str:
        return opaque.get_data(field).decode("ascii").strip().strip("\x00").upper()

    vbios = format_vbios_version(opaque.get_data("OPAQUE_FIELD_ID_VBIOS_VERSION"))
    vbios_id = CcAdminUtils.get_vbios_rim_file_id(
        text("OPAQUE_FIELD_ID_PROJECT"),
        text("OPAQUE_FIELD_ID_PROJECT_SKU"),
        text("OPAQUE_FIELD_ID_CHIP_SKU"),
        vbios.replace(".", "").upper(),
    )
    return driver_id, vbios_id


def _load_pem(path: str) -> Any:
    from OpenSSL import crypto

    with open(path, encoding="ascii") as f:
        return crypto.load_certificate(crypto.FILETYPE_PEM, f.read())


def _common_name(certificate: Any) -> str:
    from cryptography.x509.oid import NameOID

    names = certificate.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()}"[:300]


if __name__ == "__main__":
    main()

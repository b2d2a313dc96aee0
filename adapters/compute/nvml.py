"""The NVML inventory probe: what GPUs a machine has, read once through nvidia-ml-py.

Without an NVIDIA driver (``nvmlInit`` fails with "library not found" or "driver not
loaded") the probe reports the CPU device class instead of failing. Optional fields that a
driver or GPU does not support (``NotSupported``, ``FunctionNotFound``) are left empty, each
read wrapped on its own so that one missing field never hides the others.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec

DEVICES_MAX = 16
"""Devices reported at most (the ledger's ``GPUS_PER_NODE_MAX``)."""

TEXT_CHARS_MAX = 128
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_NO_DRIVER_CODES = frozenset({NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_DRIVER_NOT_LOADED})
MIB = 1024 * 1024

DeviceClass = Literal["cuda", "cpu"]
Text = Annotated[str, msgspec.Meta(max_length=TEXT_CHARS_MAX)]
T = TypeVar("T")


class GpuDevice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One GPU as NVML reports it; empty strings / None where the driver does not say."""

    index: Annotated[int, msgspec.Meta(ge=0, lt=DEVICES_MAX)]
    name: Text
    uuid: Text = ""
    memory_mib: Annotated[int, msgspec.Meta(ge=0)] = 0
    compute_capability: Text = ""
    pci_bus_id: Text = ""
    cc_attestation_available: bool = False


class ConfidentialComputing(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The system's confidential-computing state (``nvmlSystemGetConfComputeState``)."""

    environment: int
    cc_feature: int
    dev_tools_mode: int


class Inventory(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The machine: device class, driver, GPUs (empty on CPU), CC state, host description."""

    device_class: DeviceClass
    driver_version: Text = ""
    cuda_driver_version: Text = ""
    gpus: Annotated[list[GpuDevice], msgspec.Meta(max_length=DEVICES_MAX)] = []
    confidential_computing: ConfidentialComputing | None = None
    host_cpu: Text = ""
    host_cpu_count: int = 0
    no_gpu_reason: Text = ""


def probe_inventory(nvml: Any | None = None) -> Inventory:
    """Read the inventory through NVML; the CPU class when no NVIDIA driver is present.

    ``nvml`` replaces the ``pynvml`` module (tests pass a fake).
    """
    if nvml is None:
        try:
            import pynvml as nvml_module
        except ImportError:
            return _cpu_inventory("nvidia-ml-py is not installed")
        nvml = nvml_module
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        code = getattr(exc, "value", None)
        reason = "no NVIDIA driver" if code in NVML_NO_DRIVER_CODES else f"NVML error {code}"
        return _cpu_inventory(f"{reason}: {exc}")
    try:
        return _read_gpus(nvml)
    finally:
        _optional(nvml, nvml.nvmlShutdown)


def compute_gpu_specs(inventory: Inventory) -> list[dict[str, Any]]:
    """The ``gpus`` body of ``node.register``: name and memory of each device."""
    return [{"name": g.name, "memory_mib": g.memory_mib} for g in inventory.gpus]


def compute_gpu_class(inventory: Inventory) -> str:
    """The ledger's GPU class for this machine, from the largest device's memory."""
    if not inventory.gpus:
        return "cpu"
    memory = max(g.memory_mib for g in inventory.gpus)
    if memory >= 40 * 1024:
        return "datacenter"
    if memory >= 20 * 1024:
        return "workstation"
    return "consumer"


def _read_gpus(nvml: Any) -> Inventory:
    count = min(int(nvml.nvmlDeviceGetCount()), DEVICES_MAX)
    gpus = [_read_device(nvml, index) for index in range(count)]
    state = _optional(nvml, nvml.nvmlSystemGetConfComputeState)
    cc = None
    if state is not None:
        cc = ConfidentialComputing(
            environment=int(state.environment),
            cc_feature=int(state.ccFeature),
            dev_tools_mode=int(state.devToolsMode),
        )
    cuda_version = _optional(nvml, nvml.nvmlSystemGetCudaDriverVersion)
    return Inventory(
        device_class="cuda" if gpus else "cpu",
        driver_version=_text(_optional(nvml, nvml.nvmlSystemGetDriverVersion)),
        cuda_driver_version=(
            f"{cuda_version // 1000}.{cuda_version % 1000 // 10}" if cuda_version else ""
        ),
        gpus=gpus,
        confidential_computing=cc,
        host_cpu=_text(platform.processor() or platform.machine()),
        host_cpu_count=os.cpu_count() or 0,
        no_gpu_reason="" if gpus else "NVML reports no devices",
    )


def _read_device(nvml: Any, index: int) -> GpuDevice:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = _optional(nvml, lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    capability = _optional(nvml, lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
    pci = _optional(nvml, lambda: nvml.nvmlDeviceGetPciInfo(handle))
    certificate = _optional(nvml, lambda: nvml.nvmlDeviceGetConfComputeGpuCertificate(handle))
    return GpuDevice(
        index=index,
        name=_text(_optional(nvml, lambda: nvml.nvmlDeviceGetName(handle))) or f"gpu{index}",
        uuid=_text(_optional(nvml, lambda: nvml.nvmlDeviceGetUUID(handle))),
        memory_mib=int(memory.total) // MIB if memory is not None else 0,
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else "",
        pci_bus_id=_text(getattr(pci, "busId", "")) if pci is not None else "",
        cc_attestation_available=certificate is not None,
    )


def _optional(nvml: Any, read: Callable[[], T]) -> T | None:
    """One optional NVML read: None when the driver or device does not support it."""
    try:
        return read()
    except nvml.NVMLError:
        return None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:TEXT_CHARS_MAX]


def _cpu_inventory(reason: str) -> Inventory:
    return Inventory(
        device_class="cpu",
        host_cpu=_text(platform.processor() or platform.machine()),
        host_cpu_count=os.cpu_count() or 0,
        no_gpu_reason=_text(reason),
    )

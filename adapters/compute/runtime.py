"""The torch runtime: which device runs a workload, determinism settings, library versions.

Every result records ``ExecutionEnvironment`` (device, dtype, library versions), so that a
validator can tell a CUDA result from a CPU one and judge tolerances and timings.
"""

from __future__ import annotations

import os
import platform
from typing import Annotated, Literal

import msgspec
import numpy as np
import torch

CUBLAS_WORKSPACE_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"
"""cuBLAS needs a fixed workspace for deterministic results (CUDA docs, "Reproducibility")."""

Text = Annotated[str, msgspec.Meta(max_length=128)]
DeviceKind = Literal["cuda", "cpu"]


class ExecutionEnvironment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where and with what a result was computed."""

    device: DeviceKind
    device_name: Text
    dtype: Text
    torch_version: Text
    cuda_version: Text = ""
    numpy_version: Text
    python_version: Text
    deterministic: bool


def is_cuda_available() -> bool:
    """Whether torch sees a CUDA device (False on CPU-only builds and driverless machines)."""
    return bool(torch.cuda.is_available())


def select_device(prefer_cuda: bool = True, index: int = 0) -> torch.device:
    """``cuda:<index>`` when CUDA is present and wanted, else the CPU."""
    if prefer_cuda and is_cuda_available():
        return torch.device("cuda", index % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def count_devices() -> int:
    """How many devices can run jobs at once: CUDA devices, or one CPU."""
    return int(torch.cuda.device_count()) if is_cuda_available() else 1


def enable_determinism() -> None:
    """Deterministic algorithms on, TF32 off (both change low-order bits between runs/GPUs),
    half-precision matmuls reducing in float32 (the accumulation
    ``proofs.matmul_data``'s error bound assumes)."""
    os.environ.setdefault(CUBLAS_WORKSPACE_ENV, CUBLAS_DETERMINISTIC_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False


def describe_environment(device: torch.device, dtype: torch.dtype) -> ExecutionEnvironment:
    """The environment record of a result computed on ``device`` in ``dtype``."""
    is_cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if is_cuda else (platform.processor() or "cpu")
    return ExecutionEnvironment(
        device="cuda" if is_cuda else "cpu",
        device_name=name[:128] or "cpu",
        dtype=str(dtype).removeprefix("torch."),
        torch_version=str(torch.__version__),
        cuda_version=str(torch.version.cuda or "") if is_cuda else "",
        numpy_version=np.__version__,
        python_version=platform.python_version(),
        deterministic=torch.are_deterministic_algorithms_enabled(),
    )


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (timings on CUDA are meaningless without it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)

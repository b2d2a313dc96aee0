"""A node's GPU inventory under rules v3: each GPU identified as a model of the device table.

At registration and at an inventory update, each GPU's model is the table key the node gives
or, without one, the model its NVML name identifies (``domain.devices``); a GPU of no known
model is refused (``gpu_model_unknown``: the protocol could not size its probes), and so is a
GPU class above the best class of the node's models (``gpu_class_above_models``: a CPU node
registering as datacenter). A node without GPUs is the table's ``cpu`` model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.devices import CPU_MODEL_KEY, DeviceTable
from domain.errors import Rejection, RejectionCode
from domain.node import GpuClaim
from domain.policy import gpu_class_rank


class GpuSpecLike(Protocol):
    """What a command says of one GPU (``domain.commands.GpuSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def memory_mib(self) -> int: ...

    @property
    def model(self) -> str | None: ...

    @property
    def uuid(self) -> str | None: ...


def resolve_gpus(
    specs: Sequence[GpuSpecLike], *, gpu_class: str, table: DeviceTable
) -> tuple[GpuClaim, ...]:
    """The GPUs as the node's record keeps them (each with its model), or the first rule
    the list breaks (module docstring)."""
    gpus = tuple(
        GpuClaim(spec.name, spec.memory_mib, _resolve_model(spec, table), spec.uuid or "")
        for spec in specs
    )
    best = compute_best_class(gpus, table)
    if gpu_class_rank(gpu_class) > gpu_class_rank(best):
        raise Rejection(
            f"GPU class {gpu_class} is above the best class of the node's models ({best})",
            code=RejectionCode.GPU_CLASS_ABOVE_MODELS,
        )
    return gpus


def compute_models(gpus: Sequence[GpuClaim]) -> tuple[str, ...]:
    """The models the protocol sizes probes for (empty for a CPU node: the ``cpu`` model)."""
    return tuple(gpu.model for gpu in gpus)


def compute_best_class(gpus: Sequence[GpuClaim], table: DeviceTable) -> str:
    """The highest GPU class among the models (the ``cpu`` model's for a node without GPUs)."""
    keys = compute_models(gpus) or (CPU_MODEL_KEY,)
    return max((table.get(key).gpu_class for key in keys), key=gpu_class_rank)


def _resolve_model(spec: GpuSpecLike, table: DeviceTable) -> str:
    """The GPU's table key; the ``cpu`` model is no GPU's."""
    known = sorted(frozenset(table.keys()) - {CPU_MODEL_KEY})
    if spec.model is not None:
        if spec.model in known:
            return spec.model
    else:
        found = table.find_by_name(spec.name)
        if found is not None and found.key in known:
            return found.key
    named = spec.model if spec.model is not None else spec.name
    raise Rejection(
        f"GPU {named!r} is no model of the device table; known: {known}",
        code=RejectionCode.GPU_MODEL_UNKNOWN,
    )

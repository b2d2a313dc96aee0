"""A node's GPUs under rules v3 (``domain.inventory``): each a model of the device table,
the registered class within the best class of the node's models."""

from __future__ import annotations

import pytest

from domain.commands import GpuSpec
from domain.devices import load_device_table
from domain.errors import Rejection
from domain.inventory import compute_best_class, resolve_gpus

TABLE = load_device_table()
H100 = GpuSpec(name="NVIDIA H100 80GB HBM3", memory_mib=81_559, uuid="GPU-1")
T4 = GpuSpec(name="Tesla T4", memory_mib=15_360)


def test_a_gpu_is_the_model_its_nvml_name_identifies_and_keeps_its_uuid() -> None:
    (gpu,) = resolve_gpus([H100], gpu_class="datacenter", table=TABLE)
    assert (gpu.model, gpu.uuid) == ("h100-sxm", "GPU-1")


def test_a_model_key_given_wins_over_the_name() -> None:
    spec = GpuSpec(name="some card", memory_mib=24_576, model="rtx-4090")
    (gpu,) = resolve_gpus([spec], gpu_class="workstation", table=TABLE)
    assert gpu.model == "rtx-4090"


@pytest.mark.parametrize(
    "spec",
    [
        GpuSpec(name="NVIDIA GeForce GTX 1080", memory_mib=8_192),
        GpuSpec(name="H100", memory_mib=80_000, model="h100-pcie-nonexistent"),
        GpuSpec(name="whatever", memory_mib=1, model="cpu"),
    ],
)
def test_a_gpu_of_no_table_model_is_refused_with_the_known_keys(spec: GpuSpec) -> None:
    with pytest.raises(Rejection) as info:
        resolve_gpus([spec], gpu_class="cpu", table=TABLE)
    assert info.value.code == "gpu_model_unknown"
    assert "h100-sxm" in info.value.message.split("known:")[1]
    assert "'cpu'" not in info.value.message.split("known:")[1]


def test_the_class_may_equal_the_best_model_class_but_not_exceed_it() -> None:
    assert resolve_gpus([T4, H100], gpu_class="datacenter", table=TABLE)
    assert resolve_gpus([T4], gpu_class="consumer", table=TABLE)
    with pytest.raises(Rejection) as info:
        resolve_gpus([T4], gpu_class="workstation", table=TABLE)
    assert info.value.code == "gpu_class_above_models"


def test_a_node_without_gpus_is_the_cpu_model() -> None:
    assert compute_best_class((), TABLE) == "cpu"
    assert resolve_gpus([], gpu_class="cpu", table=TABLE) == ()
    with pytest.raises(Rejection) as info:
        resolve_gpus([], gpu_class="consumer", table=TABLE)
    assert info.value.code == "gpu_class_above_models"

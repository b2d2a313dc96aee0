"""The device table and the probe sizing of issue 15: every model loads with its source, the
NVML name lookup is unambiguous, each sizing rule at its bound and one past, and the claim the
deadlines rest on: a device half as fast as its model misses unless it beats its own peak."""

from __future__ import annotations

import math
from fractions import Fraction

import msgspec
import pytest

from domain.devices import (
    CPU_MODEL_KEY,
    DeviceModel,
    ProbeSpec,
    compute_probe_spec,
    compute_probe_specs,
    decode_device_table,
    load_device_table,
)
from domain.policy import GPU_CLASSES, LedgerPolicy

POLICY = LedgerPolicy()
GPU_KEYS = (
    "h100-sxm", "h200", "a100-40gb", "a100-80gb", "l40s", "l4", "rtx-4090", "rtx-3090", "t4",
)  # fmt: skip
NVML_NAMES = {
    "NVIDIA H100 80GB HBM3": "h100-sxm",
    "NVIDIA H200": "h200",
    "NVIDIA A100-SXM4-40GB": "a100-40gb",
    "NVIDIA A100-PCIE-40GB": "a100-40gb",
    "NVIDIA A100-SXM4-80GB": "a100-80gb",
    "NVIDIA A100 80GB PCIe": "a100-80gb",
    "NVIDIA L40S": "l40s",
    "NVIDIA L4": "l4",
    "NVIDIA GeForce RTX 4090": "rtx-4090",
    "NVIDIA GeForce RTX 3090": "rtx-3090",
    "Tesla T4": "t4",
}
# Small probes whose figures a reader checks by hand: a 64-wide product, a 1 s target at 100%.
SMALL = LedgerPolicy(
    probe_side=64,
    probe_target_ns=1_000_000_000,
    probe_efficiency_min_bps=10_000,
    probe_hash_bytes_per_s=16_384,
    probe_memory_fraction_bps=10_000,
    probe_regen_factor=4,
    probe_openings=8,
)


def _model(*, peak: float, memory_bytes: int = 0, bandwidth: float = 0.0) -> DeviceModel:
    return DeviceModel(
        key="test",
        title="test device",
        names=(),
        gpu_class="consumer",
        int8_ops_per_s=peak,
        memory_bytes=memory_bytes,
        memory_bytes_per_s=bandwidth,
        source="test",
    )


def test_every_model_loads_with_its_datasheet() -> None:
    table = load_device_table()
    assert set(table.keys()) == {*GPU_KEYS, CPU_MODEL_KEY}
    for model in table:
        assert model.gpu_class in GPU_CLASSES and model.int8_ops_per_s > 0
        assert model.title
    for key in GPU_KEYS:
        model = table.get(key)
        assert model.source.startswith("https://") and model.names
        assert model.memory_bytes > 0 and model.memory_bytes_per_s > 0
    cpu = table.get(CPU_MODEL_KEY)
    assert cpu.gpu_class == "cpu" and cpu.names == () and cpu.memory_bytes == 0


def test_dense_int8_figures_are_the_datasheets() -> None:
    tops = {key: load_device_table().get(key).int8_ops_per_s / 1e12 for key in GPU_KEYS}
    assert tops == {
        "h100-sxm": 1979, "h200": 1979, "a100-40gb": 624, "a100-80gb": 624, "l40s": 733,
        "l4": 242.5, "rtx-4090": 660.6, "rtx-3090": 284, "t4": 130,
    }  # fmt: skip


def test_unknown_key_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        load_device_table().get("h100-pcie")


@pytest.mark.parametrize(("nvml_name", "key"), sorted(NVML_NAMES.items()))
def test_nvml_names_identify_their_model(nvml_name: str, key: str) -> None:
    model = load_device_table().find_by_name(nvml_name)
    assert model is not None and model.key == key


def test_lookup_ignores_case_and_spacing() -> None:
    model = load_device_table().find_by_name("  nvidia   a100-SXM4-40GB ")
    assert model is not None and model.key == "a100-40gb"


@pytest.mark.parametrize(
    "nvml_name",
    ["NVIDIA L40", "NVIDIA H100 PCIe", "NVIDIA H200 NVL", "NVIDIA GeForce RTX 4090 D",
     "NVIDIA A100X", "NVIDIA GeForce RTX 40900", "", "cpu"],
)  # fmt: skip
def test_unknown_or_other_cards_are_none(nvml_name: str) -> None:
    assert load_device_table().find_by_name(nvml_name) is None


def test_k_has_a_floor_of_64() -> None:
    spec = compute_probe_spec(_model(peak=1.0), device_index=0, policy=SMALL)
    assert spec.k == 64
    assert compute_probe_specs([], policy=POLICY)[0].k == 64  # the cpu model at the defaults


def test_k_is_rounded_up_to_a_multiple_of_64() -> None:
    # target 1 s at 100%: k = peak / (2·64·64) = peak / 8192.
    at_bound = compute_probe_spec(_model(peak=128 * 8192.0), device_index=0, policy=SMALL)
    past_bound = compute_probe_spec(_model(peak=128 * 8192.0 + 1), device_index=0, policy=SMALL)
    assert (at_bound.k, past_bound.k) == (128, 192)


def test_compute_deadline_is_the_product_at_the_least_efficiency_plus_hashing() -> None:
    spec = compute_probe_spec(_model(peak=128 * 8192.0), device_index=3, policy=SMALL)
    # 2·64·64·128 ops at 1,048,576 ops/s = 1 s; 4·64·64 bytes hashed at 16,384 B/s = 1 s.
    assert (spec.n, spec.m, spec.compute_deadline_ns) == (64, 64, 2_000_000_000)
    half = compute_probe_spec(
        _model(peak=128 * 8192.0),
        device_index=0,
        policy=msgspec.structs.replace(SMALL, probe_efficiency_min_bps=5_000),
    )
    assert half.k == 64 and half.compute_deadline_ns == 2_000_000_000  # 0.5 s of k=64 at 50%
    assert (spec.device_index, spec.openings, spec.entries_per_row) == (3, 8, 4)


@pytest.mark.parametrize("rows", [640, 641, 639, 8, 1])
def test_the_memory_read_asks_for_every_row(rows: int) -> None:
    model = _model(peak=1e9, memory_bytes=4 * 64 * rows, bandwidth=1e6)
    spec = compute_probe_spec(model, device_index=0, policy=SMALL)
    assert (spec.memory_n, spec.memory_m, spec.memory_read_rows) == (rows, 64, rows)
    one_byte_less = compute_probe_spec(
        _model(peak=1e9, memory_bytes=4 * 64 * rows - 1, bandwidth=1e6),
        device_index=0,
        policy=SMALL,
    )
    assert one_byte_less.memory_n == rows - 1


def test_a_working_set_below_one_row_is_no_memory_probe() -> None:
    spec = compute_probe_spec(_model(peak=1e9, memory_bytes=255, bandwidth=1e6), device_index=0,
                              policy=SMALL)  # fmt: skip
    assert (spec.memory_n, spec.memory_m, spec.memory_k, spec.memory_read_rows) == (0, 0, 0, 0)
    assert (spec.fill_deadline_ns, spec.read_deadline_ns) == (0, 0)


def test_memory_deadlines_by_hand() -> None:
    # A row is 256 bytes: read at 256 B/s (1 s) and hashed at 16,384 B/s (1/64 s), r = 65/64 s;
    # all 640 rows: 650 s, plus the RTT bound 0.2 s = 650.2 s allowed. Regenerating the set at
    # 4 times that: 2·640·64·k / 2^20 >= 2600.8 s, k >= 33,290.24 -> 33,344 (a multiple of 64).
    model = _model(peak=2.0**20, memory_bytes=4 * 64 * 640, bandwidth=256.0)
    spec = compute_probe_spec(model, device_index=0, policy=SMALL)
    assert spec.memory_k == 33_344
    assert spec.fill_deadline_ns == math.ceil(2 * 640 * 64 * 33_344 / 2**20 * 1e9)
    assert spec.read_deadline_ns == 650 * 1_000_000_000
    assert spec.read_deadline_ns + SMALL.probe_rtt_max_ns == 650_200_000_000


def test_cpu_has_no_memory_probe() -> None:
    (spec,) = compute_probe_specs([], policy=POLICY)
    assert spec.model == CPU_MODEL_KEY and spec.device_index == 0
    assert (spec.memory_n, spec.memory_k, spec.fill_deadline_ns, spec.read_deadline_ns) == (
        0, 0, 0, 0,
    )  # fmt: skip


def test_specs_follow_device_order_and_refuse_unknown_models() -> None:
    specs = compute_probe_specs(["t4", "h100-sxm"], policy=POLICY)
    assert [(s.device_index, s.model) for s in specs] == [(0, "t4"), (1, "h100-sxm")]
    with pytest.raises(KeyError):
        compute_probe_specs(["t4", "quantum-9000"], policy=POLICY)


@pytest.mark.parametrize("key", GPU_KEYS)
def test_a_device_half_as_fast_misses(key: str) -> None:
    """At the least efficiency (50%) the deadline is the product at 100% of half the peak plus
    the hashing allowance: a device half as fast meets it only by reaching its own datasheet
    peak, and hashing at the allowance; at 99% of its peak it misses."""
    model = load_device_table().get(key)
    spec = compute_probe_spec(model, device_index=0, policy=POLICY)
    ops = 2 * spec.n * spec.m * spec.k
    hashing_s = Fraction(4 * spec.n * spec.m, POLICY.probe_hash_bytes_per_s)
    half_peak = Fraction(model.int8_ops_per_s) / 2
    deadline_s = Fraction(spec.compute_deadline_ns, 1_000_000_000)
    assert ops / half_peak + hashing_s >= deadline_s - Fraction(1, 1_000_000_000)
    assert ops / (half_peak * Fraction(99, 100)) + hashing_s > deadline_s
    assert spec.k >= 64 and spec.k % 64 == 0
    # and regenerating the working set at the claimed peak takes 4x the whole read allowance
    # (the read deadline plus the RTT bound a node can inflate its pongs to)
    allowed_s = Fraction(spec.read_deadline_ns + POLICY.probe_rtt_max_ns, 1_000_000_000)
    ops = 2 * spec.memory_n * spec.memory_m * spec.memory_k
    regen_s = Fraction(ops) / Fraction(model.int8_ops_per_s)
    assert spec.memory_read_rows == spec.memory_n
    assert regen_s >= POLICY.probe_regen_factor * allowed_s


def test_probe_spec_round_trips() -> None:
    spec = compute_probe_specs(["h200"], policy=POLICY)[0]
    assert msgspec.json.decode(msgspec.json.encode(spec), type=ProbeSpec) == spec


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[models.a]\nnames=["x"]\n', "title"),
        ("[models.cpu]\n" + 'title="c"\nnames=[]\ngpu_class="cpu"\nint8_ops_per_s=1.0\n'
         'memory_bytes=0\nmemory_bytes_per_s=0.0\nsource="s"\nbogus=1\n', "bogus"),
    ],
)  # fmt: skip
def test_malformed_tables_are_refused(body: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_device_table(body)


CPU_TOML = (
    '[models.cpu]\ntitle = "c"\nnames = []\ngpu_class = "cpu"\nint8_ops_per_s = 1.0\n'
    'memory_bytes = 0\nmemory_bytes_per_s = 0.0\nsource = "s"\n'
)
GPU_TOML = (
    '[models.gpu]\ntitle = "g"\nnames = ["gpu x"]\ngpu_class = "consumer"\n'
    'int8_ops_per_s = 1.0\nmemory_bytes = 1\nmemory_bytes_per_s = 1.0\nsource = "s"\n'
)


def test_a_minimal_table_loads() -> None:
    table = decode_device_table(CPU_TOML + GPU_TOML)
    assert table.keys() == ("cpu", "gpu")
    found = table.find_by_name("Gpu X")
    assert found is not None and found.key == "gpu"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GPU_TOML, "include 'cpu'"),
        (CPU_TOML + GPU_TOML + GPU_TOML.replace("models.gpu", "models.gpu2"), "unique"),
        (CPU_TOML + GPU_TOML.replace('"gpu x"', '"GPU x"'), "lowercase"),
        (CPU_TOML + GPU_TOML.replace('"consumer"', '"mainframe"'), "gpu_class"),
        (CPU_TOML.replace("memory_bytes = 0", "memory_bytes = 5"), "memory"),
        (CPU_TOML + GPU_TOML.replace("memory_bytes = 1", "memory_bytes = 0"), "memory"),
        (CPU_TOML.replace("names = []", 'names = ["cpu"]'), "never identified"),
        (CPU_TOML + GPU_TOML.replace('source = "s"', 'source = " "'), "source"),
    ],
)
def test_broken_tables_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_device_table(text)

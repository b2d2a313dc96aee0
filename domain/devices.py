"""The device table and the sizing of the validators' probes (issue 15, rules v3).

A node's GPUs are identified by model (``domain/devices.toml``: datasheet figures with their
source); the protocol, not the node, sizes each device's probes from its model, so a node
cannot pick a size its hardware looks good at. A CPU node (no GPUs) is probed as the
``cpu`` model.

Sizing. With peak = ``int8_ops_per_s``, eff = ``probe_efficiency_min_bps``/10000 and
hash = ``probe_hash_bytes_per_s`` (times in seconds, exact rational arithmetic, each deadline
rounded up to a whole nanosecond so validators and the audit agree to the nanosecond):

- compute probe, C = A(n×k)·B(k×m) with int8 operands: n = m = ``probe_side``,
  k = max(64, ceil_to_64(target_s × peak × eff / (2·n·m))) with target_s =
  ``probe_target_ns``/1e9; compute_deadline = 2·n·m·k/(peak·eff) + 4·n·m/hash (the product
  at the least efficiency an honest device reaches, plus hashing its 4-byte entries).
- memory probe (GPUs only; the cpu model has none: all its memory fields are 0): the working
  set W = ``memory_bytes`` × ``probe_memory_fraction_bps``/10000, memory_m = ``probe_side``,
  memory_n = W // (4·memory_m) rows. The read phase asks for every row (memory_read_rows =
  memory_n) under a fresh key: reading and hashing one row takes r = 4·m/(bw·eff) + 4·m/hash,
  so read_deadline = memory_n × r. The validator allows that plus the measured RTT, bounded by
  ``probe_rtt_max_ns``, which a node can inflate (by delaying its pongs) up to the bound; so
  the inner size makes regenerating the working set at the claimed peak take
  ``probe_regen_factor`` times that whole allowance: memory_k = max(64, ceil_to_64(
  regen_factor × (read_deadline + rtt_max) × peak / (2·n·m))). A node that kept less than
  1 − 1/regen_factor of the rows cannot regenerate the rest in time. fill_deadline =
  2·n·m·k/(peak·eff) (nothing else: the fill answers a bare acknowledgement). Reading every
  row rather than a sample is what keeps the RTT allowance small against the work: with a
  sample of 1/64 the fill would have to be 64 times longer for the same bound.
- openings = ``probe_openings``, entries_per_row = ``probe_entries_per_row``.

Deadlines exclude the round-trip time: the prober adds the RTT it measured (bounded by
``probe_rtt_max_ns``).
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from importlib import resources
from typing import Annotated

import msgspec

from domain.policy import BPS, GPU_CLASSES, SECOND_NS, LedgerPolicy

CPU_MODEL_KEY = "cpu"
TABLE_RESOURCE = "devices.toml"
K_MIN = 64
"""The least inner size of a probe, and the multiple every inner size is rounded up to (int8
tensor-core kernels want k in multiples of 16..64)."""
K_STEP = 64
ROW_ENTRY_BYTES = 4
"""Bytes per entry of a committed row (little-endian uint32, ``proofs.probe``)."""

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
_MEMORY_FIELDS = (
    "memory_n",
    "memory_m",
    "memory_k",
    "memory_read_rows",
    "fill_deadline_ns",
    "read_deadline_ns",
)


class DeviceModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One accepted device model with the datasheet figures its probes are sized from."""

    key: str
    title: str
    names: tuple[str, ...]
    gpu_class: str
    int8_ops_per_s: float
    memory_bytes: int
    memory_bytes_per_s: float
    source: str


class ProbeSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the validators ask of one device of a node, fixed by the protocol (module doc)."""

    device_index: NonNegative
    model: str
    n: NonNegative
    m: NonNegative
    k: NonNegative
    compute_deadline_ns: NonNegative
    memory_n: NonNegative
    memory_m: NonNegative
    memory_k: NonNegative
    memory_read_rows: NonNegative
    fill_deadline_ns: NonNegative
    read_deadline_ns: NonNegative
    openings: NonNegative
    entries_per_row: NonNegative


class DeviceTable:
    """The device models by key, with the lookup of an NVML device name."""

    def __init__(self, models: Sequence[DeviceModel]) -> None:
        self._models = {model.key: model for model in models}
        _check_table(models, self._models)

    def get(self, key: str) -> DeviceModel:
        """The model named ``key``; KeyError for an unknown key."""
        return self._models[key]

    def find_by_name(self, nvml_name: str) -> DeviceModel | None:
        """The model an NVML device name identifies, or None when none does.

        A model's name matches when the lowercased name (runs of spaces collapsed) ends with
        it at a word boundary; the longest matching name wins, so "NVIDIA L40S" is an L40S
        and not an L4, and "NVIDIA GeForce RTX 4090 D" (a slower card) is nothing.
        """
        normalized = " ".join(nvml_name.lower().split())
        best: tuple[int, DeviceModel] | None = None
        for model in self._models.values():
            for name in model.names:
                if _is_word_suffix(normalized, name) and (best is None or len(name) > best[0]):
                    best = (len(name), model)
        return None if best is None else best[1]

    def keys(self) -> tuple[str, ...]:
        return tuple(self._models)

    def __iter__(self) -> Iterator[DeviceModel]:
        return iter(self._models.values())


@functools.cache
def load_device_table() -> DeviceTable:
    """The table shipped in ``domain/devices.toml`` (read once: it is part of the code)."""
    text = resources.files("domain").joinpath(TABLE_RESOURCE).read_text(encoding="utf-8")
    return decode_device_table(text)


def decode_device_table(text: str) -> DeviceTable:
    """A table from TOML text (``[models.<key>]`` tables); ValueError when it is malformed."""
    raw = tomllib.loads(text).get("models")
    if not isinstance(raw, Mapping):
        raise ValueError("a device table has a [models.<key>] table per model")
    try:
        models = [msgspec.convert({"key": key, **body}, DeviceModel) for key, body in raw.items()]
    except (msgspec.ValidationError, TypeError) as exc:
        raise ValueError(f"device table: {exc}") from exc
    return DeviceTable(models)


def compute_probe_spec(model: DeviceModel, *, device_index: int, policy: LedgerPolicy) -> ProbeSpec:
    """The probes of one device of ``model`` under ``policy`` (module doc, "Sizing")."""
    peak = Fraction(model.int8_ops_per_s)
    eff = Fraction(policy.probe_efficiency_min_bps, BPS)
    hash_rate = Fraction(policy.probe_hash_bytes_per_s)
    n = m = policy.probe_side
    target_s = Fraction(policy.probe_target_ns, SECOND_NS)
    k = _ceil_k(target_s * peak * eff / (2 * n * m))
    compute_s = 2 * n * m * k / (peak * eff) + ROW_ENTRY_BYTES * n * m / hash_rate
    memory = _compute_memory_probe(model, policy, peak, eff, hash_rate)
    return ProbeSpec(
        device_index=device_index,
        model=model.key,
        n=n,
        m=m,
        k=k,
        compute_deadline_ns=_ceil_ns(compute_s),
        openings=policy.probe_openings,
        entries_per_row=policy.probe_entries_per_row,
        **memory,
    )


def compute_probe_specs(
    models: Sequence[str], *, policy: LedgerPolicy, table: DeviceTable | None = None
) -> tuple[ProbeSpec, ...]:
    """One spec per device, in device order; a node without GPUs gets one ``cpu`` spec.
    KeyError for a model not in the table."""
    table = table if table is not None else load_device_table()
    keys = tuple(models) or (CPU_MODEL_KEY,)
    return tuple(
        compute_probe_spec(table.get(key), device_index=index, policy=policy)
        for index, key in enumerate(keys)
    )


def compute_probe_duration_ns(specs: Sequence[ProbeSpec]) -> int:
    """How long one validator's probe of these devices may take at the deadlines (devices in
    turn; twice the timed deadlines, for the RTTs, the openings and their checks): what one
    probing slot of an attestation round must leave it."""
    timed = sum(s.compute_deadline_ns + s.fill_deadline_ns + s.read_deadline_ns for s in specs)
    return 2 * timed


def _compute_memory_probe(
    model: DeviceModel, policy: LedgerPolicy, peak: Fraction, eff: Fraction, hash_rate: Fraction
) -> dict[str, int]:
    """The memory probe's fields; all 0 where the model has no memory figures (cpu)."""
    none = dict.fromkeys(_MEMORY_FIELDS, 0)
    m = policy.probe_side
    working_set = model.memory_bytes * policy.probe_memory_fraction_bps // BPS
    n = working_set // (ROW_ENTRY_BYTES * m) if m else 0
    if n == 0 or model.memory_bytes_per_s <= 0:
        return none
    row_bytes = ROW_ENTRY_BYTES * m
    row_s = row_bytes / (Fraction(model.memory_bytes_per_s) * eff) + row_bytes / hash_rate
    read_s = n * row_s
    allowance_s = read_s + Fraction(policy.probe_rtt_max_ns, SECOND_NS)
    k = _ceil_k(policy.probe_regen_factor * allowance_s * peak / (2 * n * m))
    return {
        "memory_n": n,
        "memory_m": m,
        "memory_k": k,
        "memory_read_rows": n,
        "fill_deadline_ns": _ceil_ns(2 * n * m * k / (peak * eff)),
        "read_deadline_ns": _ceil_ns(read_s),
    }


def _ceil_k(value: Fraction) -> int:
    """max(K_MIN, value rounded up to a multiple of K_STEP)."""
    return max(K_MIN, K_STEP * math.ceil(value / K_STEP))


def _ceil_ns(seconds: Fraction) -> int:
    return math.ceil(seconds * SECOND_NS)


def _is_word_suffix(name: str, ending: str) -> bool:
    if not ending or not name.endswith(ending):
        return False
    before = len(name) - len(ending)
    return before == 0 or not name[before - 1].isalnum()


def _check_table(models: Sequence[DeviceModel], by_key: Mapping[str, DeviceModel]) -> None:
    """The table's own invariants (a broken table is a bug of this package: ValueError)."""
    if len(by_key) != len(models) or CPU_MODEL_KEY not in by_key:
        raise ValueError(f"device keys must be unique and include {CPU_MODEL_KEY!r}")
    names = [name for model in models for name in model.names]
    if len(set(names)) != len(names) or any(n != n.lower() or not n.strip() for n in names):
        raise ValueError("device names must be unique, lowercase and non-empty")
    for model in models:
        if model.gpu_class not in GPU_CLASSES:
            raise ValueError(f"{model.key}: gpu_class must be one of {GPU_CLASSES}")
        if not model.int8_ops_per_s > 0 or not model.source.strip():
            raise ValueError(f"{model.key}: a positive int8_ops_per_s and a source are required")
        figures = (model.memory_bytes > 0, model.memory_bytes_per_s > 0)
        if figures != ((False, False) if model.key == CPU_MODEL_KEY else (True, True)):
            raise ValueError(f"{model.key}: GPUs (and only GPUs) have memory figures")
    if by_key[CPU_MODEL_KEY].names:
        raise ValueError("the cpu model is never identified by an NVML name")

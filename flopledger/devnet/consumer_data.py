"""The devnet consumer's own data (issue 17, item 6): input files written with numpy, and the
check of each downloaded result against a local computation.

Inputs. A matmul job multiplies two n×n float32 matrices of standard normal entries (``a.npy``,
``b.npy``); an inference job runs an MLP of ``MLP_DIMS`` (``model.safetensors``: the tensors
``layers.{i}.weight`` [out, in] and ``layers.{i}.bias`` [out] of
``adapters.compute.inference_data``, He-scaled so activations stay near 1) on ``x.npy``
[batch, input_dim]. Every file follows from the spec's seed, so a rerun writes the same bytes.

Check. The reference is computed in float64 from the float32 inputs; the result must have the
reference's shape and dtype and every entry must lie within its tolerance:

- matmul: the honest node's rounding bound of ``proofs.matmul_data`` (its docstring, item 1):
  a float32 product accumulated in float32 in any order is within β·(|A||B|)_ij + α of the
  exact one, β = γ_k + u(1 + γ_k), α = η + 2kη; the float64 reference adds γ'_k·(|A||B|)_ij
  (u' = 2^-53) of its own, so each entry is allowed (β + γ'_k)·(|A||B|)_ij + α, with the
  module's relative margin. No honest result fails it, whatever the node's BLAS.
- inference: the validators' own tolerance, ``atol + rtol·|expected|`` per output
  (``proofs.inference_commitment``): float32 MLPs are not bit-exact across devices.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save_file

from proofs.inference_commitment import DEFAULT_ATOL, DEFAULT_RTOL
from proofs.matmul_data import (
    FLOAT32_ETA,
    FLOAT32_U,
    FLOAT64_U,
    TOLERANCE_MARGIN,
    UNDERFLOW,
    UNIT_ROUNDOFF,
)

MATMUL = "matmul"
INFERENCE = "inference"
DTYPE = "float32"
MLP_DIMS = (32, 64, 64, 8)
"""input_dim -> width -> width -> output_dim: depth 3, width 64."""

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DataJobSpec:
    """One job of the consumer on its own data: a matmul of two n×n float32 matrices or an
    inference of ``MLP_DIMS`` on a batch; private (sealed end to end) unless not."""

    region: str
    kind: str
    size: int
    """matmul: n; inference: the batch."""
    private: bool = True
    seed: int = 0

    @property
    def name(self) -> str:
        """A short name, also the folder of the job's files."""
        return f"{'private' if self.private else 'public'}-{self.kind}-{self.size}"

    @property
    def label(self) -> str:
        """What the devnet prints of the job: ``own matmul 256x256 float32 (private)``."""
        privacy = "private" if self.private else "public"
        if self.kind == MATMUL:
            return f"own matmul {self.size}x{self.size} {DTYPE} ({privacy})"
        dims = "-".join(str(d) for d in MLP_DIMS)
        return f"own inference MLP {dims} batch {self.size} ({privacy})"


@dataclass(frozen=True)
class ResultCheck:
    """The comparison of one downloaded result with the local computation."""

    ok: bool
    max_diff: float
    """The largest |result - reference| over every entry (inf when the shapes differ)."""
    worst_share: float
    """The largest |result - reference| / tolerance over every entry (<= 1 when ok)."""
    detail: str = ""


def write_inputs(spec: DataJobSpec, directory: Path) -> dict[str, Path]:
    """Write the job's input files under ``directory``; the input name -> its path."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    if spec.kind == MATMUL:
        paths = {"a": directory / "a.npy", "b": directory / "b.npy"}
        for path in paths.values():
            np.save(path, rng.standard_normal((spec.size, spec.size), dtype=np.float32))
        return paths
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(MLP_DIMS)):
        scale = math.sqrt(2.0 / fan_in)
        weight = rng.standard_normal((fan_out, fan_in), dtype=np.float32) * np.float32(scale)
        tensors[f"layers.{index}.weight"] = weight
        tensors[f"layers.{index}.bias"] = rng.standard_normal(
            fan_out, dtype=np.float32
        ) * np.float32(0.1)
    model, x = directory / "model.safetensors", directory / "x.npy"
    save_file(tensors, str(model))
    np.save(x, rng.standard_normal((spec.size, MLP_DIMS[0]), dtype=np.float32))
    return {"model": model, "x": x}


def compute_expected(spec: DataJobSpec, inputs: dict[str, Path]) -> tuple[Array, Array]:
    """(reference, tolerance per entry) for the job's result (module docstring)."""
    if spec.kind == MATMUL:
        a = np.load(inputs["a"], allow_pickle=False).astype(np.float64)
        b = np.load(inputs["b"], allow_pickle=False).astype(np.float64)
        k = a.shape[1]
        gamma_k = _gamma(k, FLOAT32_U)
        beta = gamma_k + UNIT_ROUNDOFF[DTYPE] * (1 + gamma_k)
        alpha = UNDERFLOW[DTYPE] + 2 * k * FLOAT32_ETA
        magnitude = np.abs(a) @ np.abs(b)
        tolerance = ((beta + _gamma(k, FLOAT64_U)) * magnitude + alpha) * TOLERANCE_MARGIN
        return a @ b, tolerance
    from safetensors.numpy import load_file

    tensors = load_file(str(inputs["model"]))
    h = np.load(inputs["x"], allow_pickle=False).astype(np.float64)
    depth = len(MLP_DIMS) - 1
    for index in range(depth):
        weight = tensors[f"layers.{index}.weight"].astype(np.float64)
        h = h @ weight.T + tensors[f"layers.{index}.bias"].astype(np.float64)
        if index < depth - 1:
            h = np.maximum(h, 0.0)
    return h, DEFAULT_ATOL + DEFAULT_RTOL * np.abs(h)


def check_result(spec: DataJobSpec, inputs: dict[str, Path], result: Path) -> ResultCheck:
    """Compare the result file with the local computation (never raises on a bad file)."""
    expected, tolerance = compute_expected(spec, inputs)
    try:
        got = np.load(result, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return ResultCheck(False, math.inf, math.inf, f"not a .npy file: {exc}")
    if got.dtype != np.float32 or got.shape != expected.shape:
        shape = "x".join(str(d) for d in got.shape)
        return ResultCheck(False, math.inf, math.inf, f"a {got.dtype} {shape} array")
    diff = np.abs(got.astype(np.float64) - expected)
    if not np.all(np.isfinite(diff)):
        return ResultCheck(False, math.inf, math.inf, "entries that are not finite")
    share = diff / tolerance
    beyond = int(np.count_nonzero(share > 1.0))
    detail = f"{beyond} of {diff.size} entries beyond tolerance" if beyond else ""
    return ResultCheck(beyond == 0, float(diff.max()), float(share.max()), detail)


def format_check(spec: DataJobSpec, check: ResultCheck) -> str:
    """The line the devnet prints for one result."""
    figures = f"max |diff| {check.max_diff:.1e}"
    if check.ok:
        return (
            f"consumer: {spec.label} result matches numpy ({figures}, "
            f"worst entry at {check.worst_share:.1%} of its tolerance)"
        )
    why = check.detail if math.isinf(check.max_diff) else f"{figures}, {check.detail}"
    return f"consumer: {spec.label} result does NOT match numpy ({why})"


def _gamma(count: int, unit_roundoff: float) -> float:
    """γ_n of Higham §3.1: n·u / (1 - n·u)."""
    return count * unit_roundoff / (1 - count * unit_roundoff)

"""The devnet consumer's own-data check (issue 17, item 6): what the node's own executors
return on the files the scenario writes matches numpy; a result with one entry off, of the
wrong shape or not a ``.npy`` does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from adapters.compute.inference_data import encode_outputs, run_inference_data
from adapters.compute.matmul_data import run_matmul_data
from flopledger.devnet.consumer_data import (
    INFERENCE,
    MATMUL,
    MLP_DIMS,
    DataJobSpec,
    check_result,
    format_check,
    write_inputs,
)

CPU = torch.device("cpu")
N = 64
BATCH = 16
MATMUL_SPEC = DataJobSpec(region="eu-west", kind=MATMUL, size=N, seed=7)
INFERENCE_SPEC = DataJobSpec(region="eu-west", kind=INFERENCE, size=BATCH, seed=8)


def _node_matmul(inputs: dict[str, Path], out: Path) -> Path:
    run = run_matmul_data(
        inputs["a"].read_bytes(), inputs["b"].read_bytes(), dtype="float32", m=N, k=N, n=N,
        device=CPU,
    )  # fmt: skip
    out.write_bytes(run.result)
    return out


def _node_inference(inputs: dict[str, Path], out: Path) -> Path:
    dims = [(MLP_DIMS[i + 1], MLP_DIMS[i]) for i in range(len(MLP_DIMS) - 1)]
    run = run_inference_data(
        inputs["model"].read_bytes(), inputs["x"].read_bytes(), layer_dims=dims, batch=BATCH,
        input_dim=MLP_DIMS[0], device=CPU,
    )  # fmt: skip
    out.write_bytes(encode_outputs(run.proof))
    return out


def test_the_nodes_matmul_on_the_written_matrices_matches_numpy(tmp_path: Path) -> None:
    inputs = write_inputs(MATMUL_SPEC, tmp_path / "in")
    check = check_result(MATMUL_SPEC, inputs, _node_matmul(inputs, tmp_path / "c.npy"))
    assert check.ok, check
    assert check.worst_share <= 1.0
    line = format_check(MATMUL_SPEC, check)
    assert line.startswith(f"consumer: own matmul {N}x{N} float32 (private) result matches numpy")


def test_numpys_own_float32_product_matches_too(tmp_path: Path) -> None:
    inputs = write_inputs(MATMUL_SPEC, tmp_path / "in")
    a, b = (np.load(inputs[name]) for name in ("a", "b"))
    np.save(tmp_path / "c.npy", a @ b)
    assert check_result(MATMUL_SPEC, inputs, tmp_path / "c.npy").ok


def test_one_changed_entry_of_c_does_not_match(tmp_path: Path) -> None:
    inputs = write_inputs(MATMUL_SPEC, tmp_path / "in")
    out = _node_matmul(inputs, tmp_path / "c.npy")
    c = np.load(out)
    c[3, 5] += np.float32(0.5)  # entries are about 8: far beyond float32 rounding
    np.save(out, c)
    check = check_result(MATMUL_SPEC, inputs, out)
    assert not check.ok
    assert check.detail == f"1 of {N * N} entries beyond tolerance"
    assert "does NOT match numpy" in format_check(MATMUL_SPEC, check)


def test_a_result_of_another_shape_or_not_npy_does_not_match(tmp_path: Path) -> None:
    inputs = write_inputs(MATMUL_SPEC, tmp_path / "in")
    c = np.load(_node_matmul(inputs, tmp_path / "c.npy"))
    np.save(tmp_path / "short.npy", c[:-1])
    np.save(tmp_path / "wide.npy", c.astype(np.float64))
    (tmp_path / "junk.npy").write_bytes(b"not a matrix")
    for name in ("short.npy", "wide.npy", "junk.npy"):
        assert not check_result(MATMUL_SPEC, inputs, tmp_path / name).ok, name


def test_the_nodes_inference_on_the_written_model_matches_numpy(tmp_path: Path) -> None:
    inputs = write_inputs(INFERENCE_SPEC, tmp_path / "in")
    out = _node_inference(inputs, tmp_path / "y.npy")
    check = check_result(INFERENCE_SPEC, inputs, out)
    assert check.ok, check
    assert format_check(INFERENCE_SPEC, check).startswith(
        "consumer: own inference MLP 32-64-64-8 batch 16 (private) result matches numpy"
    )
    y = np.load(out)
    y[0, 0] += np.float32(0.1)
    np.save(out, y)
    assert not check_result(INFERENCE_SPEC, inputs, out).ok


def test_the_inputs_follow_from_the_seed(tmp_path: Path) -> None:
    first = write_inputs(INFERENCE_SPEC, tmp_path / "one")
    second = write_inputs(INFERENCE_SPEC, tmp_path / "two")
    other = write_inputs(DataJobSpec(region="eu-west", kind=INFERENCE, size=BATCH), tmp_path / "3")
    assert all(first[name].read_bytes() == second[name].read_bytes() for name in first)
    assert first["x"].read_bytes() != other["x"].read_bytes()

"""The consumer's side of a job on its own data (issue 17; ``flopledger.jobs_client`` and
``flopledger job submit --input`` / ``job result``) over the real API (Litestar's TestClient,
an in-memory object store)."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from adapters.job_keys import load_job_key
from domain import commands as c
from flopledger import cli
from flopledger.commands import job_data
from flopledger.jobs_client import (
    JobFailed,
    JobInputError,
    JobNotFinal,
    derive_input_params,
    fetch_job_result,
    submit_job_with_inputs,
)
from proofs.sealed_object import is_sealed_object, open_bytes
from tests.object_fakes import MemoryObjectStore
from tests.unit.api.conftest import SECOND_NS, ApiEnv, deposit, seeded

CONSUMER = seeded("jobs-client-consumer")


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def _matrices(tmp_path: Path, m: int = 3, k: int = 4, n: int = 5) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    return {
        "a": _npy(tmp_path / "a.npy", rng.standard_normal((m, k)).astype(np.float32)),
        "b": _npy(tmp_path / "b.npy", rng.standard_normal((k, n)).astype(np.float32)),
    }


def test_matmul_params_come_from_the_npy_headers(tmp_path: Path) -> None:
    params = derive_input_params("matmul", _matrices(tmp_path))
    assert (params["dtype"], params["m"], params["k"], params["n"]) == ("float32", 3, 4, 5)
    assert len(params["a_rows_root"]) == len(params["b_cols_root"]) == 64
    bf = tmp_path / "bf"
    bf.mkdir()
    files = {
        "a": _npy(bf / "a.npy", np.ones((2, 3), dtype=ml_dtypes.bfloat16)),
        "b": _npy(bf / "b.npy", np.ones((3, 2), dtype=ml_dtypes.bfloat16)),
    }
    assert derive_input_params("matmul", files)["dtype"] == "bfloat16"
    # Another A: other row roots (the roots are A's and B's, not the shapes').
    other = _matrices(tmp_path / "..", m=3, k=4, n=5)
    np.save(other["a"], np.zeros((3, 4), dtype=np.float32))
    assert derive_input_params("matmul", other)["a_rows_root"] != params["a_rows_root"]


def test_inputs_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    files = _matrices(tmp_path)
    np.save(files["b"], np.ones((5, 5), dtype=np.float32))  # k 4 vs 5
    with pytest.raises(JobInputError, match="do not fit"):
        derive_input_params("matmul", files)
    with pytest.raises(JobInputError, match="takes the inputs"):
        derive_input_params("matmul", {"a": files["a"]})
    (tmp_path / "bad.npy").write_bytes(b"not npy")
    with pytest.raises(JobInputError, match="not a readable"):
        derive_input_params("matmul", {"a": tmp_path / "bad.npy", "b": files["b"]})


def test_inference_shape_comes_from_the_model_and_x(tmp_path: Path) -> None:
    weights = {
        "layers.0.weight": np.zeros((16, 8), np.float32),
        "layers.0.bias": np.zeros(16, np.float32),
        "layers.1.weight": np.zeros((16, 16), np.float32),
        "layers.1.bias": np.zeros(16, np.float32),
        "layers.2.weight": np.zeros((3, 16), np.float32),
        "layers.2.bias": np.zeros(3, np.float32),
    }
    save_file(weights, str(tmp_path / "m.safetensors"))
    files = {
        "model": tmp_path / "m.safetensors",
        "x": _npy(tmp_path / "x.npy", np.zeros((4, 8), np.float32)),
    }
    params = derive_input_params("inference", files)
    assert params == {"batch": 4, "input_dim": 8, "output_dim": 3, "width": 16, "depth": 3}


def test_submit_seals_uploads_and_keeps_the_key(api_env: ApiEnv, tmp_path: Path) -> None:
    deposit(api_env, CONSUMER, 5_000)
    files = _matrices(tmp_path)
    client = api_env.client(CONSUMER)
    submitted = submit_job_with_inputs(
        client,
        kind="matmul",
        inputs=files,
        params={},
        max_price=500,
        region="eu-west",
        deadline_ns=api_env.clock.now_ns + 3_600 * SECOND_NS,
        data_dir=tmp_path,
    )
    job = client.get_job(submitted.job_id)
    assert job.workload.params["encrypted"] is True
    key = load_job_key(tmp_path, submitted.job_id)
    store = api_env.deps.objects._store
    assert isinstance(store, MemoryObjectStore)
    for name in ("a", "b"):
        digest = job.workload.params[name]
        assert isinstance(digest, str)
        stored, encrypted = store.objects[digest]
        assert encrypted and is_sealed_object(stored)
        assert open_bytes(key, stored) == files[name].read_bytes()
    # Registered on first use, so that the node can wrap the result key back.
    assert client.get_encryption_key(CONSUMER.id).actor == CONSUMER.id
    with pytest.raises(JobNotFinal):
        fetch_job_result(client, submitted.job_id, tmp_path / "c.npy")
    client.send(c.CancelJob(job_id=submitted.job_id))
    with pytest.raises(JobFailed, match="cancelled"):
        fetch_job_result(client, submitted.job_id, tmp_path / "c.npy")
    assert not (tmp_path / "c.npy").exists()


def test_cli_submit_and_result_exit_statuses(
    api_env: ApiEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deposit(api_env, CONSUMER, 5_000)
    files = _matrices(tmp_path)
    client = api_env.client(CONSUMER)
    monkeypatch.setattr(client, "close", lambda: None)  # the TestClient outlives each command
    monkeypatch.setattr(job_data, "make_client", lambda args: client)
    base = ["--key", "unused", "--max-price", "500", "--region", "eu-west"]
    bad = ["job", "submit", "--kind", "matmul", "--input", f"c={files['a']}", *base]
    assert cli.main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    head = client.get_tree_head()
    clash = ["job", "submit", "--kind", "matmul", "--params", '{"seed": "s"}', *base]
    clash += ["--input", f"a={files['a']}", "--input", f"b={files['b']}", "--detach"]
    assert cli.main([*clash, "--data-dir", str(tmp_path)]) == 2  # a data job takes no seed
    err = capsys.readouterr().err
    assert "seed" in err and "Traceback" not in err
    assert client.get_tree_head() == head  # nothing uploaded, recorded or submitted
    argv = ["job", "submit", "--kind", "matmul", *base, "--detach", "--data-dir", str(tmp_path)]
    argv += ["--input", f"a={files['a']}", "--input", f"b={files['b']}"]
    assert cli.main(argv) == 0
    job_id = capsys.readouterr().out.strip()
    assert job_id.startswith("job-") and "\n" not in job_id
    result = ["job", "result", job_id, "--key", "unused", "--out", str(tmp_path / "c.npy")]
    assert cli.main(result) == 3
    assert "not settled" in capsys.readouterr().err
    api_env.client(CONSUMER).send(c.CancelJob(job_id=job_id))
    assert cli.main(result) == 1
    assert "cancelled" in capsys.readouterr().err
    assert cli.main([*result[:-1], str(tmp_path / "missing" / "c.npy")]) == 2

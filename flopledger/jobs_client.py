"""A consumer's jobs on its own data through the API (issue 17): submit with inputs, fetch
the result. (In ``flopledger``, not ``adapters.ledger_api``: it joins the API client with the
compute adapter's result checks, and adapters do not import their siblings.)

``submit_job_with_inputs`` fills the params an input file determines (matmul: ``dtype``,
``m``, ``k``, ``n`` from the ``.npy`` headers and ``a_rows_root``/``b_cols_root`` over A's
rows and B's columns, which make a Freivalds fraud proof checkable; inference: the MLP's
shape from the safetensors header and ``x``'s), seals every input under one fresh data key
(``proofs.sealed_object``) unless ``public``, uploads them (``objects_client``: the client
records each upload on the ledger), submits the job naming them by digest and keeps the data
key under ``<data dir>/keys/<job_id>.key`` (``adapters.job_keys``) for the release to the
node that claims it. The consumer's encryption key is registered first, so the node can wrap
the result key back to it.

``fetch_job_result`` downloads the job's proof object, opens it with the result key the
node released to the consumer (a private job), checks it against the commitment the ledger
settled (``adapters.compute.data_jobs.check_result_commitment``) and writes the result file
(``result_file_from_proof``) atomically. A job that is not settled yet raises
``JobNotFinal``; one that ended otherwise (rejected and out of attempts, refunded, expired,
cancelled) raises ``JobFailed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from adapters.compute.data_jobs import check_result_commitment, result_file_from_proof
from adapters.job_keys import JobKeyError, load_job_key, save_job_key
from adapters.ledger_api.client import ApiClient
from adapters.ledger_api.keys_client import (
    ensure_encryption_key,
    get_released_keys,
    release_job_key,
)
from adapters.ledger_api.objects_client import Progress, get_object_bytes, put_object_file
from adapters.ledger_api.wire import JobView
from domain.commands import SubmitJob
from domain.job_states import CANCELLED, CLAIMED, EXPIRED, REFUNDED, REJECTED, SETTLED
from domain.workloads import ENCRYPTED_FIELD, parse_params
from proofs.identity import Identity
from proofs.matrix_rows import compute_input_roots
from proofs.sealed_object import SealedObjectError, new_data_key, open_bytes, seal_chunks

INPUT_NAMES: dict[str, tuple[str, ...]] = {
    "matmul": ("a", "b"),
    "inference": ("model", "x"),
    "zk-prove": ("witness",),
}
"""The input names each kind takes (``domain.workloads.input_digests``)."""
NPY_DTYPES: dict[str, str] = {
    "<f4": "float32",
    "<f2": "float16",
    "<V2": "bfloat16",
    "|V2": "bfloat16",
    "|i1": "int8",
    "<i1": "int8",
}
"""``.npy`` descr -> the job's dtype name (``proofs.npy.DESCRS``)."""
SAFETENSORS_HEADER_BYTES_MAX = 1024 * 1024
READ_CHUNK_BYTES = 1024 * 1024
FAILED_STATES = frozenset({REJECTED, EXPIRED, REFUNDED, CANCELLED})
RESULT = "result"
INPUTS = "inputs"
PLACEHOLDER_DIGEST = "0" * 64

ProgressFor = Callable[[str], Progress | None]
"""Called with a transfer's label (an input name, ``result``); its progress callback."""


class JobInputError(ValueError):
    """An input file that does not fit its kind (named, with why)."""


class JobNotFinal(Exception):
    """The job has no settled result yet (or its result key is not released yet)."""


class JobFailed(Exception):
    """The job ended without a result: ``state`` says how."""

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"{job_id} is {state}: it has no result")
        self.state = state


class ResultMismatch(Exception):
    """The downloaded result is not what the ledger settled (or does not open)."""


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    params: dict[str, Any]
    data_key: bytes | None


def derive_input_params(kind: str, files: Mapping[str, Path]) -> dict[str, Any]:
    """The params the input files determine (module docstring); JobInputError."""
    expected = INPUT_NAMES[kind]
    if sorted(files) != sorted(expected):
        raise JobInputError(f"{kind} takes the inputs {', '.join(expected)}, got {sorted(files)}")
    if kind == "matmul":
        dtype_a, (m, k) = _read_npy_shape(files["a"], "a", 2)
        dtype_b, (k_b, n) = _read_npy_shape(files["b"], "b", 2)
        if dtype_a != dtype_b or k != k_b:
            raise JobInputError(f"a ({dtype_a} {m}x{k}) and b ({dtype_b} {k_b}x{n}) do not fit")
        a_root, b_root = compute_input_roots(
            files["a"].read_bytes(), files["b"].read_bytes(), dtype=dtype_a, m=m, k=k, n=n
        )
        return {
            "dtype": dtype_a,
            "m": m,
            "k": k,
            "n": n,
            "a_rows_root": a_root,
            "b_cols_root": b_root,
        }
    if kind == "inference":
        layers = _read_mlp_layers(files["model"])
        dtype_x, (batch, input_dim) = _read_npy_shape(files["x"], "x", 2)
        if dtype_x != "float32":
            raise JobInputError(f"x must be float32, not {dtype_x}")
        depth = len(layers)
        # width is the hidden layers' size; a one-layer MLP has none, and names its output's
        width = layers[0][0]
        return {
            "batch": batch,
            "input_dim": input_dim,
            "output_dim": layers[-1][0],
            "width": width,
            "depth": depth,
        }
    try:
        json.loads(files["witness"].read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobInputError(f"witness is not JSON: {exc}") from exc
    return {}


def submit_job_with_inputs(
    client: ApiClient,
    *,
    kind: str,
    inputs: Mapping[str, Path],
    params: Mapping[str, Any],
    max_price: int,
    region: str,
    deadline_ns: int,
    data_dir: Path,
    public: bool = False,
    redundancy: int = 3,
    gpu_class_min: str = "cpu",
    progress_for: ProgressFor | None = None,
) -> SubmittedJob:
    """Seal (unless ``public``), upload, submit and keep the data key (module docstring)."""
    identity = _identity(client)
    full: dict[str, Any] = {**derive_input_params(kind, inputs), **params}
    data_key = None if public else new_data_key()
    if data_key is not None:
        full[ENCRYPTED_FIELD] = True
    # WorkloadParamsError before anything is uploaded or signed (the digests come later)
    parse_params(kind, {**full, **{name: PLACEHOLDER_DIGEST for name in inputs}})
    if data_key is not None:
        ensure_encryption_key(client, identity)
    for name, path in inputs.items():
        progress = progress_for(name) if progress_for is not None else None
        full[name] = _upload(client, identity, path, data_key, progress)
    parse_params(kind, full)
    workload = {"kind": kind, "gpu_class_min": gpu_class_min, "params": full}
    command = msgspec.convert(
        {
            "workload": workload,
            "max_price": max_price,
            "region": region,
            "redundancy": redundancy,
            "deadline_ns": deadline_ns,
        },
        SubmitJob,
    )
    job_id = client.send(command, identity=identity).job_id
    if data_key is not None:
        save_job_key(data_dir, job_id, data_key)
    return SubmittedJob(job_id=job_id, params=full, data_key=data_key)


def fetch_job_result(
    client: ApiClient, job_id: str, out: Path, *, progress: Progress | None = None
) -> Path:
    """Download, open, check and write the job's result to ``out`` (module docstring)."""
    identity = _identity(client)
    job = client.get_job(job_id)
    if job.state in FAILED_STATES:
        raise JobFailed(job_id, job.state)
    if job.state != SETTLED or job.result is None:
        raise JobNotFinal(f"{job_id} is {job.state}: not settled yet")
    proof = get_object_bytes(
        client, identity, job.result.proof_digest, job_id=job_id, progress=progress
    )
    if job.workload.params.get(ENCRYPTED_FIELD) is True:
        proof = _open_result(client, identity, job, proof)
    params = dict(job.workload.params)
    commitment = bytes.fromhex(job.result.commitment)
    if not check_result_commitment(job.workload.kind, params, commitment, proof):
        raise ResultMismatch(f"the result of {job_id} is not the one the ledger settled")
    _write_atomic(out, result_file_from_proof(job.workload.kind, params, proof))
    return out


def release_inputs_key_if_due(client: ApiClient, job_id: str, data_dir: Path) -> str | None:
    """While a private job of ours waits for its result: when a node holds a claim (a new
    one after a rejection or a lapse) without the inputs key, release it (the data key kept
    by ``submit_job_with_inputs``). The node it went to, or None when nothing was due."""
    identity = _identity(client)
    try:
        data_key = load_job_key(data_dir, job_id)
    except JobKeyError:
        return None  # not submitted from here, or public
    job = client.get_job(job_id)
    if job.state != CLAIMED or not job.node_id:
        return None
    if any(
        r.purpose == INPUTS and r.recipient == job.node_id and r.attempt == job.attempt
        for r in job.key_releases
        if r.sender == identity.id
    ):
        return None
    release_job_key(
        client,
        identity,
        job_id=job_id,
        attempt=job.attempt,
        recipient=job.node_id,
        purpose=INPUTS,
        data_key=data_key,
    )
    return job.node_id


def _open_result(client: ApiClient, identity: Identity, job: JobView, sealed: bytes) -> bytes:
    released = [
        r
        for r in get_released_keys(client, identity, job.id, purpose=RESULT, attempt=job.attempt)
        if r.release.sender == job.node_id
    ]
    if not released:
        raise JobNotFinal(f"{job.id}: its node has not released the result key to you yet")
    for key in released:
        if key.data_key is None:
            continue
        with contextlib.suppress(SealedObjectError):
            return open_bytes(key.data_key, sealed)
    raise ResultMismatch(f"the result of {job.id} does not open under the key its node released")


def _upload(
    client: ApiClient,
    identity: Identity,
    path: Path,
    data_key: bytes | None,
    progress: Progress | None,
) -> str:
    """The digest of the stored input: the file itself, or its sealed form (sealed into a
    temporary file beside nothing but the system's temp dir, streamed, then removed)."""
    if data_key is None:
        return put_object_file(client, identity, path, progress=progress).digest
    descriptor, temporary = tempfile.mkstemp(prefix=".flop-sealed-")
    try:
        with os.fdopen(descriptor, "wb") as sink, path.open("rb") as source:
            for record in seal_chunks(data_key, _read_chunks(source)):
                sink.write(record)
        info = put_object_file(client, identity, Path(temporary), encrypted=True, progress=progress)
        return info.digest
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()


def _read_chunks(source: Any) -> Iterator[bytes]:
    while chunk := source.read(READ_CHUNK_BYTES):
        yield chunk


def _read_npy_shape(path: Path, name: str, ndim: int) -> tuple[str, tuple[int, ...]]:
    """(dtype name, shape) from a ``.npy`` header, nothing unpickled."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    except (OSError, ValueError) as exc:
        raise JobInputError(f"{name}: not a readable .npy file ({exc})") from exc
    descr = np.lib.format.dtype_to_descr(dtype)
    if not isinstance(descr, str) or descr not in NPY_DTYPES or len(shape) != ndim:
        raise JobInputError(f"{name}: a {ndim}-d .npy of {sorted(set(NPY_DTYPES.values()))}")
    del fortran
    return NPY_DTYPES[descr], tuple(int(d) for d in shape)


def _read_mlp_layers(path: Path) -> list[tuple[int, int]]:
    """(fan_out, fan_in) of each ``layers.{i}.weight`` in a safetensors file's header."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > SAFETENSORS_HEADER_BYTES_MAX:
                raise JobInputError(f"model: a safetensors header of {length} bytes")
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise JobInputError(f"model: not a readable safetensors file ({exc})") from exc
    layers: list[tuple[int, int]] = []
    while isinstance(entry := header.get(f"layers.{len(layers)}.weight"), dict):
        shape = entry.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2):
            raise JobInputError(f"model: layers.{len(layers)}.weight is not 2-d")
        layers.append((int(shape[0]), int(shape[1])))
    if not layers:
        raise JobInputError("model: no layers.0.weight tensor")
    return layers


def _write_atomic(out: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(descriptor, "wb") as sink:
            sink.write(data)
        Path(temporary).replace(out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()
        raise


def _identity(client: ApiClient) -> Identity:
    if client.identity is None:
        raise ValueError("a consumer's job needs the client's identity")
    return client.identity


__all__ = [
    "JobFailed",
    "JobInputError",
    "JobNotFinal",
    "ResultMismatch",
    "SubmittedJob",
    "derive_input_params",
    "fetch_job_result",
    "submit_job_with_inputs",
]

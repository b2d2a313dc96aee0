"""Workload parameters, one typed Struct per kind and form: the contract between consumers,
the ledger (which refuses at ``job.submit`` what cannot run, rules v5), agents and validators.
A job's ``workload.params`` (a dict of str/int/bool in the ledger) is parsed here once with
``parse_params``; anything else is a ``WorkloadParamsError`` naming the field and its bound.

Seeded forms (inputs derived from the job seed; benchmarks, attestation challenges):

| kind        | params                                                                  |
|-------------|-------------------------------------------------------------------------|
| ``matmul``  | ``n`` (int, 1..4096, default 512), ``seed`` (str, default "")           |
| ``inference`` | ``seed`` (str: the model's weights), ``batch`` (int, 1..4096, default |
|             | 64), ``width`` (int, 8..1024, default 256), ``depth`` (int, 1..8,       |
|             | default 3), ``input_dim`` (1..1024, default 64), ``output_dim``          |
|             | (1..1024, default 16)                                                   |
| ``zk-prove`` | ``circuit`` ("poseidon_preimage" or "matvec"), ``inputs`` (JSON text:  |
|             | ``{"a": int, "b": int}`` / ``{"matrix": [[int]], "x": [int]}``), and    |
|             | the proving key: ``zkey`` (hex SHA-256 of a snarkjs .zkey in the object  |
|             | store) or ``setup_seed`` (int; INSECURE derived keys, devnets and tests) |

Every form takes ``encrypted`` (bool, default False, left out of the ledger form when False):
the job is private, its result sealed, and so is every input object of a data form.

Data forms (issue 17: the consumer's own inputs, named by the hex SHA-256 of the stored
object, which the consumer recorded as stored):

| kind        | params                                                                  |
|-------------|-------------------------------------------------------------------------|
| ``matmul``  | ``a``, ``b`` (digests of ``.npy`` A: m×k and B: k×n), ``dtype``          |
|             | (float32, float16, bfloat16, int8; C is int32 for int8, else the dtype), |
|             | ``m``, ``k``, ``n`` (1..4096 each), optional ``a_rows_root`` and         |
|             | ``b_cols_root`` (both or neither: RFC 6962 roots over A's rows and B's   |
|             | columns, for a Freivalds fraud proof)                                    |
| ``inference`` | ``model`` (digest of a safetensors MLP: ``layers.{i}.weight`` [out,in], |
|             | ``layers.{i}.bias`` [out], i < depth, float32), ``x`` (digest of a      |
|             | float32 ``.npy`` [batch, input_dim]), ``batch``, ``input_dim``,          |
|             | ``output_dim``, ``width``, ``depth`` (bounds as seeded; the layer sizes:  |
|             | ``compute_mlp_layer_dims``)                                              |
| ``zk-prove`` | as seeded, plus ``witness`` (digest of a JSON object of the private     |
|             | inputs, shaped like ``inputs``); ``inputs`` then holds the public part   |
|             | or is omitted                                                            |

A data form never carries ``seed`` (and a seeded form never carries an input digest).
``accepted_input_size`` bounds each input's recorded size from the shape alone, so the ledger
refuses an object that cannot be the input the params describe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

# Equal to ``proofs.matmul.MATRIX_SIZE_MAX`` and ``proofs.job_seed.MATMUL_N_DEFAULT``
# (domain/ may not import proofs/; tests/unit/domain/test_workloads.py checks they agree).
MATRIX_SIZE_MAX = 4096
MATMUL_N_DEFAULT = 512
SEED_CHARS_MAX = 256
INFERENCE_BATCH_MAX = 4096
INFERENCE_WIDTH_MIN, INFERENCE_WIDTH_MAX = 8, 1024
INFERENCE_DEPTH_MAX = 8
INFERENCE_DIM_MAX = 1024
ZK_INPUTS_CHARS_MAX = 1024

# Stored sizes of input objects (``accepted_input_size``).
NPY_HEADER_BYTES_MIN = 64
"""The least header of a ``.npy`` file (magic, version, header length, the dict, padded)."""
NPY_HEADER_BYTES_MAX = 4096
"""The most header a ``.npy`` input may have: numpy writes 128 bytes for a 2-D array."""
SAFETENSORS_HEADER_BYTES_MIN = 8 + 2
"""A safetensors file starts with a u64 header length, then a JSON object (at least ``{}``)."""
SAFETENSORS_ENTRY_BYTES_MAX = 256
"""The most JSON header one tensor entry takes (``"layers.7.weight":{"dtype":"F32",
"shape":[1024,1024],"data_offsets":[a,b]}`` is under 100 bytes)."""
SAFETENSORS_METADATA_BYTES_MAX = 4096
"""Room for the header's ``__metadata__`` and its padding."""
ZK_WITNESS_BYTES_MIN = 2
ZK_WITNESS_BYTES_MAX = 64 * 1024
"""A witness JSON object: a circuit's private inputs (a matvec is at most
``proofs.circuits.MATVEC_CELLS_MAX`` cells of field elements)."""
INFERENCE_DTYPE_BYTES = 4  # float32 weights and inputs

# The sealed-object format's size (``proofs.sealed_object``, issue 17's STREAM construction):
# a header, then the plaintext in chunks of SEALED_CHUNK_BYTES (the last one shorter, and at
# least one chunk even for an empty plaintext), each followed by its Poly1305 tag. The format
# lets a sealer choose another chunk size; the ledger accepts inputs sealed at the default.
SEALED_HEADER_BYTES = 16
"""magic (4) ‖ version (1) ‖ chunk size, u32 big-endian (4) ‖ nonce prefix (7)."""
SEALED_CHUNK_BYTES = 64 * 1024
SEALED_TAG_BYTES = 16

WorkloadKind = Literal["matmul", "inference", "zk-prove"]
CircuitName = Literal["poseidon_preimage", "matvec"]
MatmulDtype = Literal["float32", "float16", "bfloat16", "int8"]
Seed = Annotated[str, msgspec.Meta(max_length=SEED_CHARS_MAX)]
HexDigest = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
"""The lowercase hex SHA-256 of a stored object (its bytes as stored, sealed or not)."""
MatrixSize = Annotated[int, msgspec.Meta(ge=1, le=MATRIX_SIZE_MAX)]
Batch = Annotated[int, msgspec.Meta(ge=1, le=INFERENCE_BATCH_MAX)]
Width = Annotated[int, msgspec.Meta(ge=INFERENCE_WIDTH_MIN, le=INFERENCE_WIDTH_MAX)]
Depth = Annotated[int, msgspec.Meta(ge=1, le=INFERENCE_DEPTH_MAX)]
Dim = Annotated[int, msgspec.Meta(ge=1, le=INFERENCE_DIM_MAX)]

DTYPE_BYTES: Final[Mapping[str, int]] = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
RESULT_DTYPES: Final[Mapping[str, str]] = {
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "int8": "int32",  # exact: int8 products accumulated in int32 (k ≤ 4096 cannot overflow)
}
ENCRYPTED_FIELD = "encrypted"
DATA_INPUT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "matmul": ("a", "b"),
    "inference": ("model", "x"),
    "zk-prove": ("witness",),
}
"""The params naming an input object, per kind: their presence selects the data form."""


class WorkloadParamsError(ValueError):
    """A job's params do not fit its workload kind; the message names the field and its
    bound, ``field`` the field (empty when the fault is the combination)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class MatmulParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """C = A·B with A, B derived from the job seed (``proofs.matmul.derive_inputs``)."""

    n: MatrixSize = MATMUL_N_DEFAULT
    seed: Seed = ""
    encrypted: bool = False


class MatmulDataParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """C = A·B on the consumer's A (m×k) and B (k×n), ``.npy`` objects named by digest."""

    a: HexDigest
    b: HexDigest
    dtype: MatmulDtype
    m: MatrixSize
    k: MatrixSize
    n: MatrixSize
    a_rows_root: HexDigest | None = None
    b_cols_root: HexDigest | None = None
    encrypted: bool = False

    @property
    def result_dtype(self) -> str:
        return RESULT_DTYPES[self.dtype]


class InferenceParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A seeded MLP (``adapters.compute.inference_model``) over ``batch`` derived inputs."""

    seed: Seed = ""
    batch: Batch = 64
    width: Width = 256
    depth: Depth = 3
    input_dim: Dim = 64
    output_dim: Dim = 16
    encrypted: bool = False


class InferenceDataParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The consumer's MLP (a safetensors ``model``) on its inputs ``x`` ([batch, input_dim]):
    ``depth`` linear layers, ReLU between them (``compute_mlp_layer_dims``)."""

    model: HexDigest
    x: HexDigest
    batch: Batch
    width: Width
    depth: Depth
    input_dim: Dim
    output_dim: Dim
    encrypted: bool = False


class ZkProveParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A Groth16 proof of a named circuit of ``proofs.circuits`` on the given inputs; with
    ``witness``, the private inputs come in that object and ``inputs`` holds the public
    part (or nothing)."""

    circuit: CircuitName
    inputs: Annotated[str, msgspec.Meta(max_length=ZK_INPUTS_CHARS_MAX)] = ""
    zkey: Annotated[str, msgspec.Meta(pattern="^([0-9a-f]{64})?$")] = ""
    setup_seed: Annotated[int, msgspec.Meta(ge=0)] | None = None
    witness: HexDigest | None = None
    encrypted: bool = False

    def decoded_inputs(self) -> dict[str, Any]:
        """``inputs`` parsed as a JSON object ({} when omitted beside a witness; raises
        WorkloadParamsError)."""
        if not self.inputs and self.witness is not None:
            return {}
        return decode_json_object(self.inputs, "inputs")


WorkloadParams = (
    MatmulParams | MatmulDataParams | InferenceParams | InferenceDataParams | ZkProveParams
)
DataParams = MatmulDataParams | InferenceDataParams | ZkProveParams

PARAM_TYPES: dict[str, type[WorkloadParams]] = {
    "matmul": MatmulParams,
    "inference": InferenceParams,
    "zk-prove": ZkProveParams,
}
"""The seeded (or, for zk-prove, inline) form of each kind: the kinds there are."""
DATA_PARAM_TYPES: dict[str, type[WorkloadParams]] = {
    "matmul": MatmulDataParams,
    "inference": InferenceDataParams,
    "zk-prove": ZkProveParams,
}

_FIELD_IN_ERROR = re.compile(r"at `\$\.([A-Za-z0-9_]+)")
_NAMED_FIELD = re.compile(r"field `([A-Za-z0-9_]+)`")  # "missing required" / "unknown"


def is_data_form(kind: str, params: Mapping[str, Any]) -> bool:
    """Whether raw params name an input object (the data form of their kind)."""
    return any(name in params for name in DATA_INPUT_FIELDS.get(kind, ()))


def parse_params(kind: str, params: Mapping[str, Any]) -> WorkloadParams:
    """The typed params of a ``kind`` job; WorkloadParamsError names the bad field and its
    bound. The form is chosen by the input fields present (``DATA_INPUT_FIELDS``)."""
    if kind not in PARAM_TYPES:
        raise WorkloadParamsError(
            f"unknown workload kind {kind!r}; known: {sorted(PARAM_TYPES)}", field="kind"
        )
    data_form = is_data_form(kind, params)
    if data_form and "seed" in params:
        raise WorkloadParamsError(
            f"{kind}: seed names derived inputs; a job with input objects carries none",
            field="seed",
        )
    param_type = DATA_PARAM_TYPES[kind] if data_form else PARAM_TYPES[kind]
    try:
        parsed = msgspec.convert(dict(params), type=param_type)
    except msgspec.ValidationError as exc:
        raise WorkloadParamsError(f"{kind}: {exc}", field=_field_of(str(exc))) from exc
    _check_combination(kind, parsed, params)
    return parsed


def encode_params(params: WorkloadParams) -> dict[str, Any]:
    """The ledger form of typed params (what ``job.submit`` carries): None values, and
    ``encrypted`` when False, left out, so a seeded job's params read as they always did."""
    raw = msgspec.to_builtins(params)
    return {
        key: value
        for key, value in raw.items()
        if value is not None and not (key == ENCRYPTED_FIELD and value is False)
    }


def input_digests(params: WorkloadParams) -> dict[str, str]:
    """Input name -> hex digest of the stored object, in the order of
    ``DATA_INPUT_FIELDS`` ({} for seeded and inline forms)."""
    if isinstance(params, MatmulDataParams):
        return {"a": params.a, "b": params.b}
    if isinstance(params, InferenceDataParams):
        return {"model": params.model, "x": params.x}
    if isinstance(params, ZkProveParams) and params.witness is not None:
        return {"witness": params.witness}
    return {}


def is_private(params: WorkloadParams) -> bool:
    """Whether the job's input objects (if any) are sealed and its result is sealed too."""
    return params.encrypted


def compute_mlp_layer_dims(params: InferenceDataParams) -> list[tuple[int, int]]:
    """(fan_out, fan_in) of each layer of a data-form MLP: ``depth`` linear layers,
    input_dim -> width -> ... -> width -> output_dim (depth 1: input_dim -> output_dim)."""
    dims = [params.input_dim, *([params.width] * (params.depth - 1)), params.output_dim]
    return [(dims[i + 1], dims[i]) for i in range(params.depth)]


def compute_plain_size_range(params: WorkloadParams, name: str) -> tuple[int, int]:
    """The inclusive byte range of input ``name``'s plaintext file (KeyError: no such
    input of these params)."""
    if name not in input_digests(params):
        raise KeyError(f"{type(params).__name__} has no input {name!r}")
    if isinstance(params, MatmulDataParams):
        rows, cols = (params.m, params.k) if name == "a" else (params.k, params.n)
        payload = rows * cols * DTYPE_BYTES[params.dtype]
        return payload + NPY_HEADER_BYTES_MIN, payload + NPY_HEADER_BYTES_MAX
    if isinstance(params, InferenceDataParams):
        if name == "x":
            payload = params.batch * params.input_dim * INFERENCE_DTYPE_BYTES
            return payload + NPY_HEADER_BYTES_MIN, payload + NPY_HEADER_BYTES_MAX
        values = sum(out * (fan_in + 1) for out, fan_in in compute_mlp_layer_dims(params))
        payload = values * INFERENCE_DTYPE_BYTES
        header_max = (
            SAFETENSORS_HEADER_BYTES_MIN
            + 2 * params.depth * SAFETENSORS_ENTRY_BYTES_MAX
            + SAFETENSORS_METADATA_BYTES_MAX
        )
        return payload + SAFETENSORS_HEADER_BYTES_MIN, payload + header_max
    return ZK_WITNESS_BYTES_MIN, ZK_WITNESS_BYTES_MAX


def accepted_input_size(
    kind: str, params: WorkloadParams | Mapping[str, Any], name: str
) -> tuple[int, int]:
    """The inclusive byte range of input ``name`` as stored: its plaintext file's, or, for an
    encrypted job, that sealed (``sealed_overhead`` grows with the size, so the bounds seal
    to the bounds). Raw params are parsed first (WorkloadParamsError)."""
    typed = parse_params(kind, params) if isinstance(params, Mapping) else params
    low, high = compute_plain_size_range(typed, name)
    if is_private(typed):
        return low + sealed_overhead(low), high + sealed_overhead(high)
    return low, high


def sealed_overhead(plain_size: int) -> int:
    """Bytes a sealed object adds to ``plain_size`` bytes of plaintext: the header and one
    tag per chunk (at least one chunk). Must equal ``proofs.sealed_object.sealed_overhead``,
    the format itself (domain/ may not import proofs/; a test checks they agree)."""
    if plain_size < 0:
        raise ValueError(f"a plaintext has no negative size ({plain_size})")
    chunks = max(1, -(-plain_size // SEALED_CHUNK_BYTES))
    return SEALED_HEADER_BYTES + SEALED_TAG_BYTES * chunks


def decode_json_object(text: str, field: str) -> dict[str, Any]:
    """``text`` as a JSON object, or WorkloadParamsError naming ``field``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise WorkloadParamsError(f"zk-prove: {field} is not JSON: {exc}", field=field) from exc
    if not isinstance(value, dict):
        raise WorkloadParamsError(f"zk-prove: {field} must be a JSON object", field=field)
    return value


def _check_combination(kind: str, parsed: WorkloadParams, raw: Mapping[str, Any]) -> None:
    """The rules across fields, once each field is in its bounds."""
    if isinstance(parsed, MatmulDataParams) and (parsed.a_rows_root is None) != (
        parsed.b_cols_root is None
    ):
        missing = "b_cols_root" if parsed.b_cols_root is None else "a_rows_root"
        raise WorkloadParamsError(
            "matmul: a_rows_root and b_cols_root come together (a fraud proof needs both)",
            field=missing,
        )
    if isinstance(parsed, ZkProveParams):
        if (parsed.setup_seed is None) == (not parsed.zkey):
            raise WorkloadParamsError(
                "zk-prove: give exactly one of zkey and setup_seed", field="zkey"
            )
        if parsed.witness is None and "inputs" not in raw:
            raise WorkloadParamsError(
                "zk-prove: inputs is required without a witness object", field="inputs"
            )
        parsed.decoded_inputs()


def _field_of(message: str) -> str:
    found = _FIELD_IN_ERROR.search(message) or _NAMED_FIELD.search(message)
    return found.group(1) if found else ""

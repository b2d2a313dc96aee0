"""The workload params parser of ``domain.workloads`` (issue 17): every bound at and past its
limit, every dtype, the seeded forms exactly as before, the data forms, and the stored sizes
each input may have (checked against files numpy and safetensors really write)."""

from __future__ import annotations

import io
from typing import Any

import ml_dtypes
import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as save_safetensors

from adapters.compute import workloads as adapter_workloads
from domain.events import encode_event
from domain.network import Network
from domain.policy import RULES_V4, LedgerPolicy
from domain.workloads import (
    DATA_INPUT_FIELDS,
    INFERENCE_DEPTH_MAX,
    MATMUL_N_DEFAULT,
    MATRIX_SIZE_MAX,
    SEALED_CHUNK_BYTES,
    SEALED_HEADER_BYTES,
    SEALED_TAG_BYTES,
    InferenceDataParams,
    MatmulDataParams,
    MatmulParams,
    WorkloadParamsError,
    ZkProveParams,
    accepted_input_size,
    compute_mlp_layer_dims,
    encode_params,
    input_digests,
    is_private,
    parse_params,
    sealed_overhead,
)
from proofs import job_seed, matmul, sealed_object
from proofs.identity import Identity

A = "a" * 64
B = "b" * 64
DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "int8": np.int8,
}


def matmul_data(**overrides: Any) -> dict[str, Any]:
    return {"a": A, "b": B, "dtype": "float32", "m": 8, "k": 16, "n": 4, **overrides}


def inference_data(**overrides: Any) -> dict[str, Any]:
    shape = {"batch": 4, "width": 32, "depth": 2, "input_dim": 16, "output_dim": 8}
    return {"model": A, "x": B, **shape, **overrides}


def npy_bytes(rows: int, cols: int, dtype: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((rows, cols), dtype=dtype))
    return buffer.getvalue()


def genesis_record_data(policy: LedgerPolicy) -> dict[str, Any]:
    operator = Identity.from_seed(b"workloads-operator".ljust(32, b"\0")).id
    network = Network.declare_genesis(
        signer=operator,
        operators=(operator,),
        policy=policy,
        prior_records=0,
        head_position=0,
        now_ns=1,
    )
    data: dict[str, Any] = msgspec.json.decode(encode_event(network.collect_new_events()[0]).data)
    return data


def refused_field(kind: str, params: dict[str, Any]) -> str:
    with pytest.raises(WorkloadParamsError) as refused:
        parse_params(kind, params)
    return refused.value.field


def test_the_domain_repeats_the_proofs_constants() -> None:
    assert MATRIX_SIZE_MAX == matmul.MATRIX_SIZE_MAX
    assert MATMUL_N_DEFAULT == job_seed.MATMUL_N_DEFAULT


def test_the_adapter_module_re_exports_the_domain_types() -> None:
    assert adapter_workloads.MatmulParams is MatmulParams
    assert adapter_workloads.parse_params is parse_params
    assert adapter_workloads.WorkloadParamsError is WorkloadParamsError


@pytest.mark.parametrize(
    ("kind", "params", "encoded"),
    [
        ("matmul", {}, {"n": 512, "seed": ""}),
        ("matmul", {"n": 96, "seed": "s"}, {"n": 96, "seed": "s"}),
        (
            "inference",
            {"seed": "m", "depth": 2},
            {
                "seed": "m",
                "batch": 64,
                "width": 256,
                "depth": 2,
                "input_dim": 64,
                "output_dim": 16,
            },
        ),
        (
            "zk-prove",
            {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 3},
            {
                "circuit": "poseidon_preimage",
                "inputs": '{"a": 1, "b": 2}',
                "zkey": "",
                "setup_seed": 3,
            },
        ),
    ],
)
def test_the_seeded_forms_encode_as_they_always_did(
    kind: str, params: dict[str, Any], encoded: dict[str, Any]
) -> None:
    parsed = parse_params(kind, params)
    assert encode_params(parsed) == encoded
    assert input_digests(parsed) == {}
    assert not is_private(parsed)


@pytest.mark.parametrize("field", ["n"])
def test_matmul_seeded_bounds(field: str) -> None:
    assert parse_params("matmul", {field: MATRIX_SIZE_MAX})
    assert parse_params("matmul", {field: 1})
    assert refused_field("matmul", {field: MATRIX_SIZE_MAX + 1}) == field
    assert refused_field("matmul", {field: 0}) == field


def test_the_door_case_names_the_field_and_its_bound() -> None:
    with pytest.raises(WorkloadParamsError) as refused:
        parse_params("matmul", {"n": 999_999})
    assert refused.value.field == "n"
    assert "4096" in str(refused.value)


@pytest.mark.parametrize("field", ["m", "k", "n"])
def test_matmul_data_bounds(field: str) -> None:
    assert parse_params("matmul", matmul_data(**{field: MATRIX_SIZE_MAX}))
    assert parse_params("matmul", matmul_data(**{field: 1}))
    assert refused_field("matmul", matmul_data(**{field: MATRIX_SIZE_MAX + 1})) == field
    assert refused_field("matmul", matmul_data(**{field: 0})) == field


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_dtype_parses_and_its_real_files_fit_the_accepted_sizes(dtype: str) -> None:
    params = parse_params("matmul", matmul_data(dtype=dtype, m=100, k=64, n=5))
    assert isinstance(params, MatmulDataParams)
    low_a, high_a = accepted_input_size("matmul", params, "a")
    low_b, high_b = accepted_input_size("matmul", params, "b")
    assert low_a <= len(npy_bytes(100, 64, DTYPES[dtype])) <= high_a
    assert low_b <= len(npy_bytes(64, 5, DTYPES[dtype])) <= high_b
    # a matrix of another shape is not accepted in its place
    assert not low_a <= len(npy_bytes(64, 5, DTYPES[dtype])) <= high_a
    assert not low_b <= len(npy_bytes(100, 64, DTYPES[dtype])) <= high_b


def test_an_unknown_dtype_is_refused() -> None:
    assert refused_field("matmul", matmul_data(dtype="float64")) == "dtype"


def test_int8_products_are_int32_and_the_others_keep_their_dtype() -> None:
    results = {
        dtype: parse_params("matmul", matmul_data(dtype=dtype)).result_dtype  # type: ignore[union-attr]
        for dtype in DTYPES
    }
    assert results == {
        "float32": "float32",
        "float16": "float16",
        "bfloat16": "bfloat16",
        "int8": "int32",
    }


def test_a_data_form_carries_no_seed() -> None:
    assert refused_field("matmul", matmul_data(seed="s")) == "seed"
    assert refused_field("inference", inference_data(seed="s")) == "seed"
    assert refused_field("matmul", {"n": 8, "b": B}) in {"a", "dtype", "m", "k"}


def test_a_seeded_job_may_be_private_too() -> None:
    """No input objects to seal, but its result is sealed."""
    for kind, raw in (("matmul", {"n": 8}), ("inference", {"seed": "m"})):
        private = parse_params(kind, {**raw, "encrypted": True})
        assert is_private(private) and input_digests(private) == {}
        assert encode_params(private)["encrypted"] is True
        assert "encrypted" not in encode_params(parse_params(kind, raw))
    assert refused_field("matmul", {"n": 8, "encrypted": "yes"}) == "encrypted"


def test_digests_are_64_lowercase_hex() -> None:
    assert refused_field("matmul", matmul_data(a="A" * 64)) == "a"
    assert refused_field("matmul", matmul_data(b="b" * 63)) == "b"
    assert refused_field("inference", inference_data(x="x" * 64)) == "x"


def test_the_row_and_column_roots_come_together() -> None:
    both = parse_params("matmul", matmul_data(a_rows_root="1" * 64, b_cols_root="2" * 64))
    assert isinstance(both, MatmulDataParams) and both.b_cols_root == "2" * 64
    assert refused_field("matmul", matmul_data(a_rows_root="1" * 64)) == "b_cols_root"
    assert refused_field("matmul", matmul_data(b_cols_root="2" * 64)) == "a_rows_root"


def test_a_data_form_round_trips_through_its_ledger_form() -> None:
    for kind, raw in (
        ("matmul", matmul_data(encrypted=True)),
        ("inference", inference_data()),
        ("zk-prove", {"circuit": "matvec", "witness": A, "zkey": B}),
    ):
        parsed = parse_params(kind, raw)
        assert parse_params(kind, encode_params(parsed)) == parsed


def test_input_digests_and_privacy() -> None:
    data = parse_params("matmul", matmul_data(encrypted=True))
    assert input_digests(data) == {"a": A, "b": B}
    assert is_private(data)
    model = parse_params("inference", inference_data())
    assert input_digests(model) == {"model": A, "x": B}
    assert not is_private(model)
    witness = parse_params("zk-prove", {"circuit": "matvec", "witness": A, "zkey": B})
    assert input_digests(witness) == {"witness": A}
    assert set(DATA_INPUT_FIELDS) == {"matmul", "inference", "zk-prove"}


def test_a_512_float32_matrix_refuses_a_one_byte_object_sealed_or_not() -> None:
    for encrypted in (False, True):
        params = parse_params("matmul", matmul_data(m=512, k=512, n=512, encrypted=encrypted))
        low, high = accepted_input_size("matmul", params, "a")
        assert not low <= 1 <= high
        assert high - low < 8192  # tight: a header's slack, sealed or not


def test_sealed_sizes_follow_the_stream_format() -> None:
    """Header 16 bytes, a 16-byte tag per 64 KiB chunk, at least one chunk (worked by hand)."""
    assert sealed_overhead(0) == 16 + 16
    assert sealed_overhead(1) == 16 + 16
    assert sealed_overhead(65_536) == 16 + 16
    assert sealed_overhead(65_537) == 16 + 2 * 16
    # a 512×512 float32 .npy with numpy's 128-byte header: 1_048_704 bytes, 17 chunks
    assert sealed_overhead(1_048_704) == 16 + 17 * 16
    plain = parse_params("matmul", matmul_data(m=512, k=512, n=512))
    sealed = parse_params("matmul", matmul_data(m=512, k=512, n=512, encrypted=True))
    file_size = len(npy_bytes(512, 512, np.float32))
    assert accepted_input_size("matmul", plain, "a")[0] <= file_size
    low, high = accepted_input_size("matmul", sealed, "a")
    assert low <= file_size + 16 + 17 * 16 <= high


def test_the_sealed_format_of_proofs_agrees() -> None:
    for size in (0, 1, 65_535, 65_536, 65_537, 1_048_704):
        assert sealed_object.sealed_overhead(size) == sealed_overhead(size)
    assert sealed_object.HEADER_BYTES == SEALED_HEADER_BYTES
    assert sealed_object.TAG_BYTES == SEALED_TAG_BYTES
    assert sealed_object.CHUNK_BYTES_DEFAULT == SEALED_CHUNK_BYTES


@pytest.mark.parametrize(("dtype", "rows"), [("float32", 300), ("bfloat16", 600), ("int8", 1200)])
def test_a_really_sealed_matrix_fits_and_its_plaintext_does_not(dtype: str, rows: int) -> None:
    """Past a few chunks the tags outweigh a header's slack: the plaintext no longer passes
    for its sealed form."""
    params = parse_params("matmul", matmul_data(m=rows, k=800, n=7, dtype=dtype, encrypted=True))
    plain = npy_bytes(rows, 800, DTYPES[dtype])
    sealed = sealed_object.seal_bytes(sealed_object.new_data_key(), plain)
    low, high = accepted_input_size("matmul", params, "a")
    assert low <= len(sealed) <= high
    assert not low <= len(plain) <= high


def test_a_real_safetensors_model_fits_its_accepted_size() -> None:
    params = parse_params("inference", inference_data(depth=3, width=40))
    assert isinstance(params, InferenceDataParams)
    shapes = compute_mlp_layer_dims(params)
    assert shapes == [(40, 16), (40, 40), (8, 40)]
    tensors = {}
    for index, (fan_out, fan_in) in enumerate(shapes):
        tensors[f"layers.{index}.weight"] = np.zeros((fan_out, fan_in), np.float32)
        tensors[f"layers.{index}.bias"] = np.zeros(fan_out, np.float32)
    low, high = accepted_input_size("inference", params, "model")
    assert low <= len(save_safetensors(tensors)) <= high
    del tensors["layers.1.weight"]  # 6,400 bytes short: more than a header's slack
    assert not low <= len(save_safetensors(tensors)) <= high
    low_x, high_x = accepted_input_size("inference", params, "x")
    assert low_x <= len(npy_bytes(4, 16, np.float32)) <= high_x


def test_a_one_layer_mlp_maps_inputs_to_outputs() -> None:
    params = parse_params("inference", inference_data(depth=1))
    assert compute_mlp_layer_dims(params) == [(8, 16)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("batch", 4096, 4097),
        ("width", 8, 7),
        ("width", 1024, 1025),
        ("depth", INFERENCE_DEPTH_MAX, INFERENCE_DEPTH_MAX + 1),
        ("depth", 1, 0),
        ("input_dim", 1024, 1025),
        ("output_dim", 1, 0),
    ],
)
def test_inference_bounds_in_both_forms(field: str, good: int, bad: int) -> None:
    assert parse_params("inference", {field: good})
    assert refused_field("inference", {field: bad}) == field
    assert parse_params("inference", inference_data(**{field: good}))
    assert refused_field("inference", inference_data(**{field: bad})) == field


def test_the_inference_data_form_names_its_whole_shape() -> None:
    raw = inference_data()
    del raw["width"]
    assert refused_field("inference", raw) == "width"


def test_zk_prove_forms() -> None:
    inline = {"circuit": "poseidon_preimage", "inputs": '{"a": 1, "b": 2}', "setup_seed": 3}
    assert parse_params("zk-prove", inline)
    assert refused_field("zk-prove", {**inline, "inputs": "{bad"}) == "inputs"
    assert refused_field("zk-prove", {**inline, "inputs": "[1]"}) == "inputs"
    without_inputs = {"circuit": "poseidon_preimage", "setup_seed": 3}
    assert refused_field("zk-prove", without_inputs) == "inputs"
    assert refused_field("zk-prove", {**inline, "zkey": B}) == "zkey"
    assert is_private(parse_params("zk-prove", {**inline, "encrypted": True}))
    private = parse_params("zk-prove", {**without_inputs, "witness": A, "encrypted": True})
    assert isinstance(private, ZkProveParams)
    assert private.decoded_inputs() == {}
    assert is_private(private)
    low, high = accepted_input_size("zk-prove", private, "witness")
    assert not low <= 1 <= high
    assert low <= len(b'{"a": 1, "b": 2}') + sealed_overhead(16) <= high


def test_an_unknown_kind_or_input_name() -> None:
    assert refused_field("render", {}) == "kind"
    with pytest.raises(KeyError):
        accepted_input_size("matmul", matmul_data(), "c")
    with pytest.raises(KeyError):
        accepted_input_size("matmul", {"n": 8}, "a")


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, MATRIX_SIZE_MAX),
    k=st.integers(1, MATRIX_SIZE_MAX),
    n=st.integers(1, MATRIX_SIZE_MAX),
    dtype=st.sampled_from(sorted(DTYPES)),
    encrypted=st.booleans(),
)
def test_accepted_sizes_hold_the_payload_and_are_tight(
    m: int, k: int, n: int, dtype: str, encrypted: bool
) -> None:
    params = parse_params("matmul", matmul_data(m=m, k=k, n=n, dtype=dtype, encrypted=encrypted))
    item = np.dtype(DTYPES[dtype]).itemsize
    for name, payload in (("a", m * k * item), ("b", k * n * item)):
        low, high = accepted_input_size("matmul", params, name)
        assert payload < low <= high  # a header is never free
        file_size = payload + 128  # numpy's header for a 2-D array
        sealed = file_size + sealed_overhead(file_size) if encrypted else file_size
        assert low <= sealed <= high
        assert high - low <= 4096 + 16  # a header's slack, and one more tag at most


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 2**34), extra=st.integers(0, 2**20))
def test_sealed_overhead_grows_with_the_plaintext(size: int, extra: int) -> None:
    assert 32 <= sealed_overhead(size) <= sealed_overhead(size + extra)
    assert sealed_overhead(size) - 16 == 16 * max(1, -(-size // 65_536))


def test_a_policy_record_leaves_out_late_fields_at_their_default() -> None:
    """A genesis recorded before issue 17's policy fields existed re-executes to the same
    bytes: those fields are stored only when they differ from their default."""
    policy = LedgerPolicy(rules_version=RULES_V4)
    data = genesis_record_data(policy)
    assert "object_upload_bytes_max" not in data["policy"]
    assert "key_release_window_ns" not in data["policy"]
    assert data["policy"]["rules_version"] == RULES_V4
    data = genesis_record_data(LedgerPolicy(object_upload_bytes_max=1024))
    assert data["policy"]["object_upload_bytes_max"] == 1024
    assert msgspec.convert(data["policy"], LedgerPolicy).object_upload_bytes_max == 1024

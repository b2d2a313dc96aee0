"""Ethereum BLS vectors (bls/, from ethereum/bls12-381-tests) on both backends.

Each test names the vector file it runs. The py_ecc backend runs every vector too: about
15 s of CPU in all, within the unit tier's budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from py_ecc.bls.g2_primitives import G2_to_signature
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.fields import optimized_bls12_381_FQ2 as FQ2
from py_ecc.optimized_bls12_381 import normalize

from proofs import bls
from tests.unit.proofs._vectors import load_json, vector_files

HASH_TO_G2_DST = b"QUUX-V01-CS02-with-BLS12381G2_XMD:SHA-256_SSWU_RO_"


def _files(category: str) -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in vector_files("bls", category)]


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _load(path: Path) -> Any:
    return load_json("bls", path.parent.name, path.name)


@pytest.fixture(params=bls.BACKEND_NAMES)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test through ``proofs.bls`` with one backend, then the other."""
    monkeypatch.setattr(bls, "BACKEND", bls.get_backend(request.param))
    yield request.param


@pytest.mark.parametrize("path", _files("sign"))
def test_sign(path: Path, backend: str) -> None:
    case = _load(path)
    sk = _hex(case["input"]["privkey"])
    message = _hex(case["input"]["message"])
    if case["output"] is None:
        with pytest.raises(ValueError):
            bls.sign(sk, message)
    else:
        assert bls.sign(sk, message) == _hex(case["output"])


@pytest.mark.parametrize("path", _files("verify"))
def test_verify(path: Path, backend: str) -> None:
    case = _load(path)
    args = case["input"]
    got = bls.verify(_hex(args["pubkey"]), _hex(args["message"]), _hex(args["signature"]))
    assert got is case["output"]


@pytest.mark.parametrize("path", _files("aggregate"))
def test_aggregate(path: Path, backend: str) -> None:
    case = _load(path)
    signatures = [_hex(s) for s in case["input"]]
    if case["output"] is None:
        with pytest.raises(ValueError):
            bls.aggregate(signatures)
    else:
        assert bls.aggregate(signatures) == _hex(case["output"])


@pytest.mark.parametrize("path", _files("aggregate_verify"))
def test_aggregate_verify(path: Path, backend: str) -> None:
    args = (case := _load(path))["input"]
    got = bls.aggregate_verify(
        [_hex(p) for p in args["pubkeys"]],
        [_hex(m) for m in args["messages"]],
        _hex(args["signature"]),
    )
    assert got is case["output"]


@pytest.mark.parametrize("path", _files("fast_aggregate_verify"))
def test_fast_aggregate_verify(path: Path, backend: str) -> None:
    args = (case := _load(path))["input"]
    got = bls.fast_aggregate_verify(
        [_hex(p) for p in args["pubkeys"]], _hex(args["message"]), _hex(args["signature"])
    )
    assert got is case["output"]


@pytest.mark.parametrize("path", _files("batch_verify"))
def test_batch_verify(path: Path, backend: str) -> None:
    args = (case := _load(path))["input"]
    got = bls.batch_verify(
        [_hex(p) for p in args["pubkeys"]],
        [_hex(m) for m in args["messages"]],
        [_hex(s) for s in args["signatures"]],
    )
    assert got is case["output"]


@pytest.mark.parametrize("path", _files("deserialization_G1"))
def test_deserialization_g1(path: Path, backend: str) -> None:
    case = _load(path)
    assert bls.is_g1_encoding(_hex(case["input"]["pubkey"])) is case["output"]


@pytest.mark.parametrize("path", _files("deserialization_G2"))
def test_deserialization_g2(path: Path, backend: str) -> None:
    case = _load(path)
    assert bls.is_g2_encoding(_hex(case["input"]["signature"])) is case["output"]


@pytest.mark.parametrize("path", _files("hash_to_G2"))
def test_hash_to_g2(path: Path, backend: str) -> None:
    case = _load(path)
    message = case["input"]["msg"].encode("utf-8")
    x = FQ2([int(c, 16) for c in case["output"]["x"].split(",")])
    y = FQ2([int(c, 16) for c in case["output"]["y"].split(",")])
    expected = G2_to_signature((x, y, FQ2.one()))
    assert bls.hash_to_g2(message, HASH_TO_G2_DST) == expected


def test_hash_to_g2_affine_coordinates_on_py_ecc() -> None:
    """The py_ecc hash, compared as affine coordinates (not through our compression)."""
    for path in vector_files("bls", "hash_to_G2"):
        case = _load(path)
        message = case["input"]["msg"].encode()
        point = normalize(hash_to_G2(message, HASH_TO_G2_DST, hashlib.sha256))  # type: ignore[arg-type]
        got = {
            "x": ",".join(f"0x{c:096x}" for c in point[0].coeffs),
            "y": ",".join(f"0x{c:096x}" for c in point[1].coeffs),
        }
        assert got == case["output"], path.name

"""blst and py_ecc backends give identical bytes and verdicts on seeded random inputs.

py_ecc costs ~0.1 s per Sign and ~0.34 s per Verify, so the random cases are few and fixed
(seeded), covering each operation on valid, tampered and undecodable inputs.
"""

from __future__ import annotations

import random
import sys

import pytest

from proofs import bls
from proofs.bls_backend import CURVE_ORDER, DST_POP, DST_SIGNATURE, BlsBackend

BLST = bls.get_backend("blst")
PYECC = bls.get_backend("py_ecc")
RNG = random.Random(20261124)
SECRET_KEYS = [RNG.randrange(1, CURVE_ORDER) for _ in range(3)] + [1, CURVE_ORDER - 1]
MESSAGES = [RNG.randbytes(32), b"", RNG.randbytes(200)]


def _both(call: str, *args: object) -> object:
    """Call one operation on both backends, assert equal results, return it."""
    got_blst = getattr(BLST, call)(*args)
    got_pyecc = getattr(PYECC, call)(*args)
    assert got_blst == got_pyecc, call
    return got_blst


@pytest.fixture(scope="module")
def keys() -> list[tuple[int, bytes]]:
    return [(sk, _both("sk_to_pk", sk)) for sk in SECRET_KEYS]  # type: ignore[misc]


def test_sign_and_verify_agree(keys: list[tuple[int, bytes]]) -> None:
    for (sk, pk), message in zip(keys, MESSAGES, strict=False):
        signature = _both("sign", sk, message, DST_SIGNATURE)
        assert _both("verify", pk, message, signature, DST_SIGNATURE) is True
        assert _both("verify", pk, message + b"!", signature, DST_SIGNATURE) is False
        assert _both("verify", pk, message, signature, DST_POP) is False


def test_pop_agrees_with_py_ecc_pop(keys: list[tuple[int, bytes]]) -> None:
    sk, pk = keys[0]
    proof = bls.pop_prove(sk)
    assert proof == bls._PyEccPoP.PopProve(sk)
    assert _both("verify", pk, pk, proof, DST_POP) is True
    assert _both("verify", keys[1][1], keys[1][1], proof, DST_POP) is False


def test_aggregates_agree(keys: list[tuple[int, bytes]]) -> None:
    message = MESSAGES[0]
    pks = [pk for _, pk in keys[:3]]
    signatures = [BLST.sign(sk, message, DST_SIGNATURE) for sk, _ in keys[:3]]
    aggregate = _both("aggregate", signatures)
    assert _both("fast_aggregate_verify", pks, message, aggregate) is True
    assert _both("fast_aggregate_verify", pks[:2], message, aggregate) is False
    distinct = [BLST.sign(sk, m, DST_SIGNATURE) for (sk, _), m in zip(keys, MESSAGES, strict=False)]
    combined = _both("aggregate", distinct)
    assert _both("aggregate_verify", pks, MESSAGES, combined) is True
    assert _both("aggregate_verify", pks, MESSAGES[::-1], combined) is False
    assert _both("batch_verify", pks, MESSAGES, distinct) is True
    assert _both("batch_verify", pks, MESSAGES, [distinct[1], distinct[0], distinct[2]]) is False


def test_cancelling_keys_rejected_alike(keys: list[tuple[int, bytes]]) -> None:
    """pk and -pk aggregate to the identity: KeyValidate of the aggregate fails on both."""
    sk, pk = keys[0]
    negated = BLST.sk_to_pk(CURVE_ORDER - sk)
    signature = BLST.sign(sk, MESSAGES[0], DST_SIGNATURE)
    assert _both("fast_aggregate_verify", [pk, negated], MESSAGES[0], signature) is False


@pytest.mark.parametrize("size", [48, 96])
def test_random_encodings_decode_alike(size: int) -> None:
    """Random x coordinates: some decode to curve points outside the subgroup."""
    rng = random.Random(size)
    check = "is_g1_encoding" if size == 48 else "is_g2_encoding"
    for _ in range(12):
        data = bytearray(rng.randbytes(size))
        data[0] = 0x80 | (data[0] & 0x2F)  # compressed flag, not infinity, sign bit random
        _both(check, bytes(data))
        _both("key_validate", bytes(data[:48]))


def test_undecodable_inputs_rejected_alike(keys: list[tuple[int, bytes]]) -> None:
    sk, pk = keys[0]
    signature = BLST.sign(sk, MESSAGES[0], DST_SIGNATURE)
    infinity_g1 = b"\xc0" + bytes(47)
    infinity_g2 = b"\xc0" + bytes(95)
    assert _both("verify", infinity_g1, MESSAGES[0], infinity_g2, DST_SIGNATURE) is False
    assert _both("verify", pk, MESSAGES[0], bytes(96), DST_SIGNATURE) is False
    assert _both("key_validate", infinity_g1) is False
    assert _both("is_g1_encoding", infinity_g1) is True
    with pytest.raises(ValueError):
        BLST.aggregate([signature, bytes(96)])
    with pytest.raises(ValueError):
        PYECC.aggregate([signature, bytes(96)])


def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bls.BACKEND_ENV, raising=False)
    backend: BlsBackend = bls.get_backend()
    assert backend.name == "blst"
    monkeypatch.setenv(bls.BACKEND_ENV, "py_ecc")
    assert bls.get_backend().name == "py_ecc"
    monkeypatch.setenv(bls.BACKEND_ENV, "openssl")
    with pytest.raises(ValueError):
        bls.get_backend()


def test_falls_back_to_py_ecc_without_pyblst(monkeypatch: pytest.MonkeyPatch) -> None:
    """With pyblst not importable, the default is py_ecc and forcing blst fails loudly."""
    monkeypatch.delenv(bls.BACKEND_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "pyblst", None)
    monkeypatch.delitem(sys.modules, "proofs.bls_blst", raising=False)
    assert bls.get_backend().name == "py_ecc"
    with pytest.raises(ImportError):
        bls.get_backend("blst")

"""Named bounds of the Groth16 code: a test at each bound and one past it."""

from __future__ import annotations

import re

import pytest

import proofs.groth16 as groth16
from proofs.bn254 import DECIMAL_DIGITS_MAX, Bn254DecodeError, P, decode_decimal
from proofs.circuits import MATVEC_CELLS_MAX, matvec
from proofs.groth16 import Groth16DecodeError, decode_proof, decode_verification_key

from ._groth16_helpers import load_groth16


def test_batch_size_at_and_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    vk = decode_verification_key(load_groth16("multiplier", "multiplier_vkey.json"))
    item = (decode_proof(load_groth16("multiplier", "proof_1.json")), (33,))
    monkeypatch.setattr(groth16, "BATCH_PROOFS_MAX", 2)
    assert groth16.batch_verify(vk, [item, item]) is True
    with pytest.raises(ValueError, match="more than 2 proofs"):
        groth16.batch_verify(vk, [item, item, item])


def test_public_signal_count_bound() -> None:
    vkey = load_groth16("multiplier", "multiplier_vkey.json")
    vkey["nPublic"] = groth16.PUBLIC_SIGNALS_MAX + 1
    with pytest.raises(Groth16DecodeError, match=re.escape("vkey.nPublic")):
        decode_verification_key(vkey)
    vkey["nPublic"] = groth16.PUBLIC_SIGNALS_MAX  # at the bound: IC length is what fails
    with pytest.raises(Groth16DecodeError, match=re.escape("vkey.IC: expected a list")):
        decode_verification_key(vkey)


def test_decimal_length_bound() -> None:
    at_bound = "1" + "0" * (DECIMAL_DIGITS_MAX - 1)
    with pytest.raises(Bn254DecodeError, match="not below the field modulus"):
        decode_decimal(at_bound, "x", P)
    with pytest.raises(Bn254DecodeError, match="not a canonical decimal"):
        decode_decimal(at_bound + "0", "x", P)
    assert decode_decimal(str(P - 1), "x", P) == P - 1


def test_matvec_cell_bound() -> None:
    assert matvec([[1] * 4] * 4, [1] * 4, 0).public[-2] == 4  # y's last, then the binding
    with pytest.raises(ValueError, match="matvec"):
        matvec([[0] * (MATVEC_CELLS_MAX + 1)], [0] * (MATVEC_CELLS_MAX + 1), 0)

"""circom ``.r1cs`` and snarkjs ``.wtns`` binaries equal their JSON exports (vectors, README §1)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flopledger.commands import proofs as proofs_command
from proofs.groth16 import Groth16DecodeError
from proofs.iden3_binary import decode_r1cs_binary, decode_wtns
from proofs.r1cs import decode_r1cs, decode_witness

from ._groth16_helpers import GROTH16_CIRCUITS, GROTH16_PROOF_INDICES, groth16_dir, load_groth16


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
def test_binary_r1cs_equals_json(circuit: str) -> None:
    data = (groth16_dir() / circuit / f"{circuit}.r1cs").read_bytes()
    assert decode_r1cs_binary(data) == decode_r1cs(load_groth16(circuit, f"{circuit}.r1cs.json"))


@pytest.mark.parametrize("circuit", GROTH16_CIRCUITS)
@pytest.mark.parametrize("index", GROTH16_PROOF_INDICES)
def test_wtns_equals_json(circuit: str, index: int) -> None:
    data = (groth16_dir() / circuit / f"witness_{index}.wtns").read_bytes()
    assert decode_wtns(data) == decode_witness(load_groth16(circuit, f"witness_{index}.json"))


@pytest.mark.parametrize("cut", [3, 20, 50, -1])
def test_truncated_binaries_raise_typed_errors(cut: int) -> None:
    folder = groth16_dir() / "sumproduct"
    with pytest.raises(Groth16DecodeError):
        decode_r1cs_binary((folder / "sumproduct.r1cs").read_bytes()[:cut])
    with pytest.raises(Groth16DecodeError):
        decode_wtns((folder / "witness_1.wtns").read_bytes()[:cut])


def test_cli_proves_from_binary_files(tmp_path: Path) -> None:
    folder = groth16_dir() / "sumproduct"
    parser = argparse.ArgumentParser(prog="flopledger")
    proofs_command.register(parser.add_subparsers(dest="command"))
    argv = ["proofs", "groth16-prove", "--r1cs", str(folder / "sumproduct.r1cs")]
    argv += ["--witness", str(folder / "witness_2.wtns"), "--zkey"]
    argv += [str(folder / "sumproduct_final.zkey"), "--out", str(tmp_path)]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    files = [str(folder / "sumproduct_vkey.json")]
    files += [str(tmp_path / "proof.json"), str(tmp_path / "public.json")]
    verify_args = parser.parse_args(["proofs", "groth16-verify", *files])
    assert verify_args.func(verify_args) == 0

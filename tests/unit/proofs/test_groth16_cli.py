"""``flopledger proofs groth16-verify`` / ``groth16-prove``: exit codes, messages, files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from flopledger.commands import proofs as proofs_command

from ._groth16_helpers import groth16_dir


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flopledger")
    proofs_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["proofs", *argv])
    return int(args.func(args))


def _vector(circuit: str, name: str) -> str:
    return str(groth16_dir() / circuit / name)


def test_verify_valid_proof_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(
        [
            "groth16-verify",
            _vector("sumproduct", "sumproduct_vkey.json"),
            _vector("sumproduct", "proof_1.json"),
            _vector("sumproduct", "public_1.json"),
        ]
    )
    assert code == 0
    assert "valid" in capsys.readouterr().out


def test_verify_invalid_proof_exits_1() -> None:
    code = _run(
        [
            "groth16-verify",
            _vector("sumproduct", "sumproduct_vkey.json"),
            _vector("sumproduct", "proof_1.json"),
            _vector("sumproduct", "public_2.json"),
        ]
    )
    assert code == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('["15", "8", "0"]', "public: expected 2 signals, got 3"),
        ("[1, 2", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_verify_malformed_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, message: str
) -> None:
    public = tmp_path / "public.json"
    if isinstance(content, bytes):
        public.write_bytes(content)
    else:
        public.write_text(content)
    code = _run(
        [
            "groth16-verify",
            _vector("sumproduct", "sumproduct_vkey.json"),
            _vector("sumproduct", "proof_1.json"),
            str(public),
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err


def test_verify_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.json")
    assert _run(["groth16-verify", missing, missing, missing]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_prove_with_vector_zkey_then_verify(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = _run(
        [
            "groth16-prove",
            "--r1cs",
            _vector("multiplier", "multiplier.r1cs.json"),
            "--witness",
            _vector("multiplier", "witness_2.json"),
            "--zkey",
            _vector("multiplier", "multiplier_final.zkey"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["proof.json", "public.json"]
    public = json.loads((out / "public.json").read_text())
    assert public == json.loads(Path(_vector("multiplier", "public_2.json")).read_text())
    vkey = _vector("multiplier", "multiplier_vkey.json")
    assert _run(["groth16-verify", vkey, str(out / "proof.json"), str(out / "public.json")]) == 0


def test_prove_with_test_setup_writes_vkey(tmp_path: Path) -> None:
    code = _run(
        [
            "groth16-prove",
            "--r1cs",
            _vector("sumproduct", "sumproduct.r1cs.json"),
            "--witness",
            _vector("sumproduct", "witness_1.json"),
            "--test-setup-seed",
            "42",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    files = [str(tmp_path / n) for n in ("verification_key.json", "proof.json", "public.json")]
    assert _run(["groth16-verify", *files]) == 0


def test_prove_rejects_unsatisfying_witness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    witness = tmp_path / "witness.json"
    witness.write_text('["1", "34", "3", "11"]')
    code = _run(
        [
            "groth16-prove",
            "--r1cs",
            _vector("multiplier", "multiplier.r1cs.json"),
            "--witness",
            str(witness),
            "--test-setup-seed",
            "1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "violates constraint 0" in capsys.readouterr().err


def test_prove_rejects_zkey_of_another_circuit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        [
            "groth16-prove",
            "--r1cs",
            _vector("sumproduct", "sumproduct.r1cs.json"),
            "--witness",
            _vector("sumproduct", "witness_1.json"),
            "--zkey",
            _vector("multiplier", "multiplier_final.zkey"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "key is for 4 wires" in capsys.readouterr().err

"""Helpers for the Groth16, Poseidon, circuit and EIP-197 tests: vector lookup and JSON I/O.

The shared vectors live beside the repository, at ``<repo root>/../shared/testvectors``
(see its README, sections 1 and 4). A missing folder is a broken checkout: the tests fail and
say where they looked, they do not skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
GROTH16_CIRCUITS = ("multiplier", "sumproduct")
GROTH16_PROOF_INDICES = (1, 2)


def testvectors_dir() -> Path:
    """The shared test-vector folder; fails the test with a clear message when absent."""
    path = (REPO_ROOT.parent / "shared" / "testvectors").resolve()
    if not path.is_dir():
        pytest.fail(
            f"shared test vectors not found at {path} (expected <repo root>/../shared/testvectors)",
            pytrace=False,
        )
    return path


def groth16_dir() -> Path:
    """``testvectors/groth16``."""
    return testvectors_dir() / "groth16"


def load_groth16(circuit: str, name: str) -> Any:
    """Parse one JSON file of a Groth16 vector circuit folder."""
    return json.loads((groth16_dir() / circuit / name).read_text(encoding="utf-8"))


def load_eip197(name: str) -> list[dict[str, Any]]:
    """Parse one go-ethereum precompile vector file from ``testvectors/eip197``."""
    data = json.loads((testvectors_dir() / "eip197" / name).read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def zkey_bytes(circuit: str) -> bytes:
    """The snarkjs ``<circuit>_final.zkey`` bytes."""
    return (groth16_dir() / circuit / f"{circuit}_final.zkey").read_bytes()

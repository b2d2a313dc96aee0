"""Invariant and precondition checks raise under ``python -O`` too, and ``domain/`` and
``proofs/`` hold no bare ``assert`` (which ``-O`` strips)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from domain.invariants import InvariantBroken, invariant, present
from proofs.invariants import require

ROOT = Path(__file__).resolve().parents[2]
OPTIMISED_CHECKS = """
import sys
from domain.invariants import InvariantBroken, invariant, present
from proofs.invariants import require
assert False, "the interpreter runs without -O"
for check, error in (
    (lambda: invariant(False, "broken"), InvariantBroken),
    (lambda: present(None, "missing"), InvariantBroken),
    (lambda: require(False, "bad argument"), ValueError),
):
    try:
        check()
    except error:
        continue
    sys.exit(f"{check} did not raise under -O")
print("raised")
"""


def test_the_checks_raise_and_pass_values_through() -> None:
    invariant(True, "holds")
    assert present(0, "zero is present") == 0
    require(True, "fine")
    with pytest.raises(InvariantBroken, match="broken"):
        invariant(False, "broken")
    with pytest.raises(AssertionError):  # a bug crashes like the assert it replaces
        present(None, "missing")
    with pytest.raises(ValueError, match="bad"):
        require(False, "bad")


def test_the_checks_still_raise_under_python_dash_o() -> None:
    done = subprocess.run(
        [sys.executable, "-O", "-c", OPTIMISED_CHECKS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "raised"


def test_domain_and_proofs_hold_no_bare_assert() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for folder in ("domain", "proofs")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert found == []

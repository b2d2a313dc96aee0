"""Invariant checks that hold under ``python -O`` (which strips ``assert`` statements).

A broken invariant is a bug, not a rejection: it raises ``InvariantBroken`` (an
``AssertionError``, so it crashes loudly like the ``assert`` it replaces). ``proofs`` has its
counterpart for callers' preconditions (``proofs/invariants.py``); it imports nothing of ours.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class InvariantBroken(AssertionError):
    """Code reached a state its own rules exclude."""


def invariant(condition: bool, message: str) -> None:
    """Raise InvariantBroken with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InvariantBroken(message)


def present(value: T | None, message: str) -> T:
    """``value``, which the caller's invariant says is not None (narrows the type)."""
    if value is None:
        raise InvariantBroken(message)
    return value

"""Precondition checks that hold under ``python -O`` (which strips ``assert`` statements).

``require`` guards a caller's arguments (a size, a length): breaking one is a caller's bug,
raised as ``ValueError``. ``domain/invariants.py`` is the domain's counterpart (``proofs``
imports nothing of ours, so they do not share code).
"""

from __future__ import annotations


def require(condition: bool, message: str) -> None:
    """Raise ValueError with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)

"""Locate the shared external test vectors (see /work/shared/testvectors/README.md).

The vectors live beside the repository, at ``<repo root>/../shared/testvectors``. A missing
folder is a broken checkout, not a reason to skip: the tests fail and say where they looked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[3]


def testvectors_dir() -> Path:
    """Return the shared test-vector folder; raise with a clear message if it is absent."""
    path = (_REPO_ROOT / ".." / "shared" / "testvectors").resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"shared test vectors not found at {path} (expected <repo root>/../shared/testvectors);"
            " these tests need them and do not skip"
        )
    return path


def load_json(*parts: str) -> Any:
    """Load one JSON vector file, given its path relative to the vector folder."""
    return json.loads(testvectors_dir().joinpath(*parts).read_text(encoding="utf-8"))


def vector_files(*parts: str) -> list[Path]:
    """Every ``*.json`` file of one vector folder, in name order (never empty)."""
    folder = testvectors_dir().joinpath(*parts)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no vector files in {folder}")
    return files

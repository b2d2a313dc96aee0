"""Key files in one adapter (``adapters.keyfile``): created 0600 and never overwritten unless
asked, read back as the same identity, malformed files refused naming the file, the log key
created once and then reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters.keyfile import (
    KEY_SEED_BYTES,
    KeyFileError,
    get_log_key_path,
    load_bls_secret,
    load_identity,
    load_or_create_identity,
    read_key_seed,
    write_key_file,
)
from proofs import bls


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_key_file_is_owner_only_and_reads_back_as_its_id(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    key_id = write_key_file(path)
    assert _mode(path) == 0o600
    assert load_identity(path).id == key_id
    assert len(read_key_seed(path)) == KEY_SEED_BYTES


def test_an_existing_file_is_kept_unless_forced_and_forcing_resets_its_mode(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.key"
    key_id = write_key_file(path)
    with pytest.raises(FileExistsError):
        write_key_file(path)
    assert load_identity(path).id == key_id
    path.chmod(0o644)
    assert write_key_file(path, force=True) != key_id
    assert _mode(path) == 0o600


@pytest.mark.parametrize(
    "text", ["not hex", "ab" * (KEY_SEED_BYTES - 1), "ab" * (KEY_SEED_BYTES + 1), ""]
)
def test_a_malformed_key_file_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text + "\n")
    with pytest.raises(KeyFileError, match=r"bad\.key"):
        load_identity(path)


def test_the_log_key_is_created_once_then_reused(tmp_path: Path) -> None:
    path = get_log_key_path(tmp_path / "data", None)
    assert path == tmp_path / "data" / "log_key.hex"
    first = load_or_create_identity(path)
    assert _mode(path) == 0o600
    assert load_or_create_identity(path).id == first.id
    assert get_log_key_path(tmp_path, tmp_path / "elsewhere.hex") == tmp_path / "elsewhere.hex"


def test_a_bls_key_file_gives_the_keygen_secret_of_its_seed(tmp_path: Path) -> None:
    path = tmp_path / "v.bls"
    write_key_file(path)
    assert load_bls_secret(path) == bls.key_gen(read_key_seed(path))

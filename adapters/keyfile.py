"""Key files: a 32-byte seed in hex on one line, readable by its owner only (mode 0600).

Every key a process holds is read (and, where the process may create it, written) here:
the ``--key`` file of a consumer, node or validator (Ed25519), the log key that signs tree
heads and operator commands (``FLOP_LOG_KEY_FILE``, created on first use), the deposit
authority's key the gateway credits deposits with (``FLOP_DEPOSIT_AUTHORITY_KEY_FILE``), the
treasury keypair's seed of the bridge, and a validator's BLS seed (``--bls-key``). A file is created
with ``O_EXCL`` (or truncated only when asked) and mode 0600 set on the open descriptor, so
a seed is never readable by others, not even for a moment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proofs import bls
from proofs.identity import Identity

KEY_SEED_BYTES = 32
KEY_FILE_MODE = 0o600
LOG_KEY_FILE_NAME = "log_key.hex"
"""The log key's file under the data directory when ``FLOP_LOG_KEY_FILE`` is unset."""
DEPOSIT_AUTHORITY_KEY_FILE_NAME = "deposit_authority_key.hex"
"""The deposit authority's file under the data directory when
``FLOP_DEPOSIT_AUTHORITY_KEY_FILE`` is unset (issue 16, item 5)."""
TREASURY_KEY_FILE_NAME = "treasury_key.hex"
"""The treasury keypair's seed under the data directory when ``--treasury-key`` is unset."""


class KeyFileError(ValueError):
    """A key file that cannot be read as a 32-byte hex seed (names the file)."""


def generate_key_seed() -> str:
    """A new 32-byte seed in hex, the format of every key file."""
    return secrets.token_bytes(KEY_SEED_BYTES).hex()


def write_key_file(path: Path, *, force: bool = False) -> str:
    """Create ``path`` with a fresh seed (mode 0600); ``force`` overwrites an existing file.

    Returns the Ed25519 id of the seed (the same seed serves as a BLS seed); FileExistsError
    when the file exists and ``force`` is not set.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, KEY_FILE_MODE)
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # an existing file keeps its mode under O_TRUNC
        os.write(fd, (generate_key_seed() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return load_identity(path).id


def read_key_seed(path: Path | str) -> bytes:
    """The 32-byte seed stored hex in ``path``; KeyFileError when it is not one."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read().strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError as exc:
        raise KeyFileError(
            f"{path}: expected {2 * KEY_SEED_BYTES} hex characters (a {KEY_SEED_BYTES}-byte seed)"
        ) from exc
    if len(seed) != KEY_SEED_BYTES:
        raise KeyFileError(f"{path}: expected a {KEY_SEED_BYTES}-byte seed, got {len(seed)}")
    return seed


def load_identity(path: Path | str) -> Identity:
    """The Ed25519 identity whose seed is stored in ``path``."""
    return Identity.from_seed(read_key_seed(path))


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path``, created (with its folder) if absent: the log key, the
    treasury seed."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # another process may create it first: then read theirs
        with contextlib.suppress(FileExistsError):
            write_key_file(path)
    return Ed25519PrivateKey.from_private_bytes(read_key_seed(path))


def load_or_create_identity(path: Path) -> Identity:
    """``load_or_create_key`` as an Identity (the signer of operator commands)."""
    return Identity(load_or_create_key(path))


def get_log_key_path(data_dir: Path, log_key_file: Path | None) -> Path:
    """``FLOP_LOG_KEY_FILE`` when set, else ``<data dir>/log_key.hex``."""
    return log_key_file or data_dir / LOG_KEY_FILE_NAME


def get_deposit_authority_key_path(data_dir: Path, key_file: Path | None) -> Path:
    """``FLOP_DEPOSIT_AUTHORITY_KEY_FILE`` when set, else ``<data dir>/deposit_authority_key.hex``:
    the key the gateway credits deposits with (issue 16, item 5)."""
    return key_file or data_dir / DEPOSIT_AUTHORITY_KEY_FILE_NAME


def load_bls_secret(path: Path) -> int:
    """The BLS secret derived (KeyGen, draft-irtf-cfrg-bls-signature-05 §2.3) from the
    32-byte hex seed in ``path``."""
    return bls.key_gen(read_key_seed(path))

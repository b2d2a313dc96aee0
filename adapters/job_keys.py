"""A consumer's job data keys, kept on its own machine: ``<data dir>/keys/<job_id>.key``.

``flopledger job submit`` draws a fresh 32-byte data key for a private job, seals the job's
inputs under it (``proofs.sealed_object``) and saves it here under the job's id before the
job is posted, so that the key is never lost once the job exists; ``flopledger job
release-key`` loads it to wrap it to the node that claimed the job. The file holds the key in
hex on one line, readable by its owner only (mode 0600, in a 0700 folder), like the key files
of ``adapters.keyfile``: whoever reads it reads the job's inputs. The key never leaves the
machine in clear; the ledger records it only wrapped to a recipient's registered key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

JOB_KEYS_DIR_NAME = "keys"
JOB_KEY_SUFFIX = ".key"
JOB_KEY_BYTES = 32
JOB_KEY_FILE_MODE = 0o600
JOB_KEYS_DIR_MODE = 0o700
_JOB_ID = re.compile(r"^[a-z0-9-]{1,64}$")  # domain.commands.JobId: no path separators


class JobKeyError(ValueError):
    """A job key file that is missing, malformed, or would be overwritten with another key."""


def get_job_key_path(data_dir: Path, job_id: str) -> Path:
    """Where the data key of ``job_id`` is kept."""
    if not _JOB_ID.match(job_id):
        raise JobKeyError(f"{job_id!r} is not a job id")
    return data_dir / JOB_KEYS_DIR_NAME / f"{job_id}{JOB_KEY_SUFFIX}"


def save_job_key(data_dir: Path, job_id: str, data_key: bytes) -> Path:
    """Write the key (mode 0600, never readable by others); saving the same key again is a
    no-op, another key for the same job is refused (it would orphan the sealed inputs)."""
    if len(data_key) != JOB_KEY_BYTES:
        raise JobKeyError(f"a job data key is {JOB_KEY_BYTES} bytes")
    path = get_job_key_path(data_dir, job_id)
    path.parent.mkdir(mode=JOB_KEYS_DIR_MODE, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, JOB_KEY_FILE_MODE)
    except FileExistsError:
        if load_job_key(data_dir, job_id) != data_key:
            raise JobKeyError(f"{path} holds another key for {job_id}") from None
        return path
    try:
        os.fchmod(fd, JOB_KEY_FILE_MODE)
        os.write(fd, (data_key.hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def load_job_key(data_dir: Path, job_id: str) -> bytes:
    """The data key of ``job_id``; JobKeyError naming the file when it is absent or bad."""
    path = get_job_key_path(data_dir, job_id)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise JobKeyError(f"no data key for {job_id} at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobKeyError(f"cannot read {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != JOB_KEY_BYTES:
        raise JobKeyError(f"{path} does not hold a {JOB_KEY_BYTES}-byte key in hex")
    return key

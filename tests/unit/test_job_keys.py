"""A consumer's job data keys on disk (``adapters.job_keys``): ``<data dir>/keys/<job_id>.key``."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters.job_keys import JobKeyError, get_job_key_path, load_job_key, save_job_key

KEY = bytes(range(32))


def test_save_then_load_with_owner_only_modes(tmp_path: Path) -> None:
    path = save_job_key(tmp_path, "job-1", KEY)
    assert path == tmp_path / "keys" / "job-1.key"
    assert load_job_key(tmp_path, "job-1") == KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == KEY.hex() + "\n"


def test_saving_the_same_key_again_is_a_no_op_and_another_is_refused(tmp_path: Path) -> None:
    save_job_key(tmp_path, "job-1", KEY)
    save_job_key(tmp_path, "job-1", KEY)
    with pytest.raises(JobKeyError, match="another key"):
        save_job_key(tmp_path, "job-1", bytes(32))
    assert load_job_key(tmp_path, "job-1") == KEY


@pytest.mark.parametrize("job_id", ["../escape", "job/1", "", "JOB-1", "j" * 65])
def test_a_job_id_that_is_no_job_id_names_no_file(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(JobKeyError):
        get_job_key_path(tmp_path, job_id)


def test_missing_or_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(JobKeyError, match="no data key for job-2"):
        load_job_key(tmp_path, "job-2")
    path = get_job_key_path(tmp_path, "job-2")
    path.parent.mkdir(parents=True)
    for text in ("zz", KEY.hex()[:-2], KEY.hex() + "00"):
        path.write_text(text)
        with pytest.raises(JobKeyError, match="does not hold a 32-byte key"):
            load_job_key(tmp_path, "job-2")


def test_a_key_of_the_wrong_size_is_not_saved(tmp_path: Path) -> None:
    with pytest.raises(JobKeyError):
        save_job_key(tmp_path, "job-3", b"short")
    assert not get_job_key_path(tmp_path, "job-3").exists()

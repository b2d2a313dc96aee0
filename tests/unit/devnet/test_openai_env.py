"""``<devnet>/openai.env`` (issue 18, item 5): unquoted ``KEY=value`` lines that a shell and
the official ``openai`` client read as written, mode 0600, written atomically (a reader sees
the old file or the new one whole; a failed write leaves the old one and no temporary file),
and values that would need quoting refused; ``flopledger devnet status`` names the file."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from flopledger.devnet import completions
from flopledger.devnet.completions import read_env_file, write_openai_env
from flopledger.devnet.status import print_status
from flopledger.devnet.supervisor import STATUS_FILE

BASE_URL = "http://127.0.0.1:43117/v1"
API_KEY = "flk_" + "ab" * 32


def test_the_file_is_two_unquoted_lines_a_shell_reads_as_written(tmp_path: Path) -> None:
    path = write_openai_env(tmp_path / "openai.env", BASE_URL, API_KEY)
    assert path.read_text() == f"OPENAI_BASE_URL={BASE_URL}\nOPENAI_API_KEY={API_KEY}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    script = 'set -a; . "$1"; printf "%s\\n%s" "$OPENAI_BASE_URL" "$OPENAI_API_KEY"'
    shell = subprocess.run(
        ["sh", "-c", script, "sh", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert shell.stdout.splitlines() == [BASE_URL, API_KEY]
    assert read_env_file(path) == {"OPENAI_BASE_URL": BASE_URL, "OPENAI_API_KEY": API_KEY}
    assert [p.name for p in tmp_path.iterdir()] == ["openai.env"]  # no temporary left


def test_the_openai_client_is_configured_from_the_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai = pytest.importorskip("openai")
    path = write_openai_env(tmp_path / "openai.env", BASE_URL, API_KEY)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in read_env_file(path).items():
        monkeypatch.setenv(name, value)
    client = openai.OpenAI()
    assert str(client.base_url).rstrip("/") == BASE_URL and client.api_key == API_KEY


def test_a_rewrite_replaces_the_file_whole(tmp_path: Path) -> None:
    path = write_openai_env(tmp_path / "openai.env", BASE_URL, API_KEY)
    with path.open() as earlier_reader:
        write_openai_env(path, "http://127.0.0.1:9/v1", "flk_" + "cd" * 32)
        assert earlier_reader.read() == f"OPENAI_BASE_URL={BASE_URL}\nOPENAI_API_KEY={API_KEY}\n"
    assert read_env_file(path)["OPENAI_API_KEY"] == "flk_" + "cd" * 32


def test_the_file_appears_only_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the rename the target still holds the old text and the temporary the whole new one."""
    path = write_openai_env(tmp_path / "openai.env", BASE_URL, API_KEY)
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def watching_replace(source: str, target: Path) -> None:
        seen.append((Path(target).read_text(), Path(source).read_text()))
        real_replace(source, target)

    monkeypatch.setattr(completions.os, "replace", watching_replace)
    write_openai_env(path, "http://127.0.0.1:9/v1", API_KEY)
    old = f"OPENAI_BASE_URL={BASE_URL}\nOPENAI_API_KEY={API_KEY}\n"
    assert seen == [(old, f"OPENAI_BASE_URL=http://127.0.0.1:9/v1\nOPENAI_API_KEY={API_KEY}\n")]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_openai_env(tmp_path / "openai.env", BASE_URL, API_KEY)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(completions.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_openai_env(path, "http://127.0.0.1:9/v1", "flk_" + "cd" * 32)
    assert read_env_file(path) == {"OPENAI_BASE_URL": BASE_URL, "OPENAI_API_KEY": API_KEY}
    assert [p.name for p in tmp_path.iterdir()] == ["openai.env"]


@pytest.mark.parametrize(
    ("base_url", "api_key"),
    [
        ("http://127.0.0.1:8080", API_KEY),  # not ending in /v1
        ("http://127.0.0.1:8080/v1/", API_KEY),
        (BASE_URL, ""),
        (BASE_URL, "flk_a b"),
        (BASE_URL, "flk_a\nOPENAI_BASE_URL=http://evil/v1"),
        (BASE_URL, 'flk_"a"'),
        (BASE_URL, "flk_$HOME"),
        (BASE_URL, "flk_#a"),
    ],
)
def test_values_that_would_need_quoting_are_refused_and_nothing_written(
    tmp_path: Path, base_url: str, api_key: str
) -> None:
    with pytest.raises(ValueError):
        write_openai_env(tmp_path / "openai.env", base_url, api_key)
    assert list(tmp_path.iterdir()) == []


def test_the_status_names_the_file(tmp_path: Path) -> None:
    env_file = str(tmp_path / "openai.env")
    status = {
        "supervisor_pid": 2**22 + 1,
        "stopped": True,
        "processes": [],
        "openai_env": env_file,
        "openai_base_url": BASE_URL,
    }
    (tmp_path / STATUS_FILE).write_text(json.dumps(status))
    out = io.StringIO()
    print_status(tmp_path, Console(file=out, width=300))
    assert f"OpenAI-compatible endpoint {BASE_URL}  settings {env_file}" in out.getvalue()

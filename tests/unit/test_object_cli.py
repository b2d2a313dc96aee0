"""``flopledger object``: bad arguments exit 2 and an unreachable API exits 1, each with one
line on stderr and nothing on stdout (the round trip runs through ``flopledger serve`` in
tests/integration/api/test_objects_serve.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flopledger.cli import main
from tests.serve_process import free_port

DIGEST = "ab" * 32


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["object", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    "args",
    [
        ("get", "not-a-digest", "--out", "x.bin"),
        ("get", DIGEST.upper(), "--out", "x.bin"),
        ("get", DIGEST, "--out", "/no/such/dir/x.bin"),
        ("put", "/no/such/file.npy", "--key", "k.key"),
    ],
)
def test_bad_arguments_exit_2_in_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    status, out, err = _run(capsys, *args)
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"flopledger object {args[0]}:")


def test_a_bad_key_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data, key = tmp_path / "a.bin", tmp_path / "bad.key"
    data.write_bytes(b"x")
    key.write_text("not hex\n")
    status, out, err = _run(capsys, "put", str(data), "--key", str(key))
    assert (status, out) == (2, "")
    assert err.startswith("flopledger object put: --key")


def test_an_unreachable_api_exits_1_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    api = f"http://127.0.0.1:{free_port()}"
    status, out, err = _run(capsys, "get", DIGEST, "--out", str(tmp_path / "x"), "--api", api)
    assert (status, out) == (1, "")
    assert err.strip().splitlines() == [err.strip()]
    assert "the API did not answer" in err
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left

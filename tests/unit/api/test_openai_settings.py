"""The API's completion signer (issue 18): ``FLOP_COMPLETION_KEY_FILE`` or ``serve
--completion-key``; read at start-up (a file that is no key stops ``serve`` with a line
naming the variable); unset, the completion routes answer 503 and the rest is served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.keyfile import write_key_file
from api.bootstrap import build_llm_serving
from flopledger import cli
from flopledger.commands import serve
from flopledger.settings import Settings, SettingsError, get_settings, load_settings


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("FLOP_COMPLETION_KEY_FILE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_completion_key_file_is_a_setting(tmp_path: Path) -> None:
    assert load_settings({}).completion_key_file is None
    settings = load_settings({"FLOP_COMPLETION_KEY_FILE": str(tmp_path / "signer.hex")})
    assert settings.completion_key_file == tmp_path / "signer.hex"


def test_the_signer_is_the_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "signer.hex"
    signer_id = write_key_file(path)
    serving = build_llm_serving(Settings(completion_key_file=path))
    assert serving.signer is not None and serving.signer.id == signer_id
    assert build_llm_serving(Settings()).signer is None


def test_serve_refuses_a_completion_key_it_cannot_read(tmp_path: Path) -> None:
    missing = Settings(completion_key_file=tmp_path / "absent.hex")
    with pytest.raises(SettingsError, match="FLOP_COMPLETION_KEY_FILE"):
        serve.check_completion_key(missing)
    garbled = tmp_path / "garbled.hex"
    garbled.write_text("not a seed\n")
    with pytest.raises(SettingsError, match=r"garbled\.hex"):
        serve.check_completion_key(Settings(completion_key_file=garbled))
    serve.check_completion_key(Settings())  # none: completions off, nothing to read


def test_the_serve_flag_becomes_the_setting_every_worker_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    path = tmp_path / "signer.hex"
    write_key_file(path)
    seen: list[object] = []
    monkeypatch.setattr(serve, "run", lambda args: seen.append(args.completion_key) or 0)
    assert cli.main(["serve", "--completion-key", str(path)]) == 0
    assert [str(p) for p in seen] == [str(path)]
    settings = serve.apply_completion_key(path)
    assert settings.completion_key_file == path
    assert get_settings().completion_key_file == path  # what the app factory will read

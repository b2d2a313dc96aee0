"""The agent's completion service settings and start-up: what it serves, and what it refuses."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

pytest.importorskip("transformers")

from adapters.compute import llm_catalog
from flopledger.commands import agent as agent_command
from node_agent.config import LLM_CAPACITY_MAX, SERVED_MODELS_MAX, AgentConfig, parse_listen
from node_agent.llm_serving import LlmService, ServeModelError
from tests.llm_node_fakes import FakeCompletionLedger

NODE_ID = "e" * 64


def _config(tmp_path: Path, **fields: Any) -> AgentConfig:
    base = {"region": "eu-west", "price": 1, "api_url": "http://api", "state_dir": tmp_path}
    return msgspec.convert(base | fields, AgentConfig)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8100") == ("127.0.0.1", 8100)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("node.example:65535") == ("node.example", 65535)
    for bad in ("8100", ":8100", "host:", "host:65536", "host:-1", "host:http"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_listen(bad)


def test_serving_settings_are_checked_at_start(tmp_path: Path) -> None:
    listen = {"llm_listen": "127.0.0.1:0"}
    assert _config(tmp_path, serve_models=["tiny-llama-0"], **listen).serve_models == (
        "tiny-llama-0",
    )
    assert _config(tmp_path, llm_capacity=LLM_CAPACITY_MAX, **listen).llm_capacity == 64
    models = [f"tiny-llama-{i}" for i in range(SERVED_MODELS_MAX)]
    assert len(_config(tmp_path, serve_models=models, **listen).serve_models) == 16
    refused: list[dict[str, Any]] = [
        {"serve_models": ["tiny-llama-0"]},  # no --llm-listen
        {"serve_models": ["tiny-llama-0", "tiny-llama-0"], **listen},
        {"serve_models": [*models, "tiny-llama-99"], **listen},
        {"llm_capacity": 0, **listen},
        {"llm_capacity": LLM_CAPACITY_MAX + 1, **listen},
        {"llm_listen": "localhost"},
        {"llm_endpoint": "node:8100", **listen},
    ]
    for fields in refused:
        with pytest.raises(msgspec.ValidationError):
            _config(tmp_path, **fields)


def test_the_agent_command_takes_the_serving_flags() -> None:
    parser = argparse.ArgumentParser()
    agent_command.register(parser.add_subparsers())
    args = parser.parse_args(
        ["agent", "--key", "k", "--region", "eu-west", "--price", "1",
         "--serve-model", "smollm2-135m-instruct", "--serve-model", "tiny-llama-0",
         "--llm-listen", "0.0.0.0:8100", "--llm-capacity", "4",
         "--llm-endpoint", "http://node.example:8100"]
    )  # fmt: skip
    assert args.serve_model == ["smollm2-135m-instruct", "tiny-llama-0"]
    assert (args.llm_listen, args.llm_capacity) == ("0.0.0.0:8100", 4)
    assert args.llm_endpoint == "http://node.example:8100"


async def test_a_model_is_served_only_under_its_registered_digest(tmp_path: Path) -> None:
    config = _config(tmp_path, serve_models=["tiny-llama-0"], llm_listen="127.0.0.1:0")
    ledger = FakeCompletionLedger()
    digest = llm_catalog.compute_model_digest(llm_catalog.load_model("tiny-llama-0"))
    stop = asyncio.Event()
    with pytest.raises(ServeModelError, match="not registered"):
        await LlmService.prepare(config, node_id=NODE_ID, ledger=ledger, stop=stop)
    ledger.registered["tiny-llama-0"] = bytes(32)
    with pytest.raises(ServeModelError, match="not the registered one"):
        await LlmService.prepare(config, node_id=NODE_ID, ledger=ledger, stop=stop)
    ledger.registered["tiny-llama-0"] = digest
    service = await LlmService.prepare(config, node_id=NODE_ID, ledger=ledger, stop=stop)
    assert service is not None and service.advertised == [("tiny-llama-0", 1)]


async def test_a_model_the_catalog_does_not_know_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, serve_models=["gpt-4"], llm_listen="127.0.0.1:0")
    ledger = FakeCompletionLedger()
    ledger.registered["gpt-4"] = bytes(32)
    with pytest.raises(ServeModelError, match="gpt-4"):
        await LlmService.prepare(config, node_id=NODE_ID, ledger=ledger, stop=asyncio.Event())


async def test_start_up_waits_out_an_outage_until_stopped(tmp_path: Path) -> None:
    config = _config(tmp_path, serve_models=["tiny-llama-0"], llm_listen="127.0.0.1:0")
    ledger = FakeCompletionLedger()
    ledger.down = True
    stop = asyncio.Event()
    preparing = asyncio.create_task(
        LlmService.prepare(config, node_id=NODE_ID, ledger=ledger, stop=stop)
    )
    await asyncio.sleep(0.2)
    assert not preparing.done()
    stop.set()
    assert await asyncio.wait_for(preparing, 10) is None

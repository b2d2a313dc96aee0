"""The devnet consumer's first LLM completion, and the OpenAI client settings it leaves
(issue 18, item 5).

Once every node holds SmolLM2 warm, the consumer delegates a key to the API
(``apikey.create``: the ledger records its hash and a spend limit, ``KEY_SHARE_OF_DEPOSIT``
of the consumer's deposit), asks the OpenAI-compatible endpoint one question with nothing but
HTTP and the bearer key (httpx: what any OpenAI client sends), and reads the ledger's record
of the answer (the node that served it, the tokens counted, the charge). Only then, with a
completion known to work, it writes ``<devnet>/openai.env`` (``write_openai_env``: unquoted
``KEY=value`` lines, ``OPENAI_BASE_URL`` ending in ``/v1`` and ``OPENAI_API_KEY``, written to
a temporary file in the same folder and renamed over the old one, so a reader sees the whole
file or none; mode 0600: the key spends the consumer's money). The official ``openai`` client
and curl then work with that file alone (``set -a; . openai.env``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapters.ledger_api.client import ApiClient
from domain.api_keys import compute_api_key_hash, compute_api_key_id
from domain.commands import CreateApiKey
from flopledger.commands.apikey import generate_secret_key
from proofs.identity import Identity

COMPLETION_FINAL_STATES = frozenset({"cleared", "verified", "rejected", "aborted"})
"""A completion's ledger states after which nothing more happens to it."""
OPENAI_ENV_FILE = "openai.env"
OPENAI_ENV_MODE = 0o600
KEY_SHARE_OF_DEPOSIT = 4
"""The delegated key may spend a quarter of the consumer's deposit (the rest is its jobs')."""
QUESTION = "What is the capital of France?"
SAMPLE_MAX_TOKENS = 48
COMPLETION_TIMEOUT_S = 300.0
"""One completion on a busy CPU (SmolLM2 generates about 10 tokens/s on two shared cores)."""
UNAVAILABLE_WAIT_S = 120.0
"""How long a 503 (no node free for the model yet) is retried."""
UNAVAILABLE_RETRY_S = 2.0


class CompletionFailed(RuntimeError):
    """The endpoint answered the first completion with an error (the message quotes it)."""


@dataclass(frozen=True)
class SampleCompletion:
    """The first completion: what was asked, what came back, and the ledger's record of it."""

    question: str
    answer: str
    completion_id: str
    node_id: str
    prompt_tokens: int
    completion_tokens: int
    charge: int
    state: str


def create_consumer_key(api_url: str, consumer: Identity, spend_limit: int) -> tuple[str, str]:
    """Delegate a fresh bearer key under ``consumer``'s signature; (secret key, key id)."""
    secret = generate_secret_key()
    key_hash = compute_api_key_hash(secret)
    key_id = compute_api_key_id(key_hash)
    client = ApiClient(api_url, identity=consumer)
    try:
        client.send(CreateApiKey(key_id=key_id, key_hash=key_hash, spend_limit=spend_limit))
    finally:
        client.close()
    return secret, key_id


def ask_first_completion(
    api_url: str, api_key: str, model_id: str, question: str = QUESTION
) -> SampleCompletion:
    """One greedy chat completion through ``POST /v1/chat/completions``, then its ledger
    record; ``CompletionFailed`` with the endpoint's error otherwise."""
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": SAMPLE_MAX_TOKENS,
        "temperature": 0,
    }
    answer = _post_completion(f"{api_url}/v1/chat/completions", api_key, body)
    completion_id = str(answer["id"])
    client = ApiClient(api_url)
    try:
        record = client.get_completion_record(completion_id)
    finally:
        client.close()
    return SampleCompletion(
        question=question,
        answer=str(answer["choices"][0]["message"]["content"]),
        completion_id=completion_id,
        node_id=record.node_id,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        charge=record.charge,
        state=record.state,
    )


def format_openai_env(base_url: str, api_key: str) -> str:
    """The file's text: unquoted ``KEY=value`` lines (a shell, ``python-dotenv`` and
    ``docker --env-file`` read them alike); a value holding whitespace, a quote or ``#``
    would need quoting, so it is refused."""
    if not base_url.endswith("/v1"):
        raise ValueError(f"OPENAI_BASE_URL must end in /v1, not {base_url!r}")
    for name, value in (("OPENAI_BASE_URL", base_url), ("OPENAI_API_KEY", api_key)):
        if not value or any(ch.isspace() or ch in "\"'#$`\\" for ch in value):
            raise ValueError(f"{name} cannot be written unquoted: {value!r}")
    return f"OPENAI_BASE_URL={base_url}\nOPENAI_API_KEY={api_key}\n"


def write_openai_env(path: Path, base_url: str, api_key: str) -> Path:
    """Write ``path`` atomically: a temporary file beside it (mode 0600), flushed to disk,
    renamed over ``path``. A reader sees the old file, or the new one whole."""
    text = format_openai_env(base_url, api_key)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="ascii") as file:
            os.fchmod(file.fileno(), OPENAI_ENV_MODE)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of an env file (blank lines and ``#`` comments skipped)."""
    pairs: dict[str, str] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


def _post_completion(url: str, api_key: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST until an answer that is not a 503 (no node free yet), within ``UNAVAILABLE_WAIT_S``."""
    deadline = time.monotonic() + UNAVAILABLE_WAIT_S
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(timeout=COMPLETION_TIMEOUT_S) as http:
        while True:
            response = http.post(url, json=body, headers=headers)
            if response.status_code == httpx.codes.OK:
                answer: dict[str, Any] = response.json()
                return answer
            unavailable = response.status_code == httpx.codes.SERVICE_UNAVAILABLE
            if not unavailable or time.monotonic() > deadline:
                raise CompletionFailed(
                    f"POST {url}: HTTP {response.status_code}: {_error_message(response)}"
                )
            time.sleep(UNAVAILABLE_RETRY_S)


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error.get('code')}: {error.get('message')}"
    except (ValueError, KeyError, TypeError):
        return response.text[:500]

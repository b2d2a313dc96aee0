"""Streaming generation of one completion: token ids as they come, hidden states at the end.

The node serves a completion with ``generate_stream``: the same forward passes as
``llm_toploc.generate`` for a batch of one (so a greedy completion and its TOPLOC proof are
the same whichever path made them), but each token is yielded as soon as it is sampled, and
generation stops at the first of: EOS, a stop string, ``max_tokens``, or the cancel flag
(checked before every forward pass: a client that hangs up costs at most one more step).
The generator's return value is a ``StreamResult`` holding the ``llm_toploc.Completion``
whose hidden states cover exactly the tokens yielded.

Stop strings follow OpenAI's semantics: the text sent never contains the stop string. Text
that may be the start of one is held back until it is not; the token that completes a stop
string is still part of the completion (it was generated, and the proof covers it).
Sampling: temperature 0 is greedy (argmax); otherwise softmax(logits / temperature), cut to
the smallest set of tokens whose probability reaches ``top_p`` (nucleus sampling), drawn
with a generator seeded by ``seed``; with ``top_p`` = 1 the draw is ``llm_toploc.generate``'s.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapters.compute.llm_model import LoadedModel
from adapters.compute.llm_prompts import TextDecoder
from adapters.compute.llm_toploc import MAX_NEW_TOKENS_MAX, Completion
from proofs.llm_request import LlmRequest

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """How the tokens are chosen and when generation stops."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    @classmethod
    def from_request(cls, request: LlmRequest) -> Sampling:
        return cls(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            stop=tuple(request.stop),
        )


@dataclass(frozen=True)
class StreamedToken:
    """One generated token and the text it releases (maybe "": held back or special)."""

    token_id: int
    text: str


@dataclass(frozen=True)
class StreamResult:
    """The completion as generated, why it ended, and whether the cancel flag ended it."""

    completion: Completion
    finish_reason: FinishReason
    cancelled: bool


def generate_stream(
    loaded: LoadedModel,
    prompt_ids: Sequence[int],
    sampling: Sampling,
    cancel: threading.Event | None = None,
) -> Generator[StreamedToken, None, StreamResult]:
    """Yield the completion's tokens one by one; return its ``StreamResult``.

    A cancelled completion ends with finish reason "length" and may have no token (cancelled
    before the first): it is the caller's to decide whether such a completion is committed.
    """
    _check_bounds(loaded, prompt_ids, sampling)
    cancel = cancel or threading.Event()
    model, device = loaded.model, loaded.model.device
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    mask = torch.ones_like(input_ids)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    out = _forward(model, input_ids, mask, positions, cache)
    states: list[torch.Tensor] = [out[0]]
    last = out[0, -1:]
    tokens: list[int] = []
    text = _StopText(TextDecoder(loaded), sampling.stop)
    finish: FinishReason = "length"
    cancelled = cancel.is_set()
    while not cancelled:
        token_id = _sample(model, last, sampling, generator)
        tokens.append(token_id)
        piece, stopped = text.push(token_id)
        is_eos = token_id == loaded.eos_token_id
        finish = "stop" if stopped or is_eos else "length"
        is_last = stopped or is_eos or len(tokens) == sampling.max_tokens or cancel.is_set()
        yield StreamedToken(token_id, piece + (text.flush() if is_last and not stopped else ""))
        if stopped or is_eos or len(tokens) == sampling.max_tokens:
            break
        cancelled = cancel.is_set()
        if not cancelled:
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            chosen = torch.tensor([[token_id]], dtype=torch.long, device=device)
            last = _forward(model, chosen, mask, positions, cache)[0, -1:]
            states.append(last)
    completion = Completion(
        prompt_ids=tuple(prompt_ids),
        token_ids=tuple(tokens),
        hidden=_hidden_rows(states, len(prompt_ids) + len(tokens) - 1),
    )
    return StreamResult(completion=completion, finish_reason=finish, cancelled=cancelled)


def collect_stream(
    stream: Generator[StreamedToken, None, StreamResult],
) -> tuple[list[StreamedToken], StreamResult]:
    """Run a stream to its end: every token and the result (tests, benchmarks)."""
    tokens: list[StreamedToken] = []
    while True:
        try:
            tokens.append(next(stream))
        except StopIteration as end:
            return tokens, end.value


def _check_bounds(loaded: LoadedModel, prompt_ids: Sequence[int], sampling: Sampling) -> None:
    if not prompt_ids:
        raise ValueError("a prompt needs at least one token")
    if not 1 <= sampling.max_tokens <= MAX_NEW_TOKENS_MAX:
        raise ValueError(f"max_tokens must be in [1, {MAX_NEW_TOKENS_MAX}]")
    if len(prompt_ids) + sampling.max_tokens > loaded.context_tokens:
        raise ValueError(f"prompt + max_tokens exceed the context of {loaded.context_tokens}")
    if not 0.0 < sampling.top_p <= 1.0 or sampling.temperature < 0.0:
        raise ValueError("top_p must be in (0, 1] and temperature >= 0")


def _forward(
    model: Any,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    cache: Any,
) -> torch.Tensor:
    # Only around the pass: inference mode is thread state, and a generator yields between.
    with torch.inference_mode():
        out = model.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions,
            cache=cache, use_cache=True,
        )  # fmt: skip
    hidden: torch.Tensor = out.last_hidden_state
    return hidden


def _sample(model: Any, last: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    with torch.inference_mode():
        logits = model.lm_head(last).float()
        if sampling.temperature <= 0.0:
            return int(logits.argmax(dim=-1)[0])
        probabilities = torch.softmax(logits / sampling.temperature, dim=-1)
        if sampling.top_p >= 1.0:
            return int(torch.multinomial(probabilities, 1, generator=generator)[0, 0])
        ordered, order = probabilities.sort(dim=-1, descending=True)
        # Keep a token while the mass before it is below top_p: the first one always stays.
        ordered = ordered.masked_fill(ordered.cumsum(dim=-1) - ordered >= sampling.top_p, 0.0)
        pick = torch.multinomial(ordered / ordered.sum(), 1, generator=generator)
        return int(order[0, int(pick[0, 0])])


def _hidden_rows(states: list[torch.Tensor], rows: int) -> np.ndarray:
    """Positions 0..P+N-2: the prefill's P rows and one per decode step (the last token never
    fed back). A cancelled completion without tokens keeps the prompt's P-1 (its proof's
    prompt chunk)."""
    return torch.cat(states)[:rows].float().cpu().numpy()


class _StopText:
    """Text pieces with stop strings cut out: what could start a stop string is held back."""

    def __init__(self, decoder: TextDecoder, stops: tuple[str, ...]) -> None:
        self._decoder = decoder
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def push(self, token_id: int) -> tuple[str, bool]:
        """The text this token releases, and whether it completed a stop string."""
        held = self._held + self._decoder.push(token_id)
        found = [held.find(stop) for stop in self._stops if stop in held]
        if found:
            self._held = ""
            return held[: min(found)], True
        keep = max((_overlap(held, stop) for stop in self._stops), default=0)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep], False

    def flush(self) -> str:
        """At the end: what was held back and what the decoder still holds (no stop found)."""
        rest = self._held + self._decoder.flush()
        self._held = ""
        found = [rest.find(stop) for stop in self._stops if stop in rest]
        return rest[: min(found)] if found else rest


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0

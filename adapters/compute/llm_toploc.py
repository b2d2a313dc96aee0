"""Generation that commits to its activations, and the validator's one-prefill check (TOPLOC).

Positions. For a prompt of P tokens and a completion of N tokens, the node computes the last
hidden state (after the final norm, ``model.model``'s output) of positions 0..P+N-2: the
prefill gives the prompt's P, each decode step one more; the last generated token is never fed
back. Position P-1+i is the state token i was sampled from. Chunks (``proofs.toploc``): the
first P-1 positions as the prompt chunk, then the N sampling states 32 at a time. A validator
runs one prefill over prompt + completion[:-1], which yields the same P+N-1 positions.

Batches are left-padded with an attention mask and position ids counted from each row's
first real token, so a row's states do not depend on its neighbours beyond float reordering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from adapters.compute.llm_model import LoadedModel
from proofs.toploc import (
    ToplocProof,
    ToplocThresholds,
    compute_chunks,
    compute_proofs,
    is_valid_completion,
)

MAX_NEW_TOKENS_MAX = 4096
GREEDY_LOGIT_TOLERANCE = 1e-3
"""A greedy token may sit this far below the recomputed maximum logit (float reordering)."""


@dataclass(frozen=True)
class Completion:
    """Generated token ids and the hidden states of positions 0..P+N-2 (float32)."""

    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    hidden: np.ndarray


def generate(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[Completion]:
    """Complete every prompt (greedy at temperature 0), stopping at EOS or ``max_new_tokens``."""
    if not prompts or any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token")
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS_MAX:
        raise ValueError(f"max_new_tokens must be in [1, {MAX_NEW_TOKENS_MAX}]")
    model, device = loaded.model, loaded.model.device
    input_ids, mask = _left_pad([list(p) for p in prompts], device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generator = torch.Generator(device=device).manual_seed(seed)
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    steps: list[torch.Tensor] = []
    tokens: list[torch.Tensor] = []
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    with torch.inference_mode():
        out = model.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions,
            cache=cache, use_cache=True,
        )  # fmt: skip
        prefill = out.last_hidden_state
        last = prefill[:, -1]
        for step in range(max_new_tokens):
            chosen = _sample(model.lm_head(last).float(), temperature, generator)
            tokens.append(chosen)
            if loaded.eos_token_id is not None:
                finished |= chosen == loaded.eos_token_id
            if step + 1 == max_new_tokens or bool(finished.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            out = model.model(
                input_ids=chosen[:, None], attention_mask=mask, position_ids=positions,
                cache=cache, use_cache=True,
            )  # fmt: skip
            last = out.last_hidden_state[:, -1]
            steps.append(last)
    return _split_rows(prompts, prefill, steps, tokens, loaded.eos_token_id)


def compute_commitment(completion: Completion) -> list[bytes]:
    """The TOPLOC chunk proofs a node ships with a completion."""
    return compute_proofs(compute_chunks(completion.hidden, len(completion.prompt_ids) - 1))


def compute_toploc_proof(completion: Completion) -> ToplocProof:
    """The commitment in its wire form, with the token counts it covers."""
    return ToplocProof(
        prompt_tokens=len(completion.prompt_ids),
        completion_tokens=len(completion.token_ids),
        chunks=compute_commitment(completion),
    )


def compute_prefill_hidden(
    loaded: LoadedModel, prompt_ids: Sequence[int], token_ids: Sequence[int]
) -> np.ndarray:
    """One forward pass over prompt + completion[:-1]: the hidden states of P+N-1 positions."""
    sequence = torch.tensor([[*prompt_ids, *token_ids[:-1]]], device=loaded.model.device)
    with torch.inference_mode():
        hidden = loaded.model.model(input_ids=sequence).last_hidden_state[0]
    return hidden.float().cpu().numpy()


def is_valid_toploc(
    loaded: LoadedModel,
    prompt_ids: Sequence[int],
    token_ids: Sequence[int],
    proofs: Sequence[bytes],
    thresholds: ToplocThresholds,
) -> bool:
    """The validator's check: recompute by one prefill, compare with the committed proofs."""
    if not prompt_ids or not token_ids:
        return False
    if len(prompt_ids) + len(token_ids) > loaded.context_tokens:
        return False
    hidden = compute_prefill_hidden(loaded, prompt_ids, token_ids)
    return is_valid_completion(proofs, compute_chunks(hidden, len(prompt_ids) - 1), thresholds)


def is_greedy_consistent(
    loaded: LoadedModel,
    prompt_ids: Sequence[int],
    token_ids: Sequence[int],
    hidden: np.ndarray | None = None,
) -> bool:
    """Whether every token is the argmax of the recomputed logits (for temperature 0).

    ``hidden``: the prefill's states (``compute_prefill_hidden``) when the caller has them
    already (a validator checks TOPLOC on the same prefill), else they are recomputed.
    """
    if hidden is None:
        hidden = compute_prefill_hidden(loaded, prompt_ids, token_ids)
    hidden = hidden[len(prompt_ids) - 1 :]
    with torch.inference_mode():
        weight = loaded.model.lm_head.weight
        logits = loaded.model.lm_head(torch.from_numpy(hidden).to(weight.dtype)).float()
    chosen = logits[torch.arange(len(token_ids)), torch.tensor(list(token_ids))]
    return bool((chosen >= logits.max(dim=-1).values - GREEDY_LOGIT_TOLERANCE).all())


def _left_pad(prompts: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, device=device)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probabilities = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]


def _split_rows(
    prompts: Sequence[Sequence[int]],
    prefill: torch.Tensor,
    steps: list[torch.Tensor],
    tokens: list[torch.Tensor],
    eos_token_id: int | None,
) -> list[Completion]:
    all_tokens = torch.stack(tokens, dim=1).tolist()
    decode = torch.stack(steps, dim=1) if steps else prefill[:, :0]
    completions = []
    for row, prompt in enumerate(prompts):
        ids = all_tokens[row]
        if eos_token_id is not None and eos_token_id in ids:
            ids = ids[: ids.index(eos_token_id) + 1]
        rows = torch.cat(
            [prefill[row, prefill.shape[1] - len(prompt) :], decode[row, : len(ids) - 1]]
        )
        completions.append(
            Completion(
                prompt_ids=tuple(prompt),
                token_ids=tuple(ids),
                hidden=rows.float().cpu().numpy(),
            )
        )
    return completions

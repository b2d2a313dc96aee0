"""What a cheating LLM node might serve instead of the registered model, and the bundles it
ships, for the TOPLOC tests (tests/unit/compute/test_llm_toploc.py) and the detection matrix
(tests/adversarial/test_llm_detection.py).

Each variant is a ``LoadedModel`` under the registered model's id (what the node claims), built
from the honest one without touching it: one layer's weights perturbed, per-row int8 weights,
a lower dtype, layers dropped, or random weights of the same shape and tokenizer. Needs the
``llm`` extra (torch, transformers).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from adapters.compute import llm_toploc
from adapters.compute.llm_model import LoadedModel
from proofs import toploc
from proofs.llm_request import (
    ChatMessage,
    CompletionBundle,
    LlmRequest,
    compute_request_digest,
)
from validator.completion_check import CompletionRecord, compute_dtype_name


def perturb_one_layer(
    loaded: LoadedModel, layer: int, relative: float = 0.02, seed: int = 7
) -> LoadedModel:
    """``relative`` Gaussian noise (2 % by default) on one layer's attention output matrix."""
    model = copy.deepcopy(loaded.model)
    weight = model.model.layers[layer].self_attn.o_proj.weight
    noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        weight.mul_(1 + relative * noise.to(weight.dtype))
    return replace(loaded, model=model)


def quantize_int8_per_row(loaded: LoadedModel) -> LoadedModel:
    """Every linear layer's weights rounded to symmetric per-row int8 and de-quantized: what an
    int8 kernel computes with (a head tied to the embeddings quantizes them too)."""
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                weight = module.weight
                scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
                weight.copy_((weight / scale).round().clamp(-127, 127) * scale)
    return replace(loaded, model=model)


def lower_precision(loaded: LoadedModel, dtype: torch.dtype) -> LoadedModel:
    """The same weights in ``dtype`` (e.g. bfloat16 against a float32 registration)."""
    return replace(loaded, model=copy.deepcopy(loaded.model).to(dtype), dtype=dtype)


def drop_layers(loaded: LoadedModel, keep: Sequence[int]) -> LoadedModel:
    """A smaller model: only the decoder layers ``keep`` (in order), renumbered for the cache."""
    model = copy.deepcopy(loaded.model)
    layers = [model.model.layers[i] for i in keep]
    for index, layer in enumerate(layers):
        layer.self_attn.layer_idx = index
    model.model.layers = torch.nn.ModuleList(layers)
    model.config.num_hidden_layers = len(layers)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[i] for i in keep]
    return replace(loaded, model=model)


def random_like(loaded: LoadedModel, seed: int) -> LoadedModel:
    """Random weights of the same architecture and shape (the tokenizer kept)."""
    from transformers import LlamaForCausalLM

    config = copy.deepcopy(loaded.model.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = LlamaForCausalLM(config)
    return replace(loaded, model=model.to(loaded.dtype).eval())


def compute_proofs_for(
    loaded: LoadedModel, prompt_ids: Sequence[int], token_ids: Sequence[int]
) -> list[bytes]:
    """The chunk proofs of ``loaded``'s prefill over any token sequence: how a node commits
    to tokens it did not sample (activations can be made to match any tokens)."""
    hidden = llm_toploc.compute_prefill_hidden(loaded, prompt_ids, token_ids)
    return toploc.compute_proofs(toploc.compute_chunks(hidden, len(prompt_ids) - 1))


def chat_request(
    model_id: str,
    user: str,
    system: str | None = None,
    max_tokens: int = 40,
    temperature: float = 0.0,
    seed: int = 0,
) -> LlmRequest:
    messages = [ChatMessage(role="system", content=system)] if system is not None else []
    messages.append(ChatMessage(role="user", content=user))
    return LlmRequest(
        model=model_id,
        messages=messages,
        prompt=None,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=1.0,
        seed=seed,
        stop=[],
    )


def make_bundle(
    request: LlmRequest,
    prompt_ids: Sequence[int],
    token_ids: Sequence[int],
    chunks: Sequence[bytes],
    finish_reason: str = "length",
) -> CompletionBundle:
    return CompletionBundle(
        request=request,
        prompt_ids=list(prompt_ids),
        token_ids=list(token_ids),
        finish_reason=finish_reason,  # type: ignore[arg-type]  # "stop" | "length"
        proof=toploc.ToplocProof(
            prompt_tokens=len(prompt_ids), completion_tokens=len(token_ids), chunks=list(chunks)
        ),
    )


def serve_honestly(
    loaded: LoadedModel, request: LlmRequest, prompt_ids: Sequence[int]
) -> CompletionBundle:
    """What an honest node ships for ``request`` (``loaded`` may be a cheat's model)."""
    [completion] = llm_toploc.generate(
        loaded, [list(prompt_ids)], request.max_tokens, request.temperature, request.seed
    )
    return bundle_of(request, completion)


def bundle_of(request: LlmRequest, completion: llm_toploc.Completion) -> CompletionBundle:
    finish = "length" if len(completion.token_ids) == request.max_tokens else "stop"
    return make_bundle(
        request,
        completion.prompt_ids,
        completion.token_ids,
        llm_toploc.compute_commitment(completion),
        finish,
    )


def record_of(bundle: CompletionBundle, registered: LoadedModel) -> CompletionRecord:
    """The ledger's record of a committed ``bundle`` (its counts and commitment, as the node
    committed them) for the model ``registered`` (its id and dtype)."""
    return CompletionRecord(
        model_id=registered.model_id,
        dtype=compute_dtype_name(registered),
        request_digest=compute_request_digest(bundle.request),
        prompt_tokens=len(bundle.prompt_ids),
        completion_tokens=len(bundle.token_ids),
        commitment=bundle.compute_commitment(),
        greedy=bundle.request.is_greedy,
    )

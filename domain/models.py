"""Registered language models (issue 18, item 2; rules v5): what a node may serve and at what price.

An operator records a model with ``model.register``: its id (``smollm2-135m-instruct``), the
content digest of its files (weights, config and tokenizer; for a GGUF file all three in one,
``adapters.compute.llm_model.compute_files_digest``), its architecture, the dtype validators
recompute in (the TOPLOC thresholds are calibrated per dtype: ``proofs.toploc``), its context
length and its prices in base units per 1,000 input and 1,000 output tokens. The record is
immutable: other bytes, another dtype or other prices are another model id, so a completion's
job names exactly what it paid for and what its proofs are checked against.
"""

from __future__ import annotations

from typing import ClassVar

from domain.events import FlopAggregate, ns_to_datetime

MODEL_STREAM_TYPE = "model"
MODEL_ID_CHARS_MAX = 64
MODEL_ID_PATTERN = "^[a-z0-9][a-z0-9.-]*$"
ARCHITECTURES = ("llama",)
"""Architectures a validator can recompute (transformers' model types, no remote code)."""
MODEL_DTYPES = ("float32", "bfloat16", "float16")
CONTEXT_TOKENS_MAX = 1 << 20
PRICE_PER_1K_TOKENS_MAX = 1 << 53


def compute_model_stream_id(model_id: str) -> str:
    """One stream per model id."""
    return f"model:{model_id}"


class RegisteredModel(FlopAggregate):
    """A model the network serves: its identity by content, its shape and its prices."""

    STREAM_TYPE: ClassVar[str] = MODEL_STREAM_TYPE

    class ModelRegistered(FlopAggregate.Created):
        model_id: str
        content_digest: bytes
        architecture: str
        dtype: str
        context_tokens: int
        price_per_1k_input_tokens: int
        price_per_1k_output_tokens: int
        registered_by: str

        def apply(self, model: RegisteredModel) -> None:
            model.model_id, model.content_digest = self.model_id, self.content_digest
            model.architecture, model.dtype = self.architecture, self.dtype
            model.context_tokens = self.context_tokens
            model.price_per_1k_input_tokens = self.price_per_1k_input_tokens
            model.price_per_1k_output_tokens = self.price_per_1k_output_tokens
            model.registered_by = self.registered_by

    model_id: str
    content_digest: bytes
    architecture: str
    dtype: str
    context_tokens: int
    price_per_1k_input_tokens: int
    price_per_1k_output_tokens: int
    registered_by: str

    def __init__(self) -> None:
        """State is set by the creation event's apply (eventsourcing calls this empty)."""

    @classmethod
    def register(
        cls,
        *,
        model_id: str,
        content_digest: bytes,
        architecture: str,
        dtype: str,
        context_tokens: int,
        price_per_1k_input_tokens: int,
        price_per_1k_output_tokens: int,
        registered_by: str,
        now_ns: int,
    ) -> RegisteredModel:
        return cls._create(
            cls.ModelRegistered,
            id=compute_model_stream_id(model_id),
            model_id=model_id,
            content_digest=content_digest,
            architecture=architecture,
            dtype=dtype,
            context_tokens=context_tokens,
            price_per_1k_input_tokens=price_per_1k_input_tokens,
            price_per_1k_output_tokens=price_per_1k_output_tokens,
            registered_by=registered_by,
            timestamp=ns_to_datetime(now_ns),
        )

    def compute_price(self, *, input_tokens: int, output_tokens: int) -> int:
        """The charge for a completion's usage, rounded up to a whole base unit."""
        numerator = (
            input_tokens * self.price_per_1k_input_tokens
            + output_tokens * self.price_per_1k_output_tokens
        )
        return -(-numerator // 1000)

    def view(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "content_digest": self.content_digest.hex(),
            "architecture": self.architecture,
            "dtype": self.dtype,
            "context_tokens": self.context_tokens,
            "price_per_1k_input_tokens": self.price_per_1k_input_tokens,
            "price_per_1k_output_tokens": self.price_per_1k_output_tokens,
            "registered_by": self.registered_by,
            "version": self.version,
        }

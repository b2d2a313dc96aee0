"""A request's prompt token ids, and token ids back to text, for the node and the validator.

The node tokenizes a request with ``encode`` and commits to the ids; a validator tokenizes the
same request again and refuses a bundle whose prompt ids differ (a dropped or changed system
prompt), so both sides must call the same function.

- Chat requests: the tokenizer's own chat template (``apply_chat_template`` with the generation
  prompt; SmolLM2 inserts its default system prompt when the request has none).
- Text requests: the tokenizer on the prompt as it is.
- A model without a tokenizer (the tiny test Llama, vocab 256) reads UTF-8 bytes, with a fixed
  plain template: ``role: content\\n`` per message, then ``assistant: ``.

``TextDecoder`` turns a stream of ids into text pieces as they come: it holds back a piece
that ends inside a character (a byte-level token may carry half of one), and decodes only the
ids since the last piece with the piece before as context (vLLM's incremental detokenizer),
so a long completion costs the same per token as a short one. Special tokens (EOS) decode to
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.compute.llm_model import LoadedModel
from proofs.llm_request import LlmRequest

BYTE_VOCAB = 256
BYTE_TEMPLATE_ASSISTANT = "assistant: "
REPLACEMENT_CHAR = "\ufffd"


def encode(loaded: LoadedModel, request: LlmRequest) -> tuple[int, ...]:
    """The prompt ids of ``request`` for ``loaded`` (may be empty for an empty text prompt)."""
    tokenizer = loaded.tokenizer
    if tokenizer is None:
        return tuple(compute_byte_prompt(request).encode())
    if request.messages is not None:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )
        return tuple(int(i) for i in encoded["input_ids"])
    return tuple(int(i) for i in tokenizer(request.prompt or "")["input_ids"])


def compute_byte_prompt(request: LlmRequest) -> str:
    """The plain template of a tokenizer-less model: the text whose UTF-8 bytes are the ids."""
    if request.messages is None:
        return request.prompt or ""
    turns = "".join(f"{m.role}: {m.content}\n" for m in request.messages)
    return turns + BYTE_TEMPLATE_ASSISTANT


def decode(loaded: LoadedModel, token_ids: Sequence[int]) -> str:
    """The text of ``token_ids``, special tokens left out (bytes: invalid UTF-8 replaced)."""
    if loaded.tokenizer is None:
        return bytes(i for i in token_ids if i < BYTE_VOCAB).decode("utf-8", errors="replace")
    return str(loaded.tokenizer.decode(list(token_ids), skip_special_tokens=True))


class TextDecoder:
    """Incremental ``decode``: ``push`` one id and get the text it completes (maybe "")."""

    def __init__(self, loaded: LoadedModel) -> None:
        self._loaded = loaded
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix = decode(self._loaded, self._ids[self._prefix_offset : self._read_offset])
        text = decode(self._loaded, self._ids[self._prefix_offset :])
        if len(text) <= len(prefix) or text.endswith(REPLACEMENT_CHAR):
            return ""  # nothing new yet, or a character still incomplete
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return text[len(prefix) :]

    def flush(self) -> str:
        """What is still held back (a character left incomplete at the end, replaced)."""
        prefix = decode(self._loaded, self._ids[self._prefix_offset : self._read_offset])
        text = decode(self._loaded, self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset = len(self._ids)
        return text[len(prefix) :]

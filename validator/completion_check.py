"""A sampled completion's check: the node's bundle against the ledger's record and the model.

A drawn validator fetches the ``CompletionBundle`` a node uploaded (its object digest is the
completion's ``proof_digest``) and replays it, in a fixed order, the first failure deciding
the reason (stable codes, below):

1. the bytes decode to a bundle (``proofs.llm_request.decode_bundle``);
2. its request is the opened one (``compute_request_digest`` equals the record's) and names
   the record's model;
3. the validator holds that model in the registered dtype (else it cannot judge: a
   ``CHECK_UNJUDGED`` reason, never a failure of the node);
4. the prompt ids are the request's tokenization (``encode_prompt``: a node that drops or
   changes the system prompt, or serves another template, commits to other ids);
5. the token counts are the ledger's (what the consumer was charged for) and within the
   request's ``max_tokens`` and the model's context, every id in the model's vocabulary,
   and the completion goes no further than generation would have: no end-of-sequence token
   before the last, no stop string in the text before the last token (a node that pads a
   finished completion with more tokens bills tokens nobody asked for; at temperature > 0
   TOPLOC and the greedy check would not see it);
6. the bundle's ids and chunk proofs hash to the recorded ``commitment``;
7. TOPLOC (``proofs.toploc``): one prefill over prompt + completion, every chunk within the
   thresholds of the registered dtype (float32: ``FLOAT32_THRESHOLDS``; bfloat16 and
   float16: the paper's);
8. at temperature 0 (the bound request's), every token the argmax of the recomputed logits
   (``is_greedy_consistent``, on the same prefill): activations can be made to match any
   token sequence, so only this binds greedy tokens to the committed logits.

TOPLOC and the greedy check are both measured when the replay runs, so a report shows each
chunk's figures and the greedy outcome whichever failed first. Never raises on a malformed
bundle; an ``encode_prompt`` that cannot encode the request raises ``ValueError`` (an
honest node could not have served it either: the check fails).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from adapters.compute.llm_model import LoadedModel
from adapters.compute.llm_prompts import decode
from adapters.compute.llm_toploc import compute_prefill_hidden, is_greedy_consistent
from proofs.llm_request import (
    CompletionBundle,
    LlmRequest,
    compute_request_digest,
    decode_bundle,
)
from proofs.toploc import (
    FLOAT32_THRESHOLDS,
    PAPER_THRESHOLDS,
    ChunkCheck,
    ToplocThresholds,
    compute_chunk_check,
    compute_chunk_count,
    compute_chunks,
    is_chunk_accepted,
)

CHECK_PASSED = "ok"
BUNDLE_MALFORMED = "completion_bundle_malformed"
REQUEST_DIGEST_MISMATCH = "completion_request_mismatch"
MODEL_MISMATCH = "completion_model_mismatch"
PROMPT_UNENCODABLE = "completion_prompt_unencodable"
PROMPT_MISMATCH = "completion_prompt_mismatch"
TOKEN_COUNTS_MISMATCH = "completion_token_counts_mismatch"
CONTEXT_EXCEEDED = "completion_context_exceeded"
TOKEN_OUT_OF_VOCABULARY = "completion_token_out_of_vocabulary"
PAST_ITS_END = "completion_past_its_end"
COMMITMENT_MISMATCH = "completion_commitment_mismatch"
CHUNK_COUNT_MISMATCH = "completion_chunk_count_mismatch"
TOPLOC_MISMATCH = "completion_toploc_mismatch"
GREEDY_INCONSISTENT = "completion_greedy_inconsistent"
MODEL_NOT_HELD = "completion_model_not_held"
"""Unjudged: this validator does not hold the model (in the registered dtype)."""
DTYPE_UNSUPPORTED = "completion_dtype_unsupported"
"""Unjudged: no thresholds are calibrated for the registered dtype."""
CHECK_UNJUDGED = frozenset({MODEL_NOT_HELD, DTYPE_UNSUPPORTED})
"""Reasons that say nothing about the node: a validator abstains rather than fail it."""

THRESHOLDS_BY_DTYPE: dict[str, ToplocThresholds] = {
    "float32": FLOAT32_THRESHOLDS,
    "bfloat16": PAPER_THRESHOLDS,
    "float16": PAPER_THRESHOLDS,
}
"""A registered dtype's TOPLOC bounds (``proofs.toploc``: the float32 ones are ours, measured
on CPU; the paper's were calibrated for 16-bit inference across GPUs)."""

PromptEncoder = Callable[[LoadedModel, LlmRequest], Sequence[int]]
"""``adapters.compute.llm_prompts.encode``: a request's prompt ids for a model."""


@dataclass(frozen=True)
class CompletionRecord:
    """What the ledger recorded of a committed completion (its view, parsed)."""

    model_id: str
    dtype: str
    """The registered model's dtype, which decides the thresholds."""
    request_digest: bytes
    prompt_tokens: int
    completion_tokens: int
    commitment: bytes
    greedy: bool
    """The API's copy of temperature == 0 (the bound request's decides the greedy check)."""


class CompletionCheck(msgspec.Struct, frozen=True):
    """A verdict (``reason``: ``CHECK_PASSED`` or the first failed rule) and what it measured."""

    reason: str
    chunks: tuple[ChunkCheck, ...] = ()
    """TOPLOC's per-chunk measurements (empty when the replay did not run)."""
    chunks_accepted: tuple[bool, ...] = ()
    greedy_consistent: bool | None = None
    """The greedy check's outcome (None: not run, or the request was not at temperature 0)."""

    @property
    def passed(self) -> bool:
        return self.reason == CHECK_PASSED

    @property
    def is_judged(self) -> bool:
        """False when the check says nothing about the node (the validator cannot judge)."""
        return self.reason not in CHECK_UNJUDGED


def check_completion(
    bundle_bytes: bytes,
    record: CompletionRecord,
    loaded: LoadedModel,
    encode_prompt: PromptEncoder,
) -> CompletionCheck:
    """Replay one committed completion (the module's rules, in order)."""
    bundle = decode_bundle(bundle_bytes)
    if bundle is None:
        return CompletionCheck(reason=BUNDLE_MALFORMED)
    if compute_request_digest(bundle.request) != record.request_digest:
        return CompletionCheck(reason=REQUEST_DIGEST_MISMATCH)
    if bundle.request.model != record.model_id:
        return CompletionCheck(reason=MODEL_MISMATCH)
    thresholds = THRESHOLDS_BY_DTYPE.get(record.dtype)
    if thresholds is None:
        return CompletionCheck(reason=DTYPE_UNSUPPORTED)
    if not is_model_held(loaded, record):
        return CompletionCheck(reason=MODEL_NOT_HELD)
    refusal = _compute_bundle_refusal(bundle, record, loaded, encode_prompt)
    if refusal is not None:
        return CompletionCheck(reason=refusal)
    return _replay(bundle, loaded, thresholds)


def is_model_held(loaded: LoadedModel, record: CompletionRecord) -> bool:
    """Whether ``loaded`` is the record's model in its registered dtype."""
    return loaded.model_id == record.model_id and compute_dtype_name(loaded) == record.dtype


def compute_dtype_name(loaded: LoadedModel) -> str:
    """A loaded model's dtype as a registration names it ("float32", "bfloat16", ...)."""
    return str(loaded.dtype).removeprefix("torch.")


def _compute_bundle_refusal(
    bundle: CompletionBundle,
    record: CompletionRecord,
    loaded: LoadedModel,
    encode_prompt: PromptEncoder,
) -> str | None:
    """The first of rules 4 to 6 the bundle breaks (None: all hold)."""
    try:
        expected_prompt = list(encode_prompt(loaded, bundle.request))
    except ValueError:
        return PROMPT_UNENCODABLE
    if bundle.prompt_ids != expected_prompt:
        return PROMPT_MISMATCH
    prompt_tokens, completion_tokens = len(bundle.prompt_ids), len(bundle.token_ids)
    if (prompt_tokens, completion_tokens) != (record.prompt_tokens, record.completion_tokens):
        return TOKEN_COUNTS_MISMATCH
    if completion_tokens > bundle.request.max_tokens:
        return TOKEN_COUNTS_MISMATCH
    if prompt_tokens + completion_tokens > loaded.context_tokens:
        return CONTEXT_EXCEEDED
    vocabulary = int(loaded.model.get_input_embeddings().num_embeddings)
    if max(max(bundle.prompt_ids), max(bundle.token_ids)) >= vocabulary:
        return TOKEN_OUT_OF_VOCABULARY
    if _is_past_its_end(bundle, loaded):
        return PAST_ITS_END
    if bundle.compute_commitment() != record.commitment:
        return COMMITMENT_MISMATCH
    if len(bundle.proof.chunks) != compute_chunk_count(prompt_tokens, completion_tokens):
        return CHUNK_COUNT_MISMATCH
    return None


def _is_past_its_end(bundle: CompletionBundle, loaded: LoadedModel) -> bool:
    """Whether generation would have ended before the last token: an end-of-sequence token,
    or a stop string completed, earlier. (A prefix's text is a prefix of the longer text, so
    the text of all tokens but the last holds every earlier stop.)"""
    *before_last, _ = bundle.token_ids
    if loaded.eos_token_id is not None and loaded.eos_token_id in before_last:
        return True
    stops = bundle.request.stop
    if not stops or not before_last:
        return False
    text = decode(loaded, before_last)
    return any(stop in text for stop in stops)


def _replay(
    bundle: CompletionBundle, loaded: LoadedModel, thresholds: ToplocThresholds
) -> CompletionCheck:
    """Rules 7 and 8 on one prefill: TOPLOC per chunk, then greedy at temperature 0."""
    prompt_ids, token_ids = bundle.prompt_ids, bundle.token_ids
    hidden = compute_prefill_hidden(loaded, prompt_ids, token_ids)
    chunks = compute_chunks(hidden, len(prompt_ids) - 1)
    checks = tuple(
        compute_chunk_check(proof, chunk)
        for proof, chunk in zip(bundle.proof.chunks, chunks, strict=True)
    )
    accepted = tuple(is_chunk_accepted(check, thresholds) for check in checks)
    greedy = (
        is_greedy_consistent(loaded, prompt_ids, token_ids, hidden=hidden)
        if bundle.request.is_greedy
        else None
    )
    if not all(accepted):
        reason = TOPLOC_MISMATCH
    elif greedy is False:
        reason = GREEDY_INCONSISTENT
    else:
        reason = CHECK_PASSED
    return CompletionCheck(
        reason=reason, chunks=checks, chunks_accepted=accepted, greedy_consistent=greedy
    )

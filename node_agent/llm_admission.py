"""Which completion calls the node serves: its checks before any token, in a fixed order.

Each refusal is a ``Refusal`` carrying a stable ``NodeErrorCode`` (``adapters.llm_link.wire``)
and the HTTP status it is answered with (``REFUSAL_STATUS``); ``node_agent.llm_server`` runs
the checks and sends the refusal's ``ErrorEvent`` as the answer's body.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.llm_link.wire import ErrorEvent, NodeCompletionCall, NodeErrorCode
from node_agent.ledger_link import CompletionRecord
from proofs.llm_request import compute_request_digest

OPENED = "opened"

REFUSAL_STATUS: dict[NodeErrorCode, int] = {
    NodeErrorCode.CALL_INVALID: 422,
    NodeErrorCode.NODE_STOPPING: 503,
    NodeErrorCode.MODEL_NOT_SERVED: 404,
    NodeErrorCode.NODE_AT_CAPACITY: 503,
    NodeErrorCode.LEDGER_UNAVAILABLE: 503,
    NodeErrorCode.COMPLETION_NOT_FOUND: 404,
    NodeErrorCode.COMPLETION_NOT_FOR_THIS_NODE: 403,
    NodeErrorCode.COMPLETION_NOT_OPEN: 409,
    NodeErrorCode.COMPLETION_MODEL_MISMATCH: 409,
    NodeErrorCode.REQUEST_DIGEST_MISMATCH: 409,
    NodeErrorCode.COMPLETION_TERMS_MISMATCH: 409,
    NodeErrorCode.PROMPT_EMPTY: 422,
    NodeErrorCode.PROMPT_TOKENS_ABOVE_MAX: 422,
}


class Refusal(Exception):
    """A call refused before generation (``code``'s status in ``REFUSAL_STATUS``)."""

    def __init__(self, code: NodeErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message

    @property
    def event(self) -> ErrorEvent:
        return ErrorEvent(code=self.code, message=self.message)


def check_record(
    node_id: str, call: NodeCompletionCall, record: CompletionRecord | None
) -> CompletionRecord:
    """The ledger's record must open this very completion to this node (raises ``Refusal``)."""
    request = call.request
    if record is None:
        raise Refusal(NodeErrorCode.COMPLETION_NOT_FOUND, f"no completion {call.completion_id}")
    if record.node_id != node_id:
        raise Refusal(NodeErrorCode.COMPLETION_NOT_FOR_THIS_NODE, "opened to another node")
    if record.state != OPENED:
        raise Refusal(NodeErrorCode.COMPLETION_NOT_OPEN, f"the completion is {record.state}")
    if record.model_id != request.model:
        raise Refusal(NodeErrorCode.COMPLETION_MODEL_MISMATCH, f"opened for {record.model_id}")
    if record.request_digest != compute_request_digest(request):
        raise Refusal(NodeErrorCode.REQUEST_DIGEST_MISMATCH, "not the request opened")
    if request.max_tokens > record.max_tokens or request.is_greedy != record.greedy:
        raise Refusal(NodeErrorCode.COMPLETION_TERMS_MISMATCH, "max_tokens or greedy differ")
    return record


def check_prompt(prompt_ids: Sequence[int], record: CompletionRecord, context_tokens: int) -> None:
    """The prompt must have tokens, no more than the escrow covers, and leave room in the
    model's context for ``max_tokens`` (raises ``Refusal``)."""
    if not prompt_ids:
        raise Refusal(NodeErrorCode.PROMPT_EMPTY, "the prompt has no tokens")
    if len(prompt_ids) > record.prompt_tokens_max:
        raise Refusal(
            NodeErrorCode.PROMPT_TOKENS_ABOVE_MAX,
            f"{len(prompt_ids)} prompt tokens, {record.prompt_tokens_max} opened",
        )
    if len(prompt_ids) + record.max_tokens > context_tokens:
        raise Refusal(
            NodeErrorCode.PROMPT_TOKENS_ABOVE_MAX,
            f"{len(prompt_ids)} prompt tokens + {record.max_tokens} exceed the context here",
        )

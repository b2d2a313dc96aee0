"""Where each command is posted: one table of command kinds -> (route, body type, result type).

The API mounts its command handlers on these routes and checks that an envelope's kind is the
route's and that ids in the path equal the body's; the client derives kind and route from a
typed command (``domain.commands``). Neither side spells a route or a kind again. Path
parameters are named after the body fields they repeat (``/v1/jobs/{job_id}/claim``).

Kinds in ``IN_PROCESS_KINDS`` have no route: the processes that sign them (the sealer, the
settlement loop; ``flopledger serve`` and ``flopledger db genesis`` for the network's rules)
execute them on the command bus directly.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.ledger_api.wire import CommandAccepted, CompletionAccepted, JobAccepted
from domain.commands import COMMAND_TYPES, Command

IN_PROCESS_KINDS = frozenset(
    {
        "log.seal",
        "log.anchor",
        "withdrawal.submit",
        "withdrawal.confirm",
        "withdrawal.void",
        "network.genesis",
        "network.change_policy",
        "network.change_operators",
    }
)
"""Command kinds that are executed in process and never posted to the API."""


@dataclass(frozen=True)
class CommandRoute:
    """One command kind's route; ``path`` names body fields in braces."""

    kind: str
    path: str
    result_type: type[CommandAccepted] = CommandAccepted

    @property
    def body_type(self) -> type[Command]:
        return COMMAND_TYPES[self.kind]

    @property
    def path_fields(self) -> tuple[str, ...]:
        """The body fields that the path repeats, in order."""
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.path) if name)

    def compute_path(self, body: Mapping[str, Any]) -> str:
        """The concrete path for a command body (its ids filled in)."""
        return self.path.format(**{name: body[name] for name in self.path_fields})

    def compute_handler_path(self, prefix: str) -> str:
        """The path below a controller mounted at ``prefix``, in Litestar's syntax."""
        if not self.path.startswith(prefix):
            raise ValueError(f"{self.path} is not below {prefix}")
        rest = self.path[len(prefix) :] or "/"
        for name in self.path_fields:
            rest = rest.replace(f"{{{name}}}", f"{{{name}:str}}")
        return rest


COMMAND_ROUTES: dict[str, CommandRoute] = {
    route.kind: route
    for route in (
        CommandRoute("node.register", "/v1/nodes"),
        CommandRoute("node.attestation.challenge", "/v1/nodes/{node_id}/attestation/challenge"),
        CommandRoute("node.attestation.submit", "/v1/nodes/{node_id}/attestation"),
        CommandRoute("node.attestation.decide", "/v1/nodes/{node_id}/attestation/decision"),
        CommandRoute(
            "node.attestation.commit_verdict",
            "/v1/nodes/{node_id}/attestation/verdict-commitments",
        ),
        CommandRoute("node.attestation.record_verdict", "/v1/nodes/{node_id}/attestation/verdicts"),
        CommandRoute("node.attestation.expire", "/v1/nodes/{node_id}/attestation/expiry"),
        CommandRoute(
            "node.attestation.rechallenge", "/v1/nodes/{node_id}/attestation/rechallenges"
        ),
        CommandRoute("node.inventory.update", "/v1/nodes/{node_id}/inventory"),
        CommandRoute("node.unjail", "/v1/nodes/{node_id}/unjail"),
        CommandRoute("node.deregister", "/v1/nodes/{node_id}/deregistration"),
        CommandRoute("stake.bond", "/v1/stake/bond"),
        CommandRoute("stake.unbond", "/v1/stake/unbond"),
        CommandRoute("stake.withdraw", "/v1/stake/withdraw"),
        CommandRoute("account.deposit", "/v1/accounts/deposits"),
        CommandRoute("account.withdraw", "/v1/accounts/withdrawals"),
        CommandRoute("job.submit", "/v1/jobs", JobAccepted),
        CommandRoute("job.claim", "/v1/jobs/{job_id}/claim"),
        CommandRoute("job.commit_result", "/v1/jobs/{job_id}/result"),
        CommandRoute("job.commit_verdict", "/v1/jobs/{job_id}/verdict-commitments"),
        CommandRoute("job.record_verdict", "/v1/jobs/{job_id}/verdicts"),
        CommandRoute("job.release", "/v1/jobs/{job_id}/release"),
        CommandRoute("job.expire", "/v1/jobs/{job_id}/expire"),
        CommandRoute("job.cancel", "/v1/jobs/{job_id}/cancel"),  # issue 17 (rules v5)
        CommandRoute("validator.register", "/v1/validators"),
        CommandRoute("validator.report_equivocation", "/v1/validators/equivocations"),
        CommandRoute("log.cosign", "/v1/log/cosignatures"),
        CommandRoute("job.prove_fraud", "/v1/jobs/{job_id}/fraud-proofs"),
        CommandRoute("canary.seal", "/v1/canaries/seals"),
        CommandRoute("canary.reveal", "/v1/canaries/reveals"),
        CommandRoute("beacon.contribute", "/v1/beacon/contributions"),
        CommandRoute("beacon.close", "/v1/beacon/closings"),
        # issue 15: liveness epochs
        CommandRoute("liveness.report", "/v1/liveness/reports"),
        CommandRoute("liveness.close", "/v1/liveness/closings"),
        # issue 16, item 6: object-stored records
        CommandRoute("object.record_stored", "/v1/objects/stored"),
        # issue 17, item 2: encryption keys and job key releases
        CommandRoute("key.register", "/v1/keys"),
        CommandRoute("job.release_key", "/v1/jobs/{job_id}/keys"),
        # issue 18, item 1: delegated API keys
        CommandRoute("apikey.create", "/v1/apikeys"),
        CommandRoute("apikey.revoke", "/v1/apikeys/{key_id}/revocation"),
        # issue 18, item 2: an operator registers a model (reads: /v1/registered-models)
        CommandRoute("model.register", "/v1/models"),
        # issue 18, items 3-4: LLM completions (their records: not under /v1/completions,
        # whose POST is OpenAI's)
        CommandRoute("node.advertise_models", "/v1/nodes/{node_id}/models"),
        CommandRoute("validator.declare_models", "/v1/validators/{validator_id}/models"),
        CommandRoute("completion.open", "/v1/completion-records", CompletionAccepted),
        CommandRoute("completion.commit", "/v1/completion-records/{completion_id}/commit"),
        CommandRoute("completion.abort", "/v1/completion-records/{completion_id}/abort"),
        CommandRoute(
            "completion.commit_verdict",
            "/v1/completion-records/{completion_id}/verdict-commitments",
        ),
        CommandRoute(
            "completion.record_verdict", "/v1/completion-records/{completion_id}/verdicts"
        ),
        CommandRoute("completion.expire", "/v1/completion-records/{completion_id}/expiry"),
    )
}

_ROUTES_BY_TYPE: dict[type[Command], CommandRoute] = {
    COMMAND_TYPES[kind]: route for kind, route in COMMAND_ROUTES.items()
}


def get_route(command: Command) -> CommandRoute:
    """The route of a typed command; KeyError for a kind that is executed in process only."""
    return _ROUTES_BY_TYPE[type(command)]

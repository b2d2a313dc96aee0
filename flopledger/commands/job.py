"""``flopledger job submit|get|list|cancel|release-key``: jobs through the HTTP API.

``submit --params JSON`` checks the params before anything is signed: text that is not JSON,
JSON that is not an object, or params the workload's parser refuses (``domain.workloads``,
the ledger's own parser under rules v5) print one line on stderr and exit 2. ``cancel
JOB_ID`` withdraws a job of the signer's that no node has claimed: its escrow goes back to
the signer's account at once (``job.cancel``, rules v5); a claimed or finished job is refused
(exit 1, the problem's code on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from domain.commands import SubmitJob
from domain.workloads import WorkloadParamsError, parse_params
from flopledger.commands._api_cli import add_api_options, build_command, make_client, print_result
from flopledger.commands.job_data import (
    add_submit_input_options,
    register_result,
    run_submit_with_inputs,
)
from flopledger.commands.job_keys import register_release_key

SECOND_NS = 1_000_000_000
EXIT_USAGE = 2
_JSON_TYPES: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}

PARAMS_HELP = """workload parameters as a JSON object (default {}): for matmul {"n": 512, "seed":
"s"} or, on the consumer's own matrices, {"a": DIGEST, "b": DIGEST, "dtype": "float32", "m":
M, "k": K, "n": N}; see domain/workloads.py for every kind. Checked before signing: malformed
JSON or params out of bounds exit 2 with one line naming the problem."""
CANCEL_HELP = """Cancel a job you submitted that no node has claimed yet (job.cancel, signed with
--key, rules v5): the job ends "cancelled" and its escrow (the max price held at submission)
goes back to your account at once, instead of staying held until the deadline. Refused
(exit 1) for someone else's job (not_the_consumer) and for a job already claimed or finished
(job_claimed, job_cancelled, ...)."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser("job", help="submit, get, list and cancel jobs through the API")
    actions = parser.add_subparsers(dest="job_action", metavar="ACTION", required=True)

    submit = actions.add_parser("submit", help="submit a job (signed with --key)")
    add_api_options(submit, key_required=True)
    submit.add_argument("--kind", default="matmul", choices=["matmul", "inference", "zk-prove"])
    submit.add_argument("--gpu-class-min", default="cpu")
    submit.add_argument("--params", default="{}", help=PARAMS_HELP)
    submit.add_argument("--max-price", type=int, required=True)
    submit.add_argument("--region", required=True)
    submit.add_argument("--redundancy", type=int, default=3)
    submit.add_argument("--deadline-s", type=float, default=3600.0)
    add_submit_input_options(submit)  # issue 17: flopledger.commands.job_data
    submit.set_defaults(func=run_submit)

    get = actions.add_parser("get", help="show one job")
    add_api_options(get)
    get.add_argument("job_id")
    get.set_defaults(func=lambda a: print_result(lambda: make_client(a).get_job(a.job_id)))

    listing = actions.add_parser("list", help="list jobs")
    add_api_options(listing)
    for name in ("state", "region", "consumer", "node"):
        listing.add_argument(f"--{name}")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(func=run_list)

    cancel = actions.add_parser(
        "cancel",
        help="cancel an unclaimed job of yours and get its escrow back",
        description=CANCEL_HELP,
    )
    add_api_options(cancel, key_required=True)
    cancel.add_argument("job_id")
    cancel.set_defaults(func=lambda a: print_result(lambda: make_client(a).cancel_job(a.job_id)))

    register_release_key(actions)  # issue 17: flopledger.commands.job_keys
    register_result(actions)


def run_submit(args: argparse.Namespace) -> int:
    # With --input the params are only the rest (the files fill the others): they are parsed
    # whole, digests and all, before anything is uploaded (flopledger.jobs_client).
    params = decode_params(args.kind, args.params, parse=not args.input)
    if params is None:
        return EXIT_USAGE
    if args.input:  # the consumer's own data: the job id alone on stdout
        return run_submit_with_inputs(args, params)
    client = make_client(args)
    workload = {"kind": args.kind, "gpu_class_min": args.gpu_class_min, "params": params}
    fields = {
        "workload": workload,
        "max_price": args.max_price,
        "region": args.region,
        "redundancy": args.redundancy,
        "deadline_ns": time.time_ns() + int(args.deadline_s * SECOND_NS),
    }
    return print_result(lambda: client.send(build_command(SubmitJob, fields)))


def run_list(args: argparse.Namespace) -> int:
    filters = {
        "state": args.state,
        "region": args.region,
        "consumer": args.consumer,
        "node": args.node,
        "limit": args.limit,
        "offset": args.offset,
    }
    return print_result(lambda: make_client(args).list_jobs(**filters))


def decode_params(kind: str, text: str, *, parse: bool = True) -> dict[str, Any] | None:
    """``--params`` as a JSON object the workload's parser accepts (``parse``), or None after
    one line on stderr saying why not."""
    try:
        params = json.loads(text)
    except ValueError as exc:
        return _usage(f"--params is not valid JSON ({exc})")
    if not isinstance(params, dict):
        found = _JSON_TYPES.get(type(params), type(params).__name__)
        return _usage(f"--params must be a JSON object, not {found}")
    try:
        if parse:
            parse_params(kind, params)
    except WorkloadParamsError as exc:
        return _usage(f"--params: {exc}")
    return params


def _usage(message: str) -> dict[str, Any] | None:
    """Print one line on stderr; None, what ``decode_params`` answers for bad params."""
    print(f"flopledger job submit: {message}", file=sys.stderr)
    return None

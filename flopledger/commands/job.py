"""``flopledger job submit|get|list|release-key``: jobs through the HTTP API."""

from __future__ import annotations

import argparse
import json
import time

from domain.commands import SubmitJob
from flopledger.commands._api_cli import add_api_options, build_command, make_client, print_result
from flopledger.commands.job_keys import register_release_key

SECOND_NS = 1_000_000_000


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser("job", help="submit, get and list jobs through the API")
    actions = parser.add_subparsers(dest="job_action", metavar="ACTION", required=True)

    submit = actions.add_parser("submit", help="submit a job (signed with --key)")
    add_api_options(submit, key_required=True)
    submit.add_argument("--kind", default="matmul", choices=["matmul", "inference", "zk-prove"])
    submit.add_argument("--gpu-class-min", default="cpu")
    submit.add_argument("--params", default="{}", help="workload parameters as JSON")
    submit.add_argument("--max-price", type=int, required=True)
    submit.add_argument("--region", required=True)
    submit.add_argument("--redundancy", type=int, default=3)
    submit.add_argument("--deadline-s", type=float, default=3600.0)
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

    register_release_key(actions)  # issue 17: flopledger.commands.job_keys


def run_submit(args: argparse.Namespace) -> int:
    client = make_client(args)
    workload = {
        "kind": args.kind,
        "gpu_class_min": args.gpu_class_min,
        "params": json.loads(args.params),
    }
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

"""``flopledger node register|get|list``: nodes through the HTTP API."""

from __future__ import annotations

import argparse
import json

from domain.commands import RegisterNode
from flopledger.commands._api_cli import add_api_options, build_command, make_client, print_result


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser("node", help="register and inspect nodes through the API")
    actions = parser.add_subparsers(dest="node_action", metavar="ACTION", required=True)

    reg = actions.add_parser("register", help="register the --key as a node")
    add_api_options(reg, key_required=True)
    reg.add_argument("--region", required=True)
    reg.add_argument("--gpu-class", default="cpu")
    reg.add_argument("--price", type=int, required=True)
    reg.add_argument(
        "--gpus", default="[]", help='GPUs as JSON: [{"name": "...", "memory_mib": N}]'
    )
    reg.set_defaults(func=run_register)

    get = actions.add_parser("get", help="show one node")
    add_api_options(get)
    get.add_argument("node_id")
    get.set_defaults(func=lambda a: print_result(lambda: make_client(a).get_node(a.node_id)))

    listing = actions.add_parser("list", help="list nodes")
    add_api_options(listing)
    for name in ("state", "region", "gpu-class"):
        listing.add_argument(f"--{name}")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(func=run_list)


def run_register(args: argparse.Namespace) -> int:
    client = make_client(args)
    fields = {
        "region": args.region,
        "gpus": json.loads(args.gpus),
        "gpu_class": args.gpu_class,
        "price": args.price,
    }
    return print_result(lambda: client.send(build_command(RegisterNode, fields)))


def run_list(args: argparse.Namespace) -> int:
    filters = {
        "state": args.state,
        "region": args.region,
        "gpu_class": args.gpu_class,
        "limit": args.limit,
        "offset": args.offset,
    }
    return print_result(lambda: make_client(args).list_nodes(**filters))

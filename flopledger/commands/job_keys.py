"""``flopledger job release-key JOB_ID``: the consumer's side of a private job's key release.

Waits (``--wait-s``, progress on stderr) until a node claims the job, then wraps the job's
data key, kept by ``job submit`` under ``<data dir>/keys/<job_id>.key`` (``adapters.job_keys``),
to the claiming node's registered encryption key and records the release
(``job.release_key``). Registers the consumer's own encryption key on first use, so that the
node can wrap the result key back to it. Prints the accepted command as JSON on stdout.

Exit status: 0 released (or released before, to this claim); 1 the job can no longer be
claimed, the key file is missing, or the API refused; 2 malformed input; 3 no claim within
``--wait-s``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from rich.console import Console

from adapters.job_keys import JobKeyError, load_job_key
from adapters.ledger_api.client import ApiClient, ApiProblem
from adapters.ledger_api.keys_client import ensure_encryption_key, release_job_key
from adapters.ledger_api.wire import JobView
from flopledger.commands._api_cli import add_api_options, make_client
from flopledger.settings import get_settings

EXIT_RELEASED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_CLAIMED = 3
WAIT_S_DEFAULT = 600.0
POLL_S = 1.0
INPUTS = "inputs"
CLAIMED = "claimed"
WAITING_STATES = frozenset({"submitted"})
_JOB_ID = re.compile(r"^[a-z0-9-]{1,64}$")


def register_release_key(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = actions.add_parser(
        "release-key", help="release a private job's inputs key to the node that claims it"
    )
    add_api_options(parser, key_required=True)
    parser.add_argument("job_id")
    parser.add_argument(
        "--wait-s",
        type=float,
        default=WAIT_S_DEFAULT,
        help=f"how long to wait for a claim (default {WAIT_S_DEFAULT:g})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where job submit kept the key (default FLOP_DATA_DIR): <dir>/keys/<job_id>.key",
    )
    parser.set_defaults(func=run_release_key)


def run_release_key(args: argparse.Namespace) -> int:
    if not _JOB_ID.match(args.job_id) or args.wait_s < 0:
        print(f"job release-key: {args.job_id!r} is not a job id or --wait-s < 0", file=sys.stderr)
        return EXIT_USAGE
    data_dir = args.data_dir or get_settings().data_dir
    try:
        data_key = load_job_key(data_dir, args.job_id)
    except JobKeyError as exc:
        print(f"job release-key: {exc}", file=sys.stderr)
        return EXIT_FAILED
    client = make_client(args)
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        return release_when_claimed(client, args.job_id, data_key, args.wait_s, console.print)
    except ApiProblem as problem:
        detail = {"status": problem.status, "code": problem.code, "detail": problem.detail}
        print(json.dumps(detail), file=sys.stderr)
        return EXIT_FAILED


def release_when_claimed(
    client: ApiClient,
    job_id: str,
    data_key: bytes,
    wait_s: float,
    report: Callable[[str], None],
    *,
    poll_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    print_accepted: bool = True,
) -> int:
    """Wait for the job's claim, then release the inputs key to its node (the exit status;
    ``print_accepted``: the accepted release as JSON on stdout)."""
    identity = client.identity
    if identity is None:
        raise ValueError("a release needs the consumer's identity")
    ensure_encryption_key(client, identity)
    deadline = clock() + wait_s
    job = client.get_job(job_id)
    if job.state in WAITING_STATES:
        report(f"waiting up to {wait_s:g} s for a node to claim {job_id}")
    while job.state in WAITING_STATES and clock() < deadline:
        sleep(poll_s)
        job = client.get_job(job_id)
    if job.state in WAITING_STATES:
        report(f"{job_id} was not claimed within {wait_s:g} s")
        return EXIT_NOT_CLAIMED
    if job.state != CLAIMED or not job.node_id:
        report(f"{job_id} is {job.state}: there is no claim to release its inputs key to")
        return EXIT_FAILED
    if _is_released(job):
        report(f"the inputs key of {job_id} was released to {job.node_id} already")
        return EXIT_RELEASED
    report(f"{job_id} claimed by {job.node_id} (attempt {job.attempt}): releasing the inputs key")
    accepted = release_job_key(
        client,
        identity,
        job_id=job_id,
        attempt=job.attempt,
        recipient=job.node_id,
        purpose=INPUTS,
        data_key=data_key,
    )
    if print_accepted:
        print(json.dumps(msgspec.to_builtins(accepted), indent=2, sort_keys=True))
    else:
        report(f"the inputs key of {job_id} is released to {job.node_id}")
    return EXIT_RELEASED


def _is_released(job: JobView) -> bool:
    return any(
        r.purpose == INPUTS
        and r.recipient == job.node_id
        and r.attempt == job.attempt
        and r.sender == job.consumer
        for r in job.key_releases
    )

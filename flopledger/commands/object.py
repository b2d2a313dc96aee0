"""``flopledger object put|get``: store and fetch objects through the API (issue 17).

``put FILE`` stores the file's bytes as given and prints their hex SHA-256 alone on stdout
(so ``digest=$(flopledger object put a.npy)`` works); ``get DIGEST --out FILE`` writes them,
checked against the digest. Progress bars go to stderr; an error is one line on stderr:
exit 1 for what the API refused or could not serve (absent: 404), 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx

from adapters.keyfile import KeyFileError, load_identity
from adapters.ledger_api.client import ApiClient, ApiProblem
from adapters.ledger_api.objects_client import (
    ObjectDigestMismatch,
    get_object_to_file,
    put_object_file,
)
from flopledger.commands._api_cli import add_api_options
from flopledger.commands._transfer_progress import transfer_bar

EXIT_PROBLEM = 1
EXIT_USAGE = 2
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

PUT_HELP = """\
Stream FILE to the API's object store (PUT /v1/objects, a request signed with --key),
check that the digest the API answers is the SHA-256 of the file, and record the upload on
the ledger (object.record_stored, signed with --key). Prints the hex digest alone on
stdout: jobs name their inputs by it. --encrypted marks the bytes as ciphertext (a sealed
object): anyone who knows the digest may then download them; plaintext objects are readable
only by their uploaders and by the consumer, node and drawn validators of a job that uses
them. Uploads are bounded by the network's object_upload_bytes_max (1 GiB by default)."""

GET_HELP = """\
Download the object DIGEST (GET /v1/objects/DIGEST) into --out, checked against the
digest (the file appears only once it is complete and correct). A plaintext object needs a
request signed with --key by one of its uploaders, or by the consumer, node or a drawn
validator of the job named with --job whose input or result it is. Exit 1 when the object
is absent (404) or the read is refused."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser(
        "object", help="store and fetch objects (job inputs, results) through the API"
    )
    actions = parser.add_subparsers(dest="object_action", metavar="ACTION", required=True)

    put = actions.add_parser(
        "put",
        help="upload a file; print its digest",
        description=PUT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_api_options(put, key_required=True)
    put.add_argument("file", type=Path, help="the file to store, byte for byte")
    put.add_argument(
        "--encrypted", action="store_true", help="the bytes are ciphertext (readable by anyone)"
    )
    put.set_defaults(func=run_put)

    get = actions.add_parser(
        "get",
        help="download an object by digest",
        description=GET_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_api_options(get)
    get.add_argument("digest", help="the object's hex SHA-256 (64 lowercase hex characters)")
    get.add_argument("--out", type=Path, required=True, help="where to write the bytes")
    get.add_argument("--job", help="the job whose input or result the object is")
    get.set_defaults(func=run_get)


def run_put(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        return _fail("put", f"{args.file}: no such file", EXIT_USAGE)
    try:
        identity = load_identity(args.key)
    except (KeyFileError, OSError) as exc:
        return _fail("put", f"--key: {exc}", EXIT_USAGE)
    with (
        transfer_bar(f"upload {args.file.name}") as advance,
        closing(ApiClient(args.api)) as client,
    ):
        status = _run(
            "put",
            lambda: (
                put_object_file(
                    client, identity, args.file, encrypted=args.encrypted, progress=advance
                ).digest
            ),
        )
    if isinstance(status, str):
        print(status)
        return 0
    return status


def run_get(args: argparse.Namespace) -> int:
    if not _DIGEST.match(args.digest):
        return _fail("get", f"{args.digest!r} is not a hex SHA-256 digest", EXIT_USAGE)
    if not args.out.parent.is_dir():
        return _fail("get", f"--out: {args.out.parent} is not a directory", EXIT_USAGE)
    try:
        identity = load_identity(args.key) if args.key else None
    except (KeyFileError, OSError) as exc:
        return _fail("get", f"--key: {exc}", EXIT_USAGE)
    with (
        transfer_bar(f"download {args.digest[:12]}") as advance,
        closing(ApiClient(args.api)) as client,
    ):
        status = _run(
            "get",
            lambda: (
                get_object_to_file(
                    client, identity, args.digest, args.out, job_id=args.job, progress=advance
                ).digest
            ),
        )
    return 0 if isinstance(status, str) else status


def _run(action: str, call: Callable[[], str]) -> str | int:
    """The call's result, or the exit status after one line on stderr."""
    try:
        return call()
    except ApiProblem as problem:
        return _fail(action, f"{problem.status} {problem.code}: {problem.detail}", EXIT_PROBLEM)
    except ObjectDigestMismatch as exc:
        return _fail(action, str(exc), EXIT_PROBLEM)
    except httpx.HTTPError as exc:
        return _fail(action, f"the API did not answer: {exc or type(exc).__name__}", EXIT_PROBLEM)


def _fail(action: str, message: str, status: int) -> int:
    print(f"flopledger object {action}: {' '.join(message.split())}", file=sys.stderr)
    return status

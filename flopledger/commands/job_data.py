"""``flopledger job submit --input NAME=FILE ...`` and ``flopledger job result``: jobs on the
consumer's own data (issue 17; ``flopledger.jobs_client``).

``submit --input``: input names ``a``, ``b`` (``.npy``) for matmul, ``model`` (safetensors)
and ``x`` (``.npy``) for inference, ``witness`` (JSON) for zk-prove. The params the files
determine are filled in (``--params`` adds the rest, e.g. a zk-prove circuit); the inputs are
sealed under a fresh data key (kept in ``<data dir>/keys/<job_id>.key``) unless ``--public``,
uploaded (progress on stderr), and the job submitted; its id alone goes to stdout. Without
``--detach`` the command then stays until a node claims the job and releases the inputs key
to it (``job release-key``'s code: the node cannot start before); with ``--detach`` it returns
at once and ``flopledger job release-key JOB_ID`` does the release later.

``result JOB_ID --out FILE``: downloads the result, opens it (a private job: the result key
its node released to the consumer), checks it against the commitment the ledger settled and
writes the file; with ``--wait``, while it waits, it releases the inputs key to a node that
claims the job again (after a rejection or a lapsed claim). Exit 0 written; 1 the job ended
without a result (rejected, refunded, expired, cancelled) or the result does not match; 3 not
final yet (with ``--wait``: still not after ``--timeout-s``, default 600); 2 malformed input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx
import msgspec
from rich.console import Console

from adapters.job_keys import JobKeyError
from adapters.ledger_api.client import ApiProblem
from adapters.ledger_api.objects_client import ObjectDigestMismatch
from domain.workloads import WorkloadParamsError
from flopledger.commands._api_cli import add_api_options, make_client
from flopledger.commands._transfer_progress import transfer_bar, transfer_bars
from flopledger.commands.job_keys import EXIT_NOT_CLAIMED, release_when_claimed
from flopledger.settings import get_settings

SECOND_NS = 1_000_000_000
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FINAL = 3
RESULT_TIMEOUT_S_DEFAULT = 600.0
RESULT_POLL_S = 1.0
RELEASE_WAIT_S_DEFAULT = 600.0
RESULT_HELP = """\
Download the job's result (C's .npy for matmul, the outputs' .npy for inference, the proof
for zk-prove), open it with the result key its node released to you (a private job), check
it against the commitment the ledger settled, and write --out. With --wait, wait until the
job is final (--timeout-s, default 600), releasing the inputs key to a node that claims the
job again after a rejection or a lapsed claim. Exit 0 written; 1 the job ended without a
result (rejected, refunded, expired, cancelled) or the download is not the settled result;
3 not final yet; 2 malformed input."""


def add_submit_input_options(submit: argparse.ArgumentParser) -> None:
    submit.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="an input file of the job: a=, b= (.npy) for matmul; model= (safetensors), "
        "x= (.npy) for inference; witness= (JSON) for zk-prove",
    )
    submit.add_argument(
        "--public", action="store_true", help="upload the inputs in clear (not sealed)"
    )
    submit.add_argument(
        "--detach",
        action="store_true",
        help="return once submitted (release the inputs key later with job release-key)",
    )
    submit.add_argument(
        "--data-dir", type=Path, default=None, help="where the data key is kept (FLOP_DATA_DIR)"
    )


def register_result(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    result = actions.add_parser(
        "result",
        help="download, open and check a job's result",
        description=RESULT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_api_options(result, key_required=True)
    result.add_argument("job_id")
    result.add_argument("--out", type=Path, required=True, help="where to write the result")
    result.add_argument("--wait", action="store_true", help="wait until the job is final")
    result.add_argument("--timeout-s", type=float, default=RESULT_TIMEOUT_S_DEFAULT)
    result.add_argument(
        "--data-dir", type=Path, default=None, help="where job submit kept the data key"
    )
    result.set_defaults(func=run_result)


def run_submit_with_inputs(args: argparse.Namespace, params: dict[str, object]) -> int:
    # imported here: the compute adapter (torch) stays out of every other job command
    from flopledger.jobs_client import INPUT_NAMES, JobInputError, submit_job_with_inputs

    files = {}
    for item in args.input:
        name, sep, file = item.partition("=")
        if not sep or name not in INPUT_NAMES[args.kind] or not Path(file).is_file():
            return _fail(
                "submit",
                f"--input {item!r}: NAME=FILE with NAME in "
                f"{', '.join(INPUT_NAMES[args.kind])} and an existing file",
                EXIT_USAGE,
            )
        files[name] = Path(file)
    data_dir = args.data_dir or get_settings().data_dir
    client = make_client(args)
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        with transfer_bars() as progress_for:
            submitted = submit_job_with_inputs(
                client,
                kind=args.kind,
                inputs=files,
                params=params,
                max_price=args.max_price,
                region=args.region,
                deadline_ns=client.clock_ns() + int(args.deadline_s * SECOND_NS),
                data_dir=data_dir,
                public=args.public,
                redundancy=args.redundancy,
                gpu_class_min=args.gpu_class_min,
                progress_for=progress_for,
            )
        print(submitted.job_id, flush=True)
        if submitted.data_key is None or args.detach:
            return EXIT_OK
        status = release_when_claimed(
            client,
            submitted.job_id,
            submitted.data_key,
            RELEASE_WAIT_S_DEFAULT,
            console.print,
            print_accepted=False,
        )
        return (
            EXIT_OK
            if status == EXIT_OK
            else (EXIT_NOT_FINAL if status == EXIT_NOT_CLAIMED else EXIT_FAILED)
        )
    except (JobInputError, WorkloadParamsError) as exc:
        return _fail("submit", str(exc), EXIT_USAGE)
    except (JobKeyError, ObjectDigestMismatch, msgspec.ValidationError) as exc:
        return _fail("submit", str(exc), EXIT_FAILED)
    except ApiProblem as problem:
        return _fail("submit", f"{problem.status} {problem.code}: {problem.detail}", EXIT_FAILED)
    except httpx.HTTPError as exc:
        return _fail("submit", f"the API did not answer: {exc or type(exc).__name__}", EXIT_FAILED)
    finally:
        client.close()


def run_result(args: argparse.Namespace) -> int:
    from flopledger.jobs_client import (
        JobFailed,
        JobNotFinal,
        ResultMismatch,
        fetch_job_result,
        release_inputs_key_if_due,
    )

    data_dir = args.data_dir or get_settings().data_dir

    if not args.out.parent.is_dir() or args.timeout_s < 0:
        return _fail("result", f"--out {args.out}: no such directory, or --timeout-s < 0", 2)
    client = make_client(args)
    deadline = time.monotonic() + args.timeout_s
    try:
        while True:
            try:
                with transfer_bar(f"download {args.job_id}") as advance:
                    fetch_job_result(client, args.job_id, args.out, progress=advance)
                return EXIT_OK
            except JobNotFinal as exc:
                if not args.wait or time.monotonic() >= deadline:
                    return _fail("result", str(exc), EXIT_NOT_FINAL)
            # a new claim (after a rejection or a lapse) needs the inputs key again
            node = release_inputs_key_if_due(client, args.job_id, data_dir)
            if node is not None:
                print(f"flopledger job result: inputs key released to {node}", file=sys.stderr)
            time.sleep(RESULT_POLL_S)
    except JobFailed as exc:
        return _fail("result", str(exc), EXIT_FAILED)
    except (ResultMismatch, ObjectDigestMismatch) as exc:
        return _fail("result", str(exc), EXIT_FAILED)
    except ApiProblem as problem:
        return _fail("result", f"{problem.status} {problem.code}: {problem.detail}", EXIT_FAILED)
    except httpx.HTTPError as exc:
        return _fail("result", f"the API did not answer: {exc or type(exc).__name__}", 1)
    finally:
        client.close()


def _fail(action: str, message: str, status: int) -> int:
    print(f"flopledger job {action}: {' '.join(message.split())}", file=sys.stderr)
    return status

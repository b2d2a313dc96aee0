"""``flopledger model register|show|list``: the language models the network serves (issue 18).

``register MODEL_ID --price-in N --price-out N [--dtype float32] [--context-tokens N]``
signs ``model.register`` with ``--key`` (an operator's key: the ledger refuses anyone else)
for a model of the catalog (``adapters.compute.llm_catalog``: ``smollm2-135m-instruct``,
``tiny-llama-<seed>``), named by the content digest of what is installed here: SmolLM2's
GGUF file hashed (not loaded), the tiny model's state dict. Prices are base units per 1,000
input and 1,000 output tokens; the context defaults to the model's own and may only be
smaller. Nodes (``flopledger agent --serve-model``) and validators (``--check-model``) then
load it only when their bytes have the registered digest. Prints one line: the model, its
digest and terms. ``show MODEL_ID`` and ``list`` print the ledger's records as JSON.

Exit status: 0 done; 1 the API refused or could not be reached; 2 malformed input (an
unknown or uninstalled model, a bad number, an unreadable key file).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from adapters.keyfile import KeyFileError
from adapters.ledger_api.client import ApiProblem
from domain.commands import RegisterModel
from domain.models import CONTEXT_TOKENS_MAX, MODEL_DTYPES, PRICE_PER_1K_TOKENS_MAX
from flopledger.commands._api_cli import add_api_options, build_command, make_client, print_result

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
DEFAULT_DTYPE = "float32"
"""What the catalog loads (``llm_catalog.load_model``): validators check in this dtype."""


class RegisterInputError(ValueError):
    """An input of ``model register`` that cannot be registered (the message says why)."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = subparsers.add_parser(
        "model",
        help="register and list the language models the network serves",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="model_action", metavar="ACTION", required=True)
    reg = actions.add_parser("register", help="register a catalog model (operator key)")
    add_api_options(reg, key_required=True)
    reg.add_argument("model_id", metavar="MODEL_ID")
    reg.add_argument("--price-in", required=True, help="base units per 1,000 input tokens")
    reg.add_argument("--price-out", required=True, help="base units per 1,000 output tokens")
    reg.add_argument("--dtype", default=DEFAULT_DTYPE, help=f"one of {', '.join(MODEL_DTYPES)}")
    reg.add_argument("--context-tokens", help="context length (default: the model's own)")
    reg.set_defaults(func=run_register)
    show = actions.add_parser("show", help="print a registered model's record")
    add_api_options(show)
    show.add_argument("model_id", metavar="MODEL_ID")
    show.set_defaults(
        func=lambda a: print_result(lambda: make_client(a).get_registered_model(a.model_id))
    )
    listing = actions.add_parser("list", help="list the registered models")
    add_api_options(listing)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(
        func=lambda a: print_result(
            lambda: make_client(a).list_registered_models(offset=a.offset, limit=a.limit)
        )
    )


def build_register_model(
    model_id: str,
    *,
    price_in: int,
    price_out: int,
    dtype: str = DEFAULT_DTYPE,
    context_tokens: int | None = None,
) -> RegisterModel:
    """The ``model.register`` command for a catalog model as installed here (its digest
    computed now); ``RegisterInputError`` when it cannot be registered."""
    from adapters.compute.llm_catalog import UnknownModel, describe_catalog_model
    from adapters.compute.llm_model import ModelUnavailable

    if dtype not in MODEL_DTYPES:
        raise RegisterInputError(f"--dtype must be one of {', '.join(MODEL_DTYPES)}, not {dtype!r}")
    try:
        described = describe_catalog_model(model_id)
    except (UnknownModel, ModelUnavailable) as exc:
        raise RegisterInputError(str(exc)) from exc
    if context_tokens is not None and context_tokens > described.context_tokens:
        raise RegisterInputError(
            f"--context-tokens {context_tokens} is above {model_id}'s own context "
            f"({described.context_tokens})"
        )
    fields: dict[str, Any] = {
        "model_id": model_id,
        "content_digest": described.content_digest,
        "architecture": described.architecture,
        "dtype": dtype,
        "context_tokens": context_tokens or described.context_tokens,
        "price_per_1k_input_tokens": price_in,
        "price_per_1k_output_tokens": price_out,
    }
    return build_command(RegisterModel, fields)


def format_registered(command: RegisterModel, position: int) -> str:
    """The one line ``model register`` prints."""
    return (
        f"model {command.model_id} registered at position {position}: digest "
        f"{command.content_digest.hex()}, {command.architecture} {command.dtype}, "
        f"{command.context_tokens} context tokens, {command.price_per_1k_input_tokens} in / "
        f"{command.price_per_1k_output_tokens} out per 1,000 tokens"
    )


def run_register(args: argparse.Namespace) -> int:
    try:
        price_in = _parse_count(args.price_in, "--price-in", 0, PRICE_PER_1K_TOKENS_MAX)
        price_out = _parse_count(args.price_out, "--price-out", 0, PRICE_PER_1K_TOKENS_MAX)
        context = None
        if args.context_tokens is not None:
            context = _parse_count(args.context_tokens, "--context-tokens", 1, CONTEXT_TOKENS_MAX)
        command = build_register_model(
            args.model_id,
            price_in=price_in,
            price_out=price_out,
            dtype=args.dtype,
            context_tokens=context,
        )
        client = make_client(args)
    except RegisterInputError as exc:
        return _usage(str(exc))
    except ValueError as exc:  # msgspec.ValidationError: the model id's pattern, say
        return _usage(f"{args.model_id!r} cannot be registered: {exc}")
    except (KeyFileError, OSError) as exc:
        return _usage(str(exc))
    try:
        accepted = client.send(command)
    except ApiProblem as problem:
        print(f"flopledger model register: {problem.code}: {problem.detail}", file=sys.stderr)
        return EXIT_PROBLEM
    except httpx.HTTPError as exc:
        print(f"flopledger model register: the API at {args.api}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(format_registered(command, accepted.first_position))
    return EXIT_OK


def _parse_count(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise RegisterInputError(f"{name} must be an integer in {low}..{high}, not {text!r}")
    return value


def _usage(message: str) -> int:
    print(f"flopledger model: {message}", file=sys.stderr)
    return EXIT_USAGE

"""``flopledger audit``'s history options: trusted heads, witness keys, the co-signer minimum."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from validator.audit_history import (
    HistoryOptionError,
    HistoryRequirements,
    TrustedHead,
    parse_trusted_head,
    parse_witness_key,
)

EXIT_USAGE = 2  # as argparse exits on a malformed option


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    """``--trusted-head``, ``--witness-key``, ``--min-cosigners`` (``validator.audit_history``)."""
    parser.add_argument(
        "--trusted-head",
        action="append",
        default=[],
        type=_argument(parse_trusted_head),
        metavar="SIZE:ROOT_HEX",
        help="a tree head seen before (GET /v1/log/tree-head, an audit's newest_head): the "
        "first SIZE records must hash to ROOT, a shorter log was truncated (repeatable)",
    )
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        type=_argument(parse_witness_key),
        metavar="HEX",
        help="a BLS public key whose co-signatures count toward --min-cosigners even when "
        "its validator is not staked (repeatable)",
    )
    parser.add_argument(
        "--min-cosigners",
        type=int,
        default=0,
        metavar="N",
        help="every sealed tree head but the newest needs N co-signatures from validators "
        "staked when they co-signed or from --witness-key keys (default 0)",
    )


def get_history_requirements(args: argparse.Namespace) -> HistoryRequirements:
    """The parsed options as the audit's requirements; exits 2 on a bad combination."""
    heads: list[TrustedHead] = args.trusted_head
    try:
        return HistoryRequirements(
            trusted_heads=tuple(heads),
            witness_keys=frozenset(args.witness_key),
            min_cosigners=args.min_cosigners,
        )
    except HistoryOptionError as exc:
        print(f"flopledger audit: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from exc


def _argument(parse: Any) -> Any:
    """An argparse ``type`` that reports HistoryOptionError as a usage error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except HistoryOptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = parse.__name__
    return convert

"""``flopledger proofs``: offline Groth16 tools over snarkjs files (verify and prove).

This is the only place that reads proof files; ``proofs/`` stays pure. Exit codes of
``groth16-verify``: 0 the proof is valid, 1 it is well-formed but invalid, 2 the input is
malformed or unreadable (the message on stderr names the file and field).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from proofs.groth16 import (
    Groth16DecodeError,
    encode_proof,
    encode_public,
    encode_verification_key,
    parse_json,
    verify_json,
)
from proofs.groth16_prover import prove
from proofs.groth16_setup import SEED_LIMIT, setup_from_seed
from proofs.iden3_binary import decode_r1cs_binary, decode_wtns, is_r1cs_binary, is_wtns_binary
from proofs.r1cs import decode_r1cs, decode_witness, first_unsatisfied
from proofs.zkey import ProvingKey, decode_zkey

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_MALFORMED = 2
INPUT_FILE_BYTES_MAX = 256 * 1024 * 1024

_VERIFY_HELP = """\
Verify a snarkjs Groth16 proof (BN254) against a verification key and public signals.
Decoding is strict: coordinates must be canonical and below the field modulus, points on
their curves, G2 points in the prime-order subgroup, public signals below r and exactly
nPublic of them. Exit status: 0 valid, 1 invalid proof, 2 malformed or unreadable input.
"""

_PROVE_HELP = """\
Prove a circuit with Groth16 (BN254) without Node.js. Reads an R1CS (snarkjs JSON from
`snarkjs r1cs export json`, or circom's binary .r1cs) and a witness (JSON from
`snarkjs wtns export json`, or binary .wtns; the format is detected from the first bytes),
checks that the witness satisfies every constraint, and writes snarkjs-format proof.json and
public.json to --out. With --zkey the proving key is a snarkjs .zkey (from a real ceremony).
With --test-setup-seed the keys are derived from the seed and verification_key.json is
written too: anyone who knows the seed can forge proofs, so use it for tests and devnets only.
Exit status: 0 written, 2 malformed input or a witness that does not satisfy the circuit.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``proofs`` and its subcommands to the CLI."""
    parser = subparsers.add_parser(
        "proofs",
        help="offline proof tools (Groth16 prove and verify)",
        description="Offline proof tools over snarkjs-compatible files (Groth16 on BN254).",
    )
    parser.set_defaults(func=lambda _args: _print_help(parser))
    commands = parser.add_subparsers(dest="proofs_command", metavar="PROOFS_COMMAND")

    verify = commands.add_parser(
        "groth16-verify",
        help="verify a snarkjs Groth16 proof (exit 0 valid, 1 invalid, 2 malformed)",
        description=_VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("vkey", type=Path, metavar="VKEY", help="verification_key.json")
    verify.add_argument("proof", type=Path, metavar="PROOF", help="proof.json")
    verify.add_argument("public", type=Path, metavar="PUBLIC", help="public.json")
    verify.set_defaults(func=handle_groth16_verify)

    prove_parser = commands.add_parser(
        "groth16-prove",
        help="prove an R1CS + witness with a .zkey or a test setup seed",
        description=_PROVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prove_parser.add_argument(
        "--r1cs", type=Path, required=True, help="R1CS file (snarkjs JSON or circom .r1cs)"
    )
    prove_parser.add_argument(
        "--witness", type=Path, required=True, help="witness file (snarkjs JSON or .wtns)"
    )
    keys = prove_parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--zkey", type=Path, help="snarkjs Groth16 proving key (.zkey)")
    keys.add_argument(
        "--test-setup-seed",
        type=int,
        metavar="N",
        help="derive INSECURE test keys from integer seed N (0 <= N < 2^256)",
    )
    prove_parser.add_argument("--out", type=Path, required=True, help="output directory")
    prove_parser.set_defaults(func=handle_groth16_prove)


def handle_groth16_verify(args: argparse.Namespace) -> int:
    """Verify; print the verdict; map decode errors to exit status 2."""
    try:
        vkey = _read_json(args.vkey)
        proof = _read_json(args.proof)
        public = _read_json(args.public)
        valid = verify_json(vkey, proof, public)
    except (Groth16DecodeError, _InputError) as exc:
        print(f"flopledger proofs groth16-verify: malformed input: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    if valid:
        print("groth16: proof is valid")
        return EXIT_VALID
    print("groth16: proof is INVALID")
    return EXIT_INVALID


def handle_groth16_prove(args: argparse.Namespace) -> int:
    """Check the witness, load or derive the keys, prove, write snarkjs JSON files."""
    try:
        r1cs_data = _read_bytes(args.r1cs)
        if is_r1cs_binary(r1cs_data):
            r1cs = decode_r1cs_binary(r1cs_data)
        else:
            r1cs = decode_r1cs(parse_json(r1cs_data, str(args.r1cs)))
        witness_data = _read_bytes(args.witness)
        if is_wtns_binary(witness_data):
            witness = decode_wtns(witness_data)
            if len(witness) != r1cs.n_vars:
                raise _InputError(f"{args.witness}: {len(witness)} wires, expected {r1cs.n_vars}")
        else:
            witness = decode_witness(parse_json(witness_data, str(args.witness)), r1cs.n_vars)
        broken = first_unsatisfied(r1cs, witness)
        if broken is not None:
            raise _InputError(f"{args.witness}: the witness violates constraint {broken}")
        vkey_json: dict[str, Any] | None = None
        if args.zkey is not None:
            pk = decode_zkey(_read_bytes(args.zkey))
            _check_key_matches(pk, r1cs.n_vars, r1cs.n_public, args.zkey)
        else:
            if not 0 <= args.test_setup_seed < SEED_LIMIT:
                raise _InputError("--test-setup-seed must be in [0, 2^256)")
            pk, vk = setup_from_seed(r1cs, args.test_setup_seed)
            vkey_json = encode_verification_key(vk)
        proof, public = prove(pk, witness)
    except (Groth16DecodeError, _InputError) as exc:
        print(f"flopledger proofs groth16-prove: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [_write_json(out / "proof.json", encode_proof(proof))]
        written.append(_write_json(out / "public.json", encode_public(public)))
        if vkey_json is not None:
            written.append(_write_json(out / "verification_key.json", vkey_json))
    except OSError as exc:
        print(f"flopledger proofs groth16-prove: cannot write {out}: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    print("groth16: wrote " + ", ".join(str(p) for p in written))
    return EXIT_VALID


class _InputError(Exception):
    """An unreadable file, invalid JSON, or inputs that do not fit together."""


def _check_key_matches(pk: ProvingKey, n_vars: int, n_public: int, path: Path) -> None:
    if (pk.n_vars, pk.n_public) != (n_vars, n_public):
        raise _InputError(
            f"{path}: key is for {pk.n_vars} wires / {pk.n_public} public signals, "
            f"the R1CS has {n_vars} / {n_public}"
        )


def _read_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(INPUT_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise _InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > INPUT_FILE_BYTES_MAX:
        raise _InputError(f"{path}: larger than {INPUT_FILE_BYTES_MAX} bytes")
    return data


def _read_json(path: Path) -> Any:
    return parse_json(_read_bytes(path), str(path))


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    return path


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_MALFORMED

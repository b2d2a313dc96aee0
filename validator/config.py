"""One validator process's settings (from the CLI and ``FLOP_*``); light to import, so that
``flopledger validator --help`` needs none of the re-execution dependencies."""

from __future__ import annotations

from pathlib import Path

import msgspec

DEFAULT_STAKE = 1_000


class ValidatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What one validator process needs (from the CLI and FLOP_* settings)."""

    api_url: str
    nats_url: str
    db_path: Path
    stake: int = DEFAULT_STAKE
    witness: bool = True
    log_signers: tuple[bytes, ...] = ()
    """Raw Ed25519 keys the sealed heads must be signed by; empty: any key that verifies."""
    check_models: tuple[str, ...] = ()
    """Registered model ids whose sampled completions this validator checks (loaded at
    start-up, ``validator.check_models``); drawn for another model's, it abstains."""

"""The one error a validator's ledger link raises for a command the ledger refused."""

from __future__ import annotations


class CommandRefused(Exception):
    """The ledger rejected a command (a rule said no): do not retry it."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

"""The base error of Tether: a message the user reads, plus what to do about it."""

from __future__ import annotations


class TetherError(Exception):
    """An error meant for the user. ``fix`` is one sentence on what to do; ``exit_code`` for the CLI."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message

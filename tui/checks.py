"""One line of `tether doctor`'s report, shared by the doctor and its scheduler checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def render(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        line = f"[{mark}] {self.name}: {self.detail}"
        return f"{line}\n       fix: {self.fix}" if self.fix and not self.ok else line


Report = Callable[[Check], None]

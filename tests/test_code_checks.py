"""The house rules, run with the suite (so CI and README's test command check them): ruff's lint
and format, mypy --strict on tui/, and the import contracts between the layers (pyproject.toml).

Each check is the tool itself, run by the project's own interpreter from the repository root; a
failure prints what the tool said."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PY = ["tui", "tests", "themes"]

CHECKS = {
    "ruff lint": [sys.executable, "-m", "ruff", "check", "--no-cache", *PY],
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", *PY],
    "mypy --strict": [sys.executable, "-m", "mypy"],  # files and strictness from pyproject.toml
    "import contracts": [str(BIN / "lint-imports"), "--no-cache"],
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_code_passes(name: str) -> None:
    done = subprocess.run(CHECKS[name], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"

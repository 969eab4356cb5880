"""`tether init` as typed: the command line's own words never end up in tether.toml.

argparse keeps the chosen subcommand in the parsed arguments; `tether init --yes` once wrote it as
the run command (``command = "init"``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tui.config import load_workspace
from tui.init import InitAnswers

ROOT = Path(__file__).resolve().parent.parent


def tether_init(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tui", "init", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_init_yes_writes_the_default_run_command(tmp_path: Path) -> None:
    result = tether_init("--yes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    workspace = load_workspace(tmp_path / "tether.toml")
    assert workspace.run.command == InitAnswers().command == "python main.py"


def test_init_command_option_still_sets_the_run_command(tmp_path: Path) -> None:
    result = tether_init("--yes", "--command", "python train.py --epochs 3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_workspace(tmp_path / "tether.toml").run.command == "python train.py --epochs 3"

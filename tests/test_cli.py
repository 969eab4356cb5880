"""The `tether` command as a user types it: bad config stops everything with exit 2; init; status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BROKEN = """\
[workspace]
remote_rot = "~/work/x"

[connection]
login = "me@hpc:70000"

[ports]
tensorboard = "abc"
"""


def tether(*args: str, cwd: Path, env_home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(env_home),
        "XDG_STATE_HOME": str(env_home / "state"),
        "XDG_RUNTIME_DIR": str(env_home / "run"),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("command", ["up", "attach", "down", "doctor", "status"])
def test_bad_config_reports_every_problem_and_exits_2_before_doing_anything(tmp_path: Path, command: str):
    (tmp_path / "tether.toml").write_text(BROKEN)
    result = tether(command, cwd=tmp_path, env_home=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert any(
        line.startswith("tether.toml:2: workspace.remote_rot: unknown key 'remote_rot'")
        and "did you mean 'remote_root'" in line
        for line in lines
    )
    assert any(
        line.startswith("tether.toml:1: workspace.remote_root:") for line in lines
    )  # missing: its section's line
    assert any(line.startswith("tether.toml:5: connection.login:") and "70000" in line for line in lines)
    assert any(line.startswith("tether.toml:8: ports.tensorboard:") for line in lines)
    assert result.stdout == ""
    assert not (tmp_path / "run").exists() and not (tmp_path / "state").exists()  # nothing else happened


def test_init_without_a_terminal_takes_the_defaults_and_never_overwrites(tmp_path: Path):
    project = tmp_path / "mnist"
    project.mkdir()
    first = tether("init", "--login", "me@hpc.example.org", cwd=project, env_home=tmp_path)
    assert first.returncode == 0, first.stderr
    text = (project / "tether.toml").read_text()
    assert 'login = "me@hpc.example.org"' in text and "~/work/mnist" in text and "#" in text
    (project / "tether.toml").write_text(text + "\n# my edit\n")
    again = tether("init", cwd=project, env_home=tmp_path)
    assert again.returncode != 0 and "--force" in again.stderr
    assert (project / "tether.toml").read_text().endswith("# my edit\n")
    forced = tether("init", "--force", cwd=project, env_home=tmp_path)
    assert forced.returncode == 0 and "# my edit" not in (project / "tether.toml").read_text()


def test_status_json_without_a_session(tmp_path: Path):
    tether("init", "--yes", cwd=tmp_path, env_home=tmp_path)
    result = tether("status", "--json", cwd=tmp_path, env_home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["session"] is None


def test_no_config_anywhere_says_run_init(tmp_path: Path):
    result = tether("doctor", cwd=tmp_path, env_home=tmp_path)
    assert result.returncode == 2 and "tether init" in result.stderr

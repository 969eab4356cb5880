"""`tether pull PATH` takes paths inside the workspace only, and says so before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui.errors import TetherError
from tui.sync.safety import workspace_path

ROOT = Path(__file__).resolve().parent.parent


def workspace(folder: Path) -> Path:
    """A workspace whose login host does not exist: any connection attempt would fail loudly."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tether.toml").write_text(
        '[workspace]\nname = "w"\nremote_root = "~/work/w"\n[connection]\nlogin = "me@127.0.0.1:1"\nconnect_timeout = 2\n'
    )
    return folder


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "outputs/../../x", "..", ".", ""])
def test_pull_refuses_paths_outside_the_workspace_before_connecting(tmp_path, tether_home, path):
    ws = workspace(tmp_path / "ws")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tui", "pull", path],
        cwd=ws,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "outside the workspace" in result.stderr or "inside the workspace" in result.stderr, result.stderr
    assert "rsync" not in result.stderr and "ssh" not in result.stderr and "Traceback" not in result.stderr
    assert "fix:" in result.stderr and "outputs/" in result.stderr
    assert time.monotonic() - started < 10  # no ssh attempt to wait for


def test_paths_inside_the_workspace_are_made_relative(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    assert workspace_path(root, "outputs/") == "outputs"
    assert workspace_path(root, "./outputs/run1/model.pt") == "outputs/run1/model.pt"
    assert workspace_path(root, str(root / "outputs" / "m.pt")) == "outputs/m.pt"  # absolute, but inside
    assert workspace_path(root, "a/../b") == "b"
    with pytest.raises(TetherError) as refused:
        workspace_path(root, str(tmp_path / "other"))
    assert "outside the workspace" in str(refused.value)

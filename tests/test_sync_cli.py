"""`tether sync` (one-shot, progress bar), `tether sync --watch` headless, `tether pull`, and
`tether status --json` showing the sync state, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_sync_support import REMOTE, fresh_remote, node_cat, node_exists
from testbed import wait_until
from workspaces import write_workspace

pytestmark = pytest.mark.needs_netns
ROOT = Path(__file__).resolve().parent.parent


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def tether(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_one_shot_sync_with_a_progress_bar_and_the_emptied_root_halt(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    write_workspace(ws, testbed)
    for i in range(2100):  # enough files for the first sync to go through rsync
        folder = ws / "src" / f"m{i // 100}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.py").write_text(f"x = {i}\n")
    result = tether("sync", cwd=ws)
    assert result.returncode == 0, result.stderr
    assert "files" in result.stderr and "[########################] 2102/2102 files" in result.stderr
    assert "the node is up to date" in result.stderr
    assert node_cat(testbed, "src/m20/f2099.py") == "x = 2099\n"

    for folder in (ws / "src").iterdir():  # the laptop's tree "emptied" (a checkout gone wrong)
        for file in folder.iterdir():
            file.unlink()
    halted = tether("sync", cwd=ws)
    assert halted.returncode == 1, halted.stderr
    assert "sync halted" in halted.stderr and "--allow-deletes" in halted.stderr
    assert node_exists(testbed, "src/m0/f0.py")
    allowed = tether("sync", "--allow-deletes", cwd=ws)
    assert allowed.returncode == 0, allowed.stderr
    assert not node_exists(testbed, "src/m0/f0.py")


def test_watch_headless_status_json_and_pull(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    write_workspace(ws, testbed)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tui", "sync", "--watch"],
        cwd=ws,
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: node_cat(testbed, "train.py") is not None or watcher.poll() is not None, 30, 0.1)
        assert watcher.poll() is None
        (ws / "edit.py").write_text("saved\n")
        wait_until(lambda: node_cat(testbed, "edit.py") == "saved\n", 15, 0.05, "the edit on the node")

        def sync_state() -> dict | None:
            result = tether("status", "--json", cwd=ws)
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)["sync"]

        state = wait_until(
            lambda: (s := sync_state()) and s["state"] == "up to date" and s["last_push_files"] and s, 15, 0.1
        )
        assert state["running"] is True and state["workspace"] == "tbws" and state["last_push_ms"] > 0

        testbed.node_run_as_user(
            f"mkdir -p ~/{REMOTE}/outputs && echo result > ~/{REMOTE}/outputs/metrics.json", check=True
        )
        pulled = tether("pull", "outputs/metrics.json", cwd=ws)
        assert pulled.returncode == 0, pulled.stderr
        assert (ws / "outputs" / "metrics.json").read_text() == "result\n"
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            _, stderr = watcher.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            watcher.kill()
            _, stderr = watcher.communicate()
    assert watcher.returncode == 0, stderr
    assert "watching" in stderr and "sync: up to date" in stderr
    after = json.loads(tether("status", "--json", cwd=ws).stdout)
    assert after["sync"] is None  # the watcher said goodbye

"""`tether pull` beside a running sync: it only reads from the node, so the sync goes on, and what it
brings back belongs to the laptop's user.

A pull once opened the remote root as a sync does (``files.open``), which hands the root to the
newest agent: the running sync's next push was dropped ("a newer sync took this remote root
over"). And rsync ``-a`` run as root on the laptop kept the node's uid on the pulled files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_sync_support import REMOTE, fresh_remote, node_cat
from testbed import wait_until
from workspaces import write_workspace

pytestmark = pytest.mark.needs_netns
ROOT = Path(__file__).resolve().parent.parent


def tether(*args: str, cwd: Path, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tui", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_pull_leaves_the_running_sync_its_root_and_gives_the_files_to_the_laptop_user(
    needs_netns, tether_home, tmp_path
):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    write_workspace(ws, testbed)
    watcher = tether("sync", "--watch", cwd=ws)
    try:
        wait_until(lambda: node_cat(testbed, "train.py") is not None or watcher.poll() is not None, 30, 0.1)
        assert watcher.poll() is None
        testbed.node_run_as_user(
            f"mkdir -p ~/{REMOTE}/outputs && echo result > ~/{REMOTE}/outputs/metrics.json", check=True
        )
        pull = tether("pull", "outputs/", cwd=ws)
        _, pull_err = pull.communicate(timeout=60)
        assert pull.returncode == 0, pull_err
        pulled = ws / "outputs" / "metrics.json"
        assert pulled.read_text() == "result\n"
        for path in (pulled, pulled.parent):
            st = path.stat()
            assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), f"{path} is owned by {st.st_uid}:{st.st_gid}"

        # The running sync still owns the root: an edit after the pull reaches the node.
        (ws / "after_pull.py").write_text("still synced\n")
        wait_until(
            lambda: node_cat(testbed, "after_pull.py") == "still synced\n" or watcher.poll() is not None,
            20,
            0.05,
            "the edit after the pull on the node",
        )
        assert watcher.poll() is None
        assert node_cat(testbed, "after_pull.py") == "still synced\n"
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            _, stderr = watcher.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            watcher.kill()
            _, stderr = watcher.communicate()
    assert "took this remote root over" not in stderr, stderr
    assert watcher.returncode == 0, stderr

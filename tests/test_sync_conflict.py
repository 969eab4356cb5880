"""Edits made on the node are kept as conflict copies; `pull` brings outputs back; sync_via = "login"."""

from __future__ import annotations

import pytest
from test_sync_support import REMOTE, fresh_remote, node_cat, node_exists, running_engine, until
from workspaces import write_workspace

from tui.config import load_workspace
from tui.events import Notice
from tui.session import Session
from tui.sync.engine import SyncEngine
from tui.sync.status import SyncConflict
from tui.sync.target import LoginTarget

pytestmark = pytest.mark.needs_netns


async def test_a_node_side_edit_is_kept_as_a_conflict_copy_and_reported(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "model.py").write_text("v1 laptop\n")
    (ws / "big.bin").write_bytes(b"0" * 2_000_000)  # above the agent's limit: goes by rsync
    async with running_engine(testbed, ws) as (link, engine, events):
        # Someone edits on the node (vim over ssh), then the laptop saves its own edit.
        testbed.node_run_as_user(
            f"sleep 0.01; echo 'node edit' >> ~/{REMOTE}/model.py; echo x >> ~/{REMOTE}/big.bin", check=True
        )
        (ws / "model.py").write_text("v2 laptop\n")
        (ws / "big.bin").write_bytes(b"1" * 2_000_000)
        await engine.wait_synced(timeout=10)
        assert node_cat(testbed, "model.py") == "v2 laptop\n"
        conflicts = {c.path: c.copy for c in events if isinstance(c, SyncConflict)}
        assert set(conflicts) == {"model.py", "big.bin"}
        copy = conflicts["model.py"]
        assert copy.startswith("model.conflict-node-") and copy.endswith(".py")
        assert node_cat(testbed, copy) == "v1 laptop\nnode edit\n"  # the node's version, beside it
        await until(lambda: (ws / copy).exists(), what="the conflict copy on the laptop")
        assert (ws / copy).read_text() == "v1 laptop\nnode edit\n"  # and on the laptop, to merge
        assert any(isinstance(e, Notice) and "edited on the node" in e.message for e in events)
        assert engine.status.conflicts == 2

        # An edit the laptop made twice in a row is not a conflict (Tether wrote the node's copy).
        (ws / "model.py").write_text("v3 laptop\n")
        await engine.wait_synced(timeout=10)
        assert len([e for e in events if isinstance(e, SyncConflict)]) == 2


async def test_pull_brings_a_node_written_output_back(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    ws.mkdir()
    async with running_engine(testbed, ws) as (link, engine, events):
        testbed.node_run_as_user(
            f"mkdir -p ~/{REMOTE}/outputs/run1 && echo weights > ~/{REMOTE}/outputs/run1/model.pt", check=True
        )
        await engine.pull("outputs/run1")
        assert (ws / "outputs" / "run1" / "model.pt").read_text() == "weights\n"
        await engine.wait_synced(timeout=10)
        assert node_cat(testbed, "outputs/run1/model.pt") == "weights\n"  # protected: untouched


async def test_sync_via_login_writes_through_the_login_host_alone(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    testbed.login_run_as_user(f"rm -rf ~/{REMOTE}")
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    config = write_workspace(ws, testbed)
    config.write_text(config.read_text().replace("connect_timeout = 5", 'connect_timeout = 5\nsync_via = "login"'))
    workspace = load_workspace(ws / "tether.toml")
    assert workspace.connection.sync_via == "login"
    session = Session(workspace)
    await session.prepare()  # the login master only: no node, no supervisor (a job may still be queued)
    engine = SyncEngine(workspace, LoginTarget(session.login_master(), restart_master=True), lambda event: None)
    try:
        await engine.start()
        (ws / "late.py").write_text("late\n")
        await engine.wait_synced(timeout=10)
        assert testbed.login_run_as_user(f"cat ~/{REMOTE}/late.py").stdout == "late\n"
        assert testbed.login_run_as_user(f"cat ~/{REMOTE}/train.py").returncode == 0
        assert not node_exists(testbed, "train.py")  # the node's private home saw nothing
    finally:
        await engine.close()
        await session.down()
        testbed.login_run_as_user(f"rm -rf ~/{REMOTE}")

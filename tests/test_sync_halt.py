"""The emptied-root halt counts right, clears itself once the cause is gone, and can be released
(allow the deletes, or rescan and resume) without restarting sync."""

from __future__ import annotations

import shutil

import pytest
from test_sync_support import fresh_remote, node_cat, node_exists, running_engine, statuses, until

from tui.sync.status import SyncHaltReport, SyncState

pytestmark = pytest.mark.needs_netns


def model_workspace(ws):
    for i in range(59):  # with train.py and tether.toml: 61 files
        path = ws / "model" / f"layer{i % 4}" / f"w{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"w = {i}\n")
    (ws / "train.py").write_text("t\n")


async def halted(engine) -> None:
    await until(lambda: engine.status.state is SyncState.HALTED, 15, what="the halt")


async def test_rm_rf_a_folder_halts_with_the_right_counts_and_restoring_it_clears_the_halt(
    needs_netns, tether_home, tmp_path
):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    model_workspace(ws)
    saved = tmp_path / "saved-model"
    shutil.copytree(ws / "model", saved)
    async with running_engine(testbed, ws) as (link, engine, events):
        shutil.rmtree(ws / "model")
        await halted(engine)
        assert "would delete 59 of the 61 files" in engine.status.detail
        assert [r.total for r in events if isinstance(r, SyncHaltReport)] == [59]
        assert node_exists(testbed, "model/layer0/w0.py")
        shutil.copytree(saved, ws / "model")  # the folder is back: nothing to delete any more
        await until(
            lambda: engine.status.state is SyncState.UP_TO_DATE and not engine.pending, 15, what="the halt cleared"
        )
        (ws / "train.py").write_text("edited\n")
        await engine.wait_synced(timeout=10)
        assert node_cat(testbed, "train.py") == "edited\n"
        assert node_cat(testbed, "model/layer2/w58.py") == "w = 58\n"


async def test_a_halt_is_released_by_rescan_or_by_allowing_the_deletes(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    model_workspace(ws)
    async with running_engine(testbed, ws) as (link, engine, events):
        shutil.rmtree(ws / "model")
        await halted(engine)
        seen = len(events)
        engine.rescan()  # the cause is still there: the full comparison halts again, counting the same

        def halted_after_a_scan() -> bool:
            states = [e.state for e in statuses(events[seen:])]
            return SyncState.SCANNING in states and states[-1] is SyncState.HALTED

        await until(halted_after_a_scan, 15, what="halted again after the rescan")
        assert "59 of the 61" in engine.status.detail
        assert node_exists(testbed, "model/layer0/w0.py")
        engine.allow_deletes_once()
        await until(lambda: engine.status.state is SyncState.UP_TO_DATE, 15, what="up to date")
        assert not node_exists(testbed, "model")
        (ws / "train.py").write_text("after\n")
        await engine.wait_synced(timeout=10)
        assert node_cat(testbed, "train.py") == "after\n"

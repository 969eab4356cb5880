"""Pausing sync (the console's "Sync: pause") holds edits on the laptop and loses none: on resume
they all reach the node. Real sshd, rsync and agent on the test bed."""

from __future__ import annotations

import pytest
from test_sync_support import fresh_remote, node_cat, running_engine, until

from tui.events import SyncState, SyncStatus

pytestmark = pytest.mark.needs_netns


async def test_edits_made_while_paused_arrive_on_resume(needs_netns, tether_home, tmp_path):
    fresh_remote(needs_netns)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "model.py").write_text("v1\n")
    async with running_engine(needs_netns, ws) as (link, engine, events):
        assert node_cat(needs_netns, "model.py") == "v1\n"
        engine.pause()
        (ws / "model.py").write_text("v2 while paused\n")
        (ws / "new.py").write_text("new\n")
        await until(
            lambda: any(isinstance(e, SyncStatus) and e.state is SyncState.PAUSED and e.pending >= 2 for e in events),
            what="the paused status counting both edits",
        )
        assert node_cat(needs_netns, "model.py") == "v1\n"  # held on the laptop
        engine.resume()
        await engine.wait_synced(timeout=10)
        assert node_cat(needs_netns, "model.py") == "v2 while paused\n"
        assert node_cat(needs_netns, "new.py") == "new\n"

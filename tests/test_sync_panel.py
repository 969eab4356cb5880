"""The sync panel shows the state words, the first-sync progress and conflicts."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Label

from tui.app.widgets.sync_panel import SyncPanel, describe_status
from tui.sync.status import SyncConflict, SyncProgress, SyncState, SyncStatus


def test_status_words():
    status = SyncStatus("w", SyncState.UP_TO_DATE, last_push_ms=4.2, last_push_bytes=2048, last_push_files=1)
    assert describe_status(status) == "up to date · last push 4 ms, 1 file, 2.0 KB"
    assert describe_status(SyncStatus("w", SyncState.LINK_LOST, pending=3)) == "link lost, 3 changes pending"
    assert "1 conflict copy" in describe_status(SyncStatus("w", SyncState.UP_TO_DATE, conflicts=1))


class PanelApp(App):
    def compose(self) -> ComposeResult:
        yield SyncPanel()


async def test_panel_follows_the_events():
    app = PanelApp()
    async with app.run_test() as pilot:
        panel = app.query_one(SyncPanel)
        panel.show(SyncProgress("w", 10, 100, 1_000_000, 4_000_000, "31MB/s", "0:00:03"))
        await pilot.pause()
        assert panel.has_class("-progress")
        assert "10/100 files" in str(panel.query_one("#sync-state", Label).render())
        panel.show(SyncStatus("w", SyncState.HALTED, detail="sync halted: this push would delete 30 of the 40 files"))
        await pilot.pause()
        assert panel.has_class("-halted") and not panel.has_class("-progress")
        panel.show(SyncConflict("w", "model.py", "model.conflict-node-1.py"))
        await pilot.pause()
        assert panel.has_class("-conflict")
        assert "model.conflict-node-1.py" in str(panel.query_one("#sync-conflict", Label).render())

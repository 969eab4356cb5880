"""A real sync halt in the console: the laptop's folder of the model is removed by mistake, the
engine holds the deletes back, the console says so once in a notification that names the key, and
the node's files are all still there until the user chooses."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from console_helpers import screen_text, wait_until
from node_helpers import clean_node, tick_workspace
from test_sync_support import fresh_remote, node_exists
from testbed import Testbed

from tui.app import TetherApp
from tui.app.screens import SyncHaltScreen
from tui.cli import main
from tui.config import load_workspace
from tui.events import SyncState
from tui.session import Session

pytestmark = pytest.mark.needs_netns


def titles(app: TetherApp) -> list[str]:
    return [str(n.title) for n in app._notifications]


async def test_an_rm_rf_halts_sync_with_one_notification_and_the_node_keeps_its_files(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    clean_node(testbed)
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    config = tick_workspace(ws, testbed)
    for i in range(30):
        (ws / "model" / f"w{i}.py").parent.mkdir(parents=True, exist_ok=True)
        (ws / "model" / f"w{i}.py").write_text(f"w = {i}\n")
    session = Session(load_workspace(config), ping_interval=0.5)
    await session.prepare()
    app = TetherApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.sync_state is SyncState.UP_TO_DATE, 40)
        assert node_exists(testbed, "model/w29.py")

        shutil.rmtree(ws / "model")
        await wait_until(pilot, lambda: "Sync halted" in titles(app), 20)
        assert titles(app).count("Sync halted") == 1
        told = next(str(n.message) for n in app._notifications if n.title == "Sync halted")
        assert "would delete 30 of the" in told and "Press s" in told, told
        assert node_exists(testbed, "model/w0.py") and node_exists(testbed, "model/w29.py")

        await pilot.press("s")  # the key the notification names opens the choice
        await wait_until(pilot, lambda: isinstance(app.screen, SyncHaltScreen))
        assert "Rescan and resume" in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SyncHaltScreen))
        assert node_exists(testbed, "model/w0.py")  # cancelled: still nothing deleted
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
    # The node still holds the model the halt kept: the next test's first sync must not meet it.
    fresh_remote(testbed)

"""restart_on_sync on the real testbed: a local edit restarts the run exactly once, and only after
the node has the edit (the restarted run prints the new version). And `r` after an edit: the run
the loop kept ready (its standby, started before the edit) runs the edited file, never the old."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from debug_helpers import debug_console, rank, script_workspace, status
from node_helpers import Events
from testbed import Testbed

from tui.config import load_workspace
from tui.events import SyncState, SyncStatus
from tui.session import Session

pytestmark = pytest.mark.needs_netns

SCRIPT = (
    'import time\nVERSION = {version}\nprint("running version", VERSION, flush=True)\nwhile True:\n    time.sleep(1)\n'
)


async def test_a_local_edit_restarts_the_run_once_after_the_node_has_it(node: Testbed, tmp_path: Path):
    folder = tmp_path / "ws"
    config = script_workspace(folder, node, SCRIPT.format(version=1), name="ver.py", extra="restart_on_sync = true")
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(
        session, events, lambda: status(events) == "running" and "running version 1" in events.output()
    ):
        assert rank(events).restarts == 0
        (folder / "ver.py").write_text(SCRIPT.format(version=2))
        await events.until(lambda: rank(events).restarts == 1 and "running version 2" in events.output(), 30)
        # Exactly one restart: nothing more happens once the change has landed.
        await asyncio.sleep(3)
        assert rank(events).restarts == 1
        assert node.node_run_as_user("grep VERSION ~/work/tbws/ver.py").stdout.startswith("VERSION = 2")
    await session.down()


def standby_ready(node: Testbed) -> bool:
    """The node's loop has its next run started ahead (its state file says so)."""
    done = node.node_run_as_user("cat ~/.cache/tether/runs/tbws/loop0/state.json")
    return done.returncode == 0 and json.loads(done.stdout).get("standby_pid") is not None


async def test_r_after_an_edit_runs_the_edit_though_the_next_run_was_started_before_it(node: Testbed, tmp_path: Path):
    folder = tmp_path / "ws"
    config = script_workspace(folder, node, SCRIPT.format(version=1), name="ver.py")
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(
        session, events, lambda: status(events) == "running" and "running version 1" in events.output()
    ):
        for version in (2, 3):
            await events.until(lambda: standby_ready(node), 30)  # the next run, started before the edit
            seen = len(events.of(SyncStatus))
            (folder / "ver.py").write_text(SCRIPT.format(version=version))
            await events.until(
                lambda: (
                    any(s.state is SyncState.UP_TO_DATE for s in events.of(SyncStatus)[seen:])
                    and f"VERSION = {version}" in node.node_run_as_user("grep VERSION ~/work/tbws/ver.py").stdout
                ),
                30,
            )
            await session.restart_run()
            await events.until(lambda: f"running version {version}" in events.output(), 30)
            handed = [line for line in events.output() if f"restart {version - 1}:" in line]
            assert handed and handed[-1].endswith("(started ahead)"), handed  # the standby ran it
    await session.down()

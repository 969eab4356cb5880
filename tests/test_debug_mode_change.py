"""A changed ``[debug] mode`` reaches a kept run without killing it (issue 12, item 9: "a changed
`[debug] mode` is ignored until the layout is rebuilt (killing the run)"). After the change and a
reattach the run goes on as it was, the console says when the new mode applies, and the restart
key's restart starts the run in the new mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from debug_helpers import debug_console, rank, script_workspace, status
from node_helpers import Events
from testbed import Testbed

from tui.config import load_workspace
from tui.debug.dap import DapClient
from tui.events import Notice, RunState
from tui.session import Session

pytestmark = pytest.mark.needs_netns

FOREVER = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(0.1)\n"
TOLD = "debug mode wait takes effect at the next restart (r)"


def run_mode(events: Events) -> str:
    found = events.of(RunState)
    return found[-1].mode if found else ""


async def test_a_changed_mode_applies_at_the_next_restart_and_kills_nothing(node: Testbed, tmp_path: Path):
    folder = tmp_path / "ws"
    config = script_workspace(folder, node, FOREVER)
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: status(events) == "running" and "up" in events.output()):
        pid = rank(events).pid
    # The user switches to mode "wait" while the run goes on, then comes back (`tether attach`).
    script_workspace(folder, node, FOREVER, extra='[debug]\nmode = "wait"')
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(
        session, events, lambda: status(events) == "running" and any(n.message == TOLD for n in events.of(Notice))
    ):
        state = rank(events)
        assert state.pid == pid and state.restarts == 0  # the run the user did not ask to stop goes on
        assert run_mode(events) == "attach"  # as it runs now; the note says when that changes
        assert not any("rebuilt" in line for line in events.output())
        await session.restart_run()  # r
        await events.until(lambda: rank(events).restarts == 1 and status(events) == "waiting_for_debugger", 30)
        assert rank(events).pid != pid and run_mode(events) == "wait"
        client = await DapClient.connect_initialized("127.0.0.1", rank(events).local_port, timeout=20)
        await client.attach()  # mode wait: the run goes on once a debugger came
        await events.until(lambda: events.output().count("up") >= 2, 20)
        await client.disconnect()
    await session.down()

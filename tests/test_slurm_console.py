"""`tether up` on a Slurm workspace against the real Slurm: the console gets a job, shows the wait,
finds the node, lays out tmux and starts the run there, and warns that the (short) job ends soon;
`q` then attach reuses the job; a scancel from outside is shown within 10 s; `tether down` leaves
no job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from console_helpers import header_state, screen_text, wait_until
from testbed import Testbed
from testbed.slurm import SlurmCluster
from workspaces import write_workspace

from tui.app import DETACHED, TetherApp
from tui.app.widgets import EventLog
from tui.cli import main
from tui.config import load_workspace
from tui.session import Session

pytestmark = pytest.mark.needs_netns

SLURM = """
[scheduler]
kind = "slurm"
time = "00:09:00"
"""


def tmux_sessions_on_node(testbed: Testbed) -> str:
    """The sessions of the holder job's tmux server (socket tether-<workspace>)."""
    return testbed.node_run_as_user("tmux -L tether-tbws ls 2>/dev/null || true").stdout


async def test_console_on_slurm_gets_a_job_reuses_it_and_sees_a_scancel(
    needs_netns: Testbed, slurm: SlurmCluster, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    config = write_workspace(tmp_path / "ws", testbed, node="", extra=SLURM)
    assert load_workspace(config).connection.node_from_scheduler

    session = Session(load_workspace(config), ping_interval=0.5)
    await session.prepare()
    app = TetherApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 60)
        text = screen_text(app)
        assert "login → compute01" in text
        await wait_until(
            pilot, lambda: "Slurm job" in screen_text(app) and "running on compute01" in screen_text(app), 20
        )
        await wait_until(pilot, lambda: "tether-tbws" in tmux_sessions_on_node(testbed), 30)
        job = session.allocation.job_id
        assert slurm.jobs() == [job]
        # A job of 9 minutes is in its last ten from the start: said once, with what to do.
        ending = [str(n.message) for n in app._notifications if n.title == "Job ending soon"]
        assert len(ending) == 1 and f"job {job} ends in " in ending[0] and "save checkpoints" in ending[0], ending
        assert not [line for line in app.query_one(EventLog).lines_text if "ends in" in line]  # not said twice
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    assert app.return_value == DETACHED
    assert slurm.jobs() == [job]  # detached: the job keeps the node

    again = Session(load_workspace(config), ping_interval=0.5)
    app = TetherApp(again)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 60)
        assert again.allocation.job_id == job  # reattached to the same job
        slurm.run(["scancel", job], check=True)
        loop = asyncio.get_running_loop()
        cancelled_at = loop.time()
        await wait_until(pilot, lambda: "was cancelled" in screen_text(app), 10)
        assert loop.time() - cancelled_at < 10
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)

    assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
    assert slurm.jobs() == []
    assert "tether-tbws" not in tmux_sessions_on_node(testbed)

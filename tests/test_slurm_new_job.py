"""The job's time left and a new job with one key, against the real Slurm: the header counts the
holder job's time down; a scancel from outside is shown as ended; the new-job key submits a new
holder job and the link comes back on it; `tether down` leaves no job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from console_helpers import header_state, screen_text, wait_until
from testbed import Testbed
from testbed.slurm import SlurmCluster
from workspaces import write_workspace

from tui.app import DETACHED, TetherApp
from tui.app.widgets import EventLog, JobClock, LinkHeader
from tui.cli import main
from tui.config import load_workspace
from tui.errors import TetherError
from tui.events import LinkState
from tui.session import Session

pytestmark = pytest.mark.needs_netns

SLURM = """
[scheduler]
kind = "slurm"
time = "00:30:00"
"""


async def test_header_shows_time_left_and_the_new_job_key_replaces_a_cancelled_job(
    needs_netns: Testbed, slurm: SlurmCluster, tether_home: Path, tmp_path: Path
):
    config = write_workspace(tmp_path / "ws", needs_netns, node="", extra=SLURM)
    session = Session(load_workspace(config), ping_interval=0.5)
    await session.prepare()
    app = TetherApp(session)
    async with app.run_test(size=(160, 40)) as pilot:
        header = app.query_one(LinkHeader)
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 60)
        assert session.allocation is not None
        job = session.allocation.job_id
        assert job is not None and slurm.jobs() == [job]
        await wait_until(pilot, lambda: header.job_text.endswith(" left") and header.job_text in screen_text(app))
        # time = 30 min, so a little under that: "29 min" (or "30 min" in the first second).
        assert header.job_text in (f"job {job} · 29 min left", f"job {job} · 30 min left")
        assert not app.query_one(JobClock).has_class("-ending")
        assert app.check_action("allocate_again", ()) is None  # shown, dimmed: the job runs
        with pytest.raises(TetherError, match=f"Slurm job {job} running on compute01: it has not ended"):
            await session.allocate_again()  # what the key would do: a live job is never dropped
        assert session.recorded_allocation() is not None and slurm.jobs() == [job]

        slurm.run(["scancel", job], check=True)
        await wait_until(pilot, lambda: "was cancelled" in screen_text(app), 10)
        await wait_until(pilot, lambda: header.job_text == f"job {job} · ended")
        assert app.query_one(JobClock).has_class("-ended")
        assert "press A for a new job" in screen_text(app)

        # Nothing has replaced the job yet: that is the key's to do.
        assert session.allocation.job_id == job and slurm.jobs() == []
        assert app.check_action("allocate_again", ()) is True
        await pilot.press("A")
        log = app.query_one(EventLog)
        await wait_until(pilot, lambda: f"Slurm job {job} is forgotten; asking Slurm for a new job" in log.lines_text)
        await wait_until(
            pilot, lambda: session.allocation is not None and session.allocation.job_id not in (None, job), 30
        )
        new = session.allocation.job_id
        assert new is not None
        await wait_until(
            pilot,
            lambda: (
                session.supervisor is not None
                and session.supervisor.state.state is LinkState.UP
                and header_state(app).startswith("up ")
            ),
            30,
        )
        assert slurm.jobs() == [new]
        await wait_until(
            pilot, lambda: header.job_text.startswith(f"job {new} · ") and header.job_text.endswith(" left")
        )
        assert "login → compute01" in screen_text(app)
        assert not any("No new job" in line for line in log.lines_text)

        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    assert app.return_value == DETACHED
    assert slurm.jobs() == [new]  # detached: the new job keeps the node

    assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
    assert slurm.jobs() == []


async def test_a_direct_host_has_no_job_to_replace(needs_netns: Testbed, tether_home: Path, tmp_path: Path):
    session = Session(load_workspace(write_workspace(tmp_path / "ws", needs_netns)))
    with pytest.raises(TetherError, match='kind = "direct" uses a fixed host, there is no job to replace'):
        await session.allocate_again()

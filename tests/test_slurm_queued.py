"""`q` while the holder job still waits in the real Slurm's queue: the job stays queued (never
cancelled behind the user's back), the console says so, `tether attach` waits for it and connects
once it runs, and only `tether down` cancels it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from console_helpers import header_state, screen_text, wait_until
from testbed import Testbed
from testbed.slurm import SlurmCluster
from testbed.wait import wait_until as wait_until_sync
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
time = "00:30:00"
"""


def job_state(slurm: SlurmCluster, job: str) -> str:
    return slurm.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"]).stdout.strip()


def kill_requests(slurm: SlurmCluster) -> int:
    log = slurm.dir / "ctld" / "slurmctld.log"
    return log.read_text(errors="replace").count("REQUEST_KILL_JOB") if log.exists() else 0


async def test_q_while_queued_keeps_the_job_and_attach_picks_it_up(
    needs_netns: Testbed, slurm: SlurmCluster, tether_home: Path, tmp_path: Path
):
    # Another job holds every CPU of the only node: the holder job must wait (Resources).
    blocker = slurm.user_run(f"sbatch --parsable --output=/dev/null -c {slurm.cpus} --wrap 'sleep 600'").stdout.strip()
    try:
        await asyncio.to_thread(wait_until_sync, lambda: job_state(slurm, blocker) == "RUNNING", 20)
        config = write_workspace(tmp_path / "ws", needs_netns, node="", extra=SLURM)
        session = Session(load_workspace(config), ping_interval=0.5)
        await session.prepare()
        app = TetherApp(session)
        async with app.run_test(size=(140, 40)) as pilot:
            log = app.query_one(EventLog)
            await wait_until(pilot, lambda: any("pending for" in line for line in log.lines_text), 30)
            (job,) = [j for j in slurm.jobs() if j != blocker]
            # Never up yet is no lost link: the sync waits for the node, and says so.
            await wait_until(pilot, lambda: "sync: waiting for the node" in screen_text(app), 10)
            assert "link lost" not in screen_text(app)
            kills = kill_requests(slurm)
            await pilot.press("q")
            await wait_until(pilot, lambda: app.return_value is not None, 20)
        assert app.return_value == DETACHED
        assert job_state(slurm, job) == "PENDING"  # still queued: nothing cancelled it
        assert kill_requests(slurm) == kills
        assert session.detach_message == f"Detached: job {job} is still queued; `tether attach` picks it up."
        assert app.detach_message == session.detach_message

        # `tether attach`: waits for the same job, and connects once it runs.
        again = Session(load_workspace(config), ping_interval=0.5, may_submit=False)
        app = TetherApp(again)
        async with app.run_test(size=(140, 40)) as pilot:
            log = app.query_one(EventLog)
            await wait_until(
                pilot, lambda: any(f"Slurm job {job}" in line and "waiting" in line for line in log.lines_text), 30
            )
            assert job_state(slurm, job) == "PENDING"
            slurm.run(["scancel", blocker], check=True)
            await wait_until(pilot, lambda: header_state(app).startswith("up "), 60)
            assert again.allocation is not None and again.allocation.job_id == job
            assert "login → compute01" in screen_text(app)
            await pilot.press("q")
            await wait_until(pilot, lambda: app.return_value is not None, 20)
        assert slurm.jobs() == [job]
        assert "keeps running" in again.detach_message

        assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
        assert slurm.jobs() == []
    finally:
        slurm.run(["scancel", blocker])

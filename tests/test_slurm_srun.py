"""The srun-only path against the real Slurm: with the node's sshd stopped, everything reaches the
node as steps of the holder job (`srun --jobid=ID --overlap` run from the login host): sync, the
tmux layout, the run, a DAP attach through the forward (carried by the agent's channel), and `a`.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from debug_helpers import debug_console, debuggable, rank, script_workspace, status
from node_helpers import Events, link_up
from testbed import Testbed
from testbed.slurm import SlurmCluster
from testbed.wait import wait_until as wait_until_sync

from tui.cli import main
from tui.config import load_workspace
from tui.debug.dap import DapClient
from tui.events import LinkChanged, Notice
from tui.session import Session
from tui.state import StateStore

pytestmark = pytest.mark.needs_netns

SOCKET = "tether-tbws"  # the holder job's tmux socket for workspace "tbws"
RUN = "import os, time\nprint('run pid', os.getpid(), flush=True)\nwhile True:\n    time.sleep(0.2)\n"
SLURM_AUTO = '[scheduler]\nkind = "slurm"\ntime = "00:30:00"'  # node_access = "auto": ssh, else srun


@pytest.fixture
def node_without_ssh(needs_netns: Testbed) -> Iterator[Testbed]:
    """The compute node with its sshd stopped, as on sites whose nodes take no ssh at all."""
    needs_netns.node.stop()
    try:
        yield needs_netns
    finally:
        needs_netns.node.start()


def job_tmux(testbed: Testbed, args: str) -> subprocess.CompletedProcess[str]:
    return testbed.node_run_as_user(f"tmux -L {SOCKET} {args}")


def run_pid_alive(testbed: Testbed, pid: int) -> bool:
    return testbed.node_run_as_user(f"kill -0 {pid}").returncode == 0


async def test_srun_only_syncs_lays_out_runs_and_debugs(
    node_without_ssh: Testbed, slurm: SlurmCluster, tether_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    testbed = node_without_ssh
    folder = tmp_path / "ws"
    config = script_workspace(folder, testbed, RUN, name="run.py", node="", extra=SLURM_AUTO)
    (folder / "data.txt").write_text("synced without ssh\n")
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()

    async with debug_console(session, events, lambda: debuggable(events), timeout=60):
        job = session.allocation.job_id
        assert slurm.jobs() == [job]
        assert any("takes no ssh" in n.message and "srun" in n.message for n in events.of(Notice))
        assert StateStore().load(session.ws_id).node_access == "srun"

        # Sync: the file is on the node's own disk.
        assert testbed.node_run_as_user("cat ~/work/tbws/data.txt").stdout == "synced without ssh\n"
        # The layout is in the holder job's tmux server (its placeholder session proves who started it).
        sessions = job_tmux(testbed, "list-sessions -F '#{session_name}'").stdout.split()
        assert sorted(sessions) == ["_tether_holder", "tether-tbws"]
        # The run runs, and its output reaches the console.
        await events.until(lambda: any(line.startswith("run pid ") for line in events.output()), 20)

        # DAP through the forward: the laptop port leads to debugpy on the node's 127.0.0.1.
        client = await DapClient.connect_initialized("127.0.0.1", rank(events).local_port, timeout=20)
        await client.attach()
        await events.until(lambda: status(events) == "attached", 20)
        threads = await client.request("threads")
        assert threads["threads"], threads
        await client.disconnect()
        await events.until(lambda: status(events) == "running", 20)
        # The run as it is now (the loop may have restarted it since it first printed its pid).
        pid = int([line for line in events.output() if line.startswith("run pid ")][-1].split()[2])

    # Detached: the agent's srun step ended, the run (in the job's own tmux server) goes on.
    assert run_pid_alive(testbed, pid), (events.output()[-5:], job_tmux(testbed, "ls").stdout)
    assert slurm.jobs() == [job]

    # `tether sync` without the console reaches the node the way the console did (srun steps).
    (folder / "later.txt").write_text("synced by tether sync\n")
    assert await asyncio.to_thread(main, ["-c", str(config), "sync"]) == 0
    assert testbed.node_run_as_user("cat ~/work/tbws/later.txt").stdout == "synced by tether sync\n"

    # The doctor checks the node of the held job the same way, and takes no second job.
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["-c", str(config), "doctor"]) == 0
    report = capsys.readouterr().out
    assert f"compute01 takes no ssh: reached as steps of job {job}" in report, report
    assert "[ok  ] tmux (node)" in report and "[ok  ] debugpy" in report, report
    assert slurm.jobs() == [job]

    assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
    assert slurm.jobs() == []
    await asyncio.to_thread(wait_until_sync, lambda: not run_pid_alive(testbed, pid), 15)
    assert job_tmux(testbed, "list-sessions").returncode != 0  # the job's tmux server ended with it


async def test_a_job_that_ends_is_not_replaced_until_asked(
    node_without_ssh: Testbed, slurm: SlurmCluster, tether_home: Path, tmp_path: Path
):
    """Through srun the agent dies with the job, so the link drops: the reconnect must not quietly
    submit a new job (the run's state is gone, and a job left behind burns the user's hours)."""
    testbed = node_without_ssh
    config = script_workspace(
        tmp_path / "ws", testbed, RUN, name="run.py", node="", extra=SLURM_AUTO + '\nnode_access = "srun"'
    )
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: bool(events.output()), timeout=60):
        first = session.allocation.job_id
        slurm.run(["scancel", first], check=True)
        await events.until(
            lambda: any("press A in the console for a new job" in e.detail for e in events.of(LinkChanged)), 30
        )
        await asyncio.sleep(3)  # a few reconnect attempts later, still no new job
        assert slurm.jobs() == []
        await session.allocate_again()
        await events.until(
            lambda: session.allocation is not None and session.allocation.job_id != first and link_up(events), 60
        )
        assert slurm.jobs() == [session.allocation.job_id]
    await session.down()
    assert slurm.jobs() == []


def test_a_attaches_the_jobs_tmux_through_srun(
    node_without_ssh: Testbed, slurm: SlurmCluster, tether_home: Path, tmp_path: Path, terminal
):
    testbed = node_without_ssh
    folder = tmp_path / "ws"
    config = script_workspace(folder, testbed, RUN, name="run.py", node="", extra=SLURM_AUTO + '\nnode_access = "srun"')
    terminal.run_tether("-c", str(config), "up")
    screen = terminal.screen
    try:
        wait_until_sync(lambda: "up " in screen() and "run pid" in screen(), 60)
        terminal("send-keys", "a")
        # The job's tmux session fills the terminal: its status line names the window.
        wait_until_sync(lambda: "0:tether*" in screen() and "Run output" not in screen(), 20)
        terminal("send-keys", "C-b", "d")
        wait_until_sync(lambda: "Run output" in screen() and "laptop → login → compute01" in screen(), 20)
        wait_until_sync(lambda: "up " in screen(), 20)
        terminal("send-keys", "q")
        wait_until_sync(lambda: f"{terminal.EXITED}0" in screen(), 30)
        assert job_tmux(testbed, "has-session -t =tether-tbws").returncode == 0
    finally:
        with contextlib.suppress(Exception):
            assert main(["-c", str(config), "down"]) == 0
    assert slurm.jobs() == []

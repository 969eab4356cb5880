"""The tmux layout on the node (issue 4): built from [layout], reused after a lost agent and laptop,
shared by two consoles, and gone after `tether down`. Real testbed: login sshd, compute node, tmux."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest
from node_helpers import Events, console, pids_on_node, tick_workspace, tmux_on_node
from testbed import Testbed

from tui.cli import main
from tui.config import load_workspace
from tui.events import Notice, OutputLines
from tui.session import Session

pytestmark = pytest.mark.needs_netns


def pane_table(testbed: Testbed) -> dict[str, str]:
    """{pane name: current path} of the workspace's tmux session, read with tmux on the node."""
    out = tmux_on_node(testbed, "list-panes -s -t =tether-tbws -F '#{@tether-pane} #{pane_current_path}'")
    return dict(line.split(" ", 1) for line in out.splitlines())


async def test_layout_appears_survives_malformed_messages_and_down_leaves_nothing(node: Testbed, tmp_path: Path):
    layout = 'panes = ["run", "htop", "gpu", "shell", { name = "viz", command = "nvtop --no-color" }]'
    config = tick_workspace(tmp_path / "ws", node, layout=layout)
    session = Session(load_workspace(config), ping_interval=0.5)
    events = Events()
    async with console(session, events):
        panes = pane_table(node)
        assert sorted(panes) == ["gpu", "htop", "run", "shell", "viz"]
        home = node.node_run_as_user("echo $HOME").stdout.strip()
        assert panes["shell"] == f"{home}/work/tbws"  # the shell pane starts in the remote root
        assert [p.name for p in events.layout().panes] == ["run", "htop", "gpu", "shell", "viz"]

        def pane_text(name: str) -> str:
            pane_id = next(p.pane_id for p in events.layout().panes if p.name == name)
            return tmux_on_node(node, f"capture-pane -p -t {pane_id}")

        # Missing programs show a plain message, not a shell error; the console is told.
        await events.until(lambda: "no GPU on compute01" in pane_text("gpu"))
        await events.until(lambda: "nvtop is not installed on compute01" in pane_text("viz"))
        assert "not found" not in pane_text("gpu") + pane_text("viz")
        assert any("nvtop is not installed on compute01" in n.message for n in events.of(Notice))
        await events.until(lambda: events.gpus() is not None)
        assert events.gpus().gpus == () and events.gpus().reason.startswith("no GPU on compute01")
        assert "htop" in tmux_on_node(node, "list-panes -s -t =tether-tbws -F '#{pane_current_command}'")

        # A malformed message is skipped: the agent still answers and still streams the output.
        agent = session.supervisor.agent
        await agent.send_raw(b"{not json at all\n")
        await agent.send_raw(b'{"id": 77, "op": "layout.nonsense"}\n')
        assert await agent.ping() > 0
        seen = len(events.ticks())
        await events.until(lambda: len(events.ticks()) > seen + 3)
        page = await session.page_output(None, 5)
        assert len(page.lines) == 5 and page.lines[-1].startswith("tick ")

    # `tether down` ends the run, the tmux session and the agent on the node.
    assert pids_on_node(node, "[t]ick.py")
    assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
    assert node.node_run_as_user("tmux has-session -t =tether-tbws").returncode != 0
    assert pids_on_node(node, "[t]ick.py") == []
    assert pids_on_node(node, "[t]ui.node.agent") == []
    assert pids_on_node(node, "[t]ui.node.runlog") == []


async def test_a_lost_agent_and_laptop_leave_the_run_and_a_new_attach_shows_it(node: Testbed, tmp_path: Path):
    config = tick_workspace(tmp_path / "ws", node)
    workspace = load_workspace(config)
    first, events = Session(workspace, ping_interval=0.5), Events()
    task = asyncio.create_task(first.run(events.append))
    try:
        await events.until(
            lambda: events.layout() is not None and len(events.ticks()) >= 5 and events.settled_run_pids(), 30
        )
        before_layout, run_pids = events.layout(), events.settled_run_pids()
        agent_pid = first.supervisor.agent.hello["pid"]
        channel_pid = first.supervisor.agent.pid
        last_tick = events.ticks()[-1]
    finally:
        # The laptop side dies without a word (no detach), and so does the agent on the node.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(ProcessLookupError):
        os.kill(channel_pid, signal.SIGKILL)
    node.node_run_as_user(f"kill -KILL {agent_pid}")
    await events.until(lambda: str(agent_pid) not in pids_on_node(node, "[t]ui.node.agent"), 10)
    assert node.node_run_as_user("tmux has-session -t =tether-tbws").returncode == 0
    assert all(str(pid) in node.node_run_as_user(f"ps -o pid= -p {pid}").stdout for pid in run_pids)

    # A new `tether attach` (a new process: a new Session) sees the same run, history and state.
    again, events2 = Session(workspace, ping_interval=0.5), Events()
    async with console(again, events2):
        await events2.until(lambda: events2.run_pids() and any(t > last_tick + 2 for t in events2.ticks()))
        assert last_tick in events2.ticks()  # the output from before the loss, as history
        ticks = events2.ticks()
        assert ticks == list(range(ticks[0], ticks[-1] + 1))  # nothing lost, nothing twice
        assert set(events2.run_pids()) == set(run_pids)  # the same run, not a new one
        layout = events2.layout()
        assert layout.generation == before_layout.generation
        assert [p.pane_id for p in layout.panes] == [p.pane_id for p in before_layout.panes]
    await Session(workspace).down()


async def test_two_consoles_on_one_workspace(node: Testbed, tmp_path: Path):
    workspace = load_workspace(tick_workspace(tmp_path / "ws", node))
    one, two = Session(workspace, ping_interval=0.5), Session(workspace, ping_interval=0.5)
    events1, events2 = Events(), Events()
    async with console(one, events1) as task1, console(two, events2):
        agents = pids_on_node(node, "[t]ui.node.agent")
        assert len(agents) == 2
        # Both show new output lines.
        mark1, mark2 = events1.ticks()[-1], events2.ticks()[-1]
        await events1.until(lambda: events1.ticks()[-1] > mark1 + 2)
        await events2.until(lambda: events2.ticks()[-1] > mark2 + 2)

        # A rebuild in one shows in the other: a new layout generation and a new run from tick 0.
        generation, panes = events2.layout().generation, events2.layout().panes
        await one.rebuild_layout()
        await events2.until(lambda: events2.layout().generation == generation + 1)
        assert events2.layout().panes != panes
        await events2.until(
            lambda: "rebuilt" in " ".join(events2.output()) and events2.ticks()[-1] < 5 < len(events2.ticks())
        )
        assert sorted(pids_on_node(node, "[t]ui.node.agent")) == sorted(agents)  # no agent was hurt

        # Quitting one leaves the other working.
        await one.detach()
        await events1.until(lambda: task1.done())
        mark = events2.ticks()[-1]
        await events2.until(lambda: events2.ticks()[-1] > mark + 3)
        assert len(pids_on_node(node, "[t]ui.node.agent")) == 1
        assert await two.supervisor.agent.ping() > 0
    await Session(workspace).down()


async def test_after_a_reconnect_the_new_agent_finds_the_same_run(node: Testbed, tmp_path: Path):
    workspace = load_workspace(tick_workspace(tmp_path / "ws", node))
    session, events = Session(workspace, ping_interval=0.5), Events()
    async with console(session, events):
        # The pane's shell, the debug loop, tick.py and debugpy's adapter.
        await events.until(lambda: len(events.settled_run_pids()) >= 3)
        run_pids, generation = events.settled_run_pids(), events.layout().generation
        old_agent = session.supervisor.agent.hello["pid"]
        histories = len([e for e in events.of(OutputLines) if e.history])
        node.node_run_as_user(f"kill -KILL {old_agent}")  # the link supervisor reconnects: a new agent
        await events.until(lambda: len([e for e in events.of(OutputLines) if e.history]) > histories, 30)
        mark = events.ticks()[-1]
        await events.until(lambda: events.ticks()[-1] > mark + 2)
        assert session.supervisor.agent.hello["pid"] != old_agent
        ticks = events.ticks()
        assert ticks == list(range(ticks[0], ticks[-1] + 1))
        assert set(events.run_pids()) == set(run_pids) and events.layout().generation == generation
    await Session(workspace).down()

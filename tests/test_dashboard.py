"""The dashboard on the real testbed (pilot): run output, the run's processes, GPUs, the logs screen;
and `a` in a real terminal: the node's tmux on screen, `C-b d` back to the console."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from console_helpers import header_state, run_from_palette, screen_text, wait_until
from node_helpers import install_standin_nvidia_smi, tick_workspace, tmux_on_node
from testbed import Testbed
from testbed.wait import wait_until as wait_until_sync

from tui.app import DETACHED, TetherApp
from tui.app.screens import LogsScreen
from tui.app.widgets import EventLog, GpuPanel, NodePanel, OutputPanel, ProcessTable
from tui.app.widgets.output_panel import NEW_RUN
from tui.cli import main
from tui.config import load_workspace
from tui.session import Session

pytestmark = pytest.mark.needs_netns
SIZE = (120, 40)


def ticks_shown(app: TetherApp) -> list[str]:
    return [line for line in app.query_one(OutputPanel).lines_text if line.startswith("tick ")]


async def test_dashboard_shows_output_processes_and_no_gpu_then_pages_the_log(node: Testbed, tmp_path: Path):
    config = tick_workspace(tmp_path / "ws", node)
    session = Session(load_workspace(config), ping_interval=0.5)
    await session.prepare()
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 30)
        await wait_until(pilot, lambda: len(ticks_shown(app)) >= 3, 20)
        count = len(ticks_shown(app))
        await wait_until(pilot, lambda: len(ticks_shown(app)) > count + 2, 10)  # new lines keep coming
        table = app.query_one(ProcessTable)
        # The run pane runs the debug loop, which runs tick.py under debugpy (issue 5).
        await wait_until(pilot, lambda: any("-m tui.node.loop" in row[3] for row in table.rows_text), 10)
        await wait_until(pilot, lambda: app.query_one(GpuPanel).text.startswith("no GPU on compute01"), 10)
        await wait_until(pilot, lambda: "CPU" in str(app.query_one(NodePanel).render()), 10)
        text = screen_text(app)
        assert "no GPU on compute01" in text and "rank 0  running" in text and "Run output" in text
        assert "tmux tether-tbws" in text
        # What a panel shows is not said again in the events box (the GPU panel says "no GPU").
        assert not [line for line in app.query_one(EventLog).lines_text if "no GPU" in line]

        # The logs screen pages the node's log on demand, older pages too.
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen.lines_text, 10)
        logs = app.screen
        assert logs.lines_text[0].startswith("tether: starting ") and "tick.py" in logs.lines_text[0]  # the log's start
        assert logs.lines_text[1] == "run pid " + logs.lines_text[1].split()[-1]
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, LogsScreen))

        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    assert app.return_value == DETACHED
    await Session(load_workspace(config)).down()


async def test_gpu_table_shows_the_standin_nvidia_smi(node: Testbed, tmp_path: Path):
    path_line = install_standin_nvidia_smi(node)
    config = tick_workspace(tmp_path / "ws", node, run_env=path_line)
    session = Session(load_workspace(config), ping_interval=0.5)
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(GpuPanel)
        await wait_until(pilot, lambda: panel.stats is not None and panel.stats.gpus, 30)
        rows = panel.text.splitlines()
        assert rows == [
            "0 97% 39.3/79.6 64°C 512 W H100 80GB HBM3 (stand-in)",
            "1 12% 1.0/79.6 41°C 118 W H100 80GB HBM3 (stand-in)",
        ]
        await wait_until(pilot, lambda: "97%" in screen_text(app), 10)  # drawn a moment after it came
        # The `watch -n 2 nvidia-smi` pane on the node shows the (stand-in) table.
        layout = session.panels.layout
        gpu_pane = next(p.pane_id for p in layout.panes if p.name == "gpu")
        await asyncio.to_thread(
            wait_until_sync, lambda: "NVIDIA-SMI 550.54.15" in tmux_on_node(node, f"capture-pane -p -t {gpu_pane}"), 10
        )
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()


def test_a_attaches_the_node_tmux_and_detaching_returns_to_the_console(node: Testbed, tmp_path: Path, terminal):
    config = tick_workspace(tmp_path / "ws", node)
    terminal.run_tether("-c", str(config), "up")
    screen = terminal.screen
    try:
        wait_until_sync(lambda: "up " in screen() and "tick " in screen() and "Run output" in screen(), 60)
        terminal("send-keys", "a")
        # The node's tmux session fills the terminal: its status line names the window, htop runs.
        wait_until_sync(lambda: "0:tether*" in screen() and "Run output" not in screen(), 20)
        wait_until_sync(lambda: "tick " in screen() and "no GPU on compute01" in screen(), 10)
        terminal("send-keys", "C-b", "d")
        wait_until_sync(lambda: "Run output" in screen() and "laptop → login → compute01" in screen(), 20)
        wait_until_sync(lambda: "up " in screen(), 20)
        terminal("send-keys", "q")
        wait_until_sync(lambda: f"{terminal.EXITED}0" in screen(), 30)
        # Detached: the run goes on in the node's tmux.
        assert node.node_run_as_user("tmux has-session -t =tether-tbws").returncode == 0
    finally:
        assert main(["-c", str(config), "down"]) == 0
    assert node.node_run_as_user("tmux has-session -t =tether-tbws").returncode != 0


async def test_down_from_the_palette_asks_then_stops_the_run_and_its_tmux(node: Testbed, tmp_path: Path):
    from tui.app import DOWN
    from tui.app.screens import ConfirmScreen

    config = tick_workspace(tmp_path / "ws", node)
    session = Session(load_workspace(config), ping_interval=0.5)
    await session.prepare()
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(ticks_shown(app)) >= 2, 30)
        await run_from_palette(app, pilot, "Down")
        assert isinstance(app.screen, ConfirmScreen) and "ends the run" in screen_text(app)
        await pilot.press("escape")  # cancelled: the run goes on
        count = len(ticks_shown(app))
        await wait_until(pilot, lambda: len(ticks_shown(app)) > count, 10)
        await run_from_palette(app, pilot, "Down")
        await pilot.click("#confirm-do")
        await wait_until(pilot, lambda: app.return_value is not None, 30)
    assert app.return_value == DOWN and any(s.startswith("tmux session tether-tbws") for s in app.stopped), app.stopped
    assert "tether-tbws" not in tmux_on_node(node, "ls 2>/dev/null")
    assert node.node_run_as_user("pgrep -u $(id -u) -f '[t]ick.py'").returncode == 1  # the run ended


async def test_after_down_and_up_the_earlier_runs_replayed_lines_are_marked_apart(node: Testbed, tmp_path: Path):
    config = tick_workspace(tmp_path / "ws", node)
    app = TetherApp(Session(load_workspace(config), ping_interval=0.5))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(ticks_shown(app)) >= 3, 30)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()  # the run ends; its log stays on the node

    app = TetherApp(Session(load_workspace(config), ping_interval=0.5))
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(OutputPanel)
        await wait_until(pilot, lambda: NEW_RUN in panel.lines_text and panel.lines_text[-1].startswith("tick "), 30)
        lines = panel.lines_text
        rule = lines.index(NEW_RUN)
        assert lines.count(NEW_RUN) == 1, lines
        assert any(line.startswith("tick ") for line in lines[:rule])  # the earlier run, above the rule
        assert lines[rule + 1].startswith("tether: starting ") and "tick.py" in lines[rule + 1]
        assert lines[rule + 2].startswith("run pid ")  # the new run's own lines follow it
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()

"""The debugger screen on the testbed, driven with keys only (issue 13): the run's debugpy on the
compute node, reached through the agent's channel (no laptop port), the file shown is the
laptop's copy.

One long test walks the day of a user: open the debugger on a running loop (b), set a breakpoint
with F9 on a line picked with the arrow keys, read the locals, open a nested object, evaluate,
step over / into / out, continue, restart the run with r and find the breakpoint hit again without
setting it, make it conditional (Shift+F9), stop on a raised exception (Ctrl+E), and let it run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from console_helpers import screen_text, wait_until
from debug_helpers import script_workspace
from testbed import Testbed
from textual.pilot import Pilot
from textual.widgets import RichLog

from tui.app import TetherApp
from tui.app.screens.debugger import DebuggerScreen
from tui.app.widgets.variables import VariablesTree
from tui.config import load_workspace
from tui.events import DebugStatus
from tui.session import Session

pytestmark = pytest.mark.needs_netns

LOOP = Path(__file__).resolve().parent / "fixtures" / "debugger_loop.py"
NAME = "train_loop.py"


def line_of(marker: str) -> int:
    return next(n for n, text in enumerate(LOOP.read_text().splitlines(), 1) if f"# {marker}" in text)


def debugger_screen(app: TetherApp) -> DebuggerScreen:
    screen = app.screen
    assert isinstance(screen, DebuggerScreen), f"the screen is {type(screen).__name__}"
    return screen


def stopped_at(app: TetherApp, line: int, function: str = "main") -> bool:
    screen = app.screen
    if not isinstance(screen, DebuggerScreen):
        return False
    view = screen.view
    top = view.stop.top if view.stop else None
    return (
        view.status is DebugStatus.STOPPED and top is not None and top.frame.line == line and top.frame.name == function
    )


def local_value(app: TetherApp, name: str) -> str | None:
    view = debugger_screen(app).view
    found = {v.name: v.value for v in view.stop.local_variables} if view.stop else {}
    return found.get(name)


def tree_lines(app: TetherApp) -> list[str]:
    tree = debugger_screen(app).query_one(VariablesTree)
    return [str(tree.get_node_at_line(i).label) for i in range(tree.last_line + 1) if tree.get_node_at_line(i)]


def console_text(app: TetherApp) -> str:
    return "\n".join(strip.text for strip in debugger_screen(app).query_one(RichLog).lines)


async def move_cursor_to(pilot: Pilot, app: TetherApp, line: int) -> None:
    source = debugger_screen(app).query_one("#debug-source")
    source.focus()
    await pilot.press("home", *["down"] * (line - 1))


async def test_debug_the_run_with_keys_only(node: Testbed, tmp_path: Path) -> None:
    config = script_workspace(tmp_path / "ws", node, LOOP.read_text(), name=NAME)
    session = Session(load_workspace(config), ping_interval=0.5)
    app = TetherApp(session)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_until(pilot, lambda: "training starts" in screen_text(app), 60)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, DebuggerScreen), 5)
        await wait_until(pilot, lambda: debugger_screen(app).view.status is DebugStatus.RUNNING, 30)
        assert NAME in screen_text(app)  # the run's file, shown before any stop

        # F9 on the loop's first line: it hits within a step
        await move_cursor_to(pilot, app, line_of("STEP LINE"))
        await pilot.press("f9")
        await wait_until(pilot, lambda: stopped_at(app, line_of("STEP LINE")), 20)
        text = screen_text(app)
        assert f"breakpoint at {NAME}:{line_of('STEP LINE')}" in text
        step = int(local_value(app, "step") or "0")
        assert step >= 1 and "optimizer = " in text and "weight = " in text

        # the nested object: optimizer -> state -> 'momentum', opened with the keys
        await pilot.press("tab", "tab")  # source -> stack -> variables
        tree = debugger_screen(app).query_one(VariablesTree)
        assert app.focused is tree
        await select_row(pilot, app, "optimizer = ")
        await pilot.press("space")
        await wait_until(pilot, lambda: any(line.startswith("state = ") for line in tree_lines(app)), 10)
        await select_row(pilot, app, "state = ")
        await pilot.press("space")
        await wait_until(pilot, lambda: any("'momentum'" in line for line in tree_lines(app)), 10)
        assert any("0.9" in line for line in tree_lines(app) if "'momentum'" in line)

        # evaluate in the frame
        await pilot.press("e")
        await pilot.press(*"step * 1000", "enter")
        await wait_until(pilot, lambda: str(step * 1000) in console_text(app), 10)
        await pilot.press("escape")  # out of the console line, back to the source

        # step over, into, out
        await pilot.press("f10")
        await wait_until(pilot, lambda: stopped_at(app, line_of("CALL LINE")), 10)
        await pilot.press("f11")
        await wait_until(pilot, lambda: stopped_at(app, line_of("UPDATE LINE"), "update"), 10)
        assert "update" in screen_text(app) and local_value(app, "grad") is not None
        await pilot.press("shift+f11")
        await wait_until(
            pilot, lambda: stopped_at(app, line_of("CALL LINE")) or stopped_at(app, line_of("AFTER CALL LINE")), 10
        )

        # continue: the breakpoint hits again, one step later; the stack and the locals of that
        # stop were asked for on the node (tui/node/dapstorm.py): the only request was continue
        client = session.debugger(0).client
        assert client is not None
        asked = client.requests_sent
        await pilot.press("f5")
        await wait_until(
            pilot, lambda: stopped_at(app, line_of("STEP LINE")) and local_value(app, "step") == str(step + 1), 10
        )
        assert client.requests_sent - asked == 1

        # r restarts the run: the console attaches again and the breakpoint is there, unasked
        first_pid = session.debug_runs.rank_states()[0].pid
        await pilot.press("r")
        try:
            await wait_until(
                pilot,
                lambda: debugger_screen(app).view.attaches >= 2 and stopped_at(app, line_of("STEP LINE")),
                40,
            )
        except AssertionError:
            raise AssertionError(
                f"after r: {debugger_screen(app).view}, run {session.debug_runs.rank_states()}"
            ) from None
        # a new run (mode "attach" does not wait for the debugger, so it may be a few steps in)
        assert session.debug_runs.rank_states()[0].pid != first_pid

        # a condition on it (Shift+F9 on the line the run stopped on)
        target = int(local_value(app, "step") or "0") + 3
        await pilot.press("shift+f9")
        await pilot.press(*f"step == {target}", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DebuggerScreen), 5)  # the form is closed
        await pilot.press("f5")  # steps before target pass the line without stopping
        await wait_until(
            pilot, lambda: stopped_at(app, line_of("STEP LINE")) and local_value(app, "step") == str(target), 10
        )

        # stop on every raise (Ctrl+E), the breakpoint off (F9): the next stop is the raise
        await pilot.press("ctrl+e")
        await move_cursor_to(pilot, app, line_of("STEP LINE"))
        await pilot.press("f9")
        await pilot.press("f5")
        await wait_until(pilot, lambda: stopped_at(app, line_of("RAISE LINE")), 10)
        assert "exception" in screen_text(app)

        # back to "uncaught" only (Ctrl+E cycles: raised -> user-uncaught -> never -> uncaught), and run
        await pilot.press("ctrl+e", "ctrl+e", "ctrl+e")
        await pilot.press("f5")
        await wait_until(pilot, lambda: debugger_screen(app).view.status is DebugStatus.RUNNING, 10)
        assert session.debuggers.memory.exception_filters == ("uncaught",)
        assert session.debuggers.memory.files() == []
        await pilot.press("escape")
        assert not isinstance(app.screen, DebuggerScreen)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()


async def select_row(pilot: Pilot, app: TetherApp, prefix: str) -> None:
    """Move the tree's cursor with the arrow keys to the row that starts with ``prefix``."""
    tree = debugger_screen(app).query_one(VariablesTree)
    rows = tree_lines(app)
    target = next(i for i, row in enumerate(rows) if row.startswith(prefix))
    steps = target - tree.cursor_line
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    assert str(tree.cursor_node.label).startswith(prefix) if tree.cursor_node else False


async def test_a_launchers_workers_are_debugged_on_the_node(node: Testbed, tmp_path: Path) -> None:
    """The torchrun stand-in under the real loop on the compute node: debugpy follows its 4
    workers, the console attaches to each over the agent's channel (through the debug guard), and
    the breakpoint saved for the worker's file hits in every one."""
    fixtures = Path(__file__).resolve().parent / "fixtures"
    launcher, worker = fixtures / "launcher_standin.py", fixtures / "launcher_worker.py"
    worker_line = next(n for n, t in enumerate(worker.read_text().splitlines(), 1) if "# WORKER LINE" in t)
    folder = tmp_path / "ws"
    config = script_workspace(
        folder,
        node,
        launcher.read_text(),
        name=launcher.name,
        command=f"python3 {launcher.name} --nproc_per_node=4 {worker.name}",
    )
    (folder / worker.name).write_text(worker.read_text())
    session = Session(load_workspace(config), ping_interval=0.5)
    session.debuggers.memory.toggle(worker.name, worker_line)  # saved from an earlier console
    app = TetherApp(session)

    def stopped_workers() -> list[str]:
        return sorted(
            d.label.split(" (")[0]
            for d in session.debuggers.processes()
            if d.process and d.view.status is DebugStatus.STOPPED and d.view.stop and d.view.stop.reason == "breakpoint"
        )

    async with app.run_test(size=(160, 50)) as pilot:
        # saved breakpoints: the console attaches by itself, and the first stop opens the screen
        await wait_until(pilot, lambda: stopped_workers() == [f"rank {r}" for r in range(4)], 90)
        assert isinstance(app.screen, DebuggerScreen)
        await pilot.press("ctrl+a")
        await remove_breakpoint_at(pilot, app, worker_line)
        await pilot.press("f5")
        await wait_until(
            pilot,
            lambda: sum(1 for d in session.debuggers.processes() if d.view.status is DebugStatus.RUNNING) == 5,
            20,
        )
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()


async def remove_breakpoint_at(pilot: Pilot, app: TetherApp, line: int) -> None:
    await move_cursor_to(pilot, app, line)
    await pilot.press("f9")
    try:
        await wait_until(pilot, lambda: not debugger_screen(app).debugger.memory.files(), 5)
    except AssertionError:
        print(screen_text(app))
        print(debugger_screen(app).query_one("#debug-source").path, debugger_screen(app).debugger.memory.all())
        raise

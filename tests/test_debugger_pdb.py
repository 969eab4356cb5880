"""breakpoint() where the run's python has no debugpy (issue 13): pdb on a Unix socket in the
loop's 0700 folder on the node, never a TCP port; the console opens it over the agent's channel
(b), and it is driven from the pdb screen. Another user of the node cannot connect to it; leaving
the screen lets the run go on (pdb never quits the run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from console_helpers import wait_until
from debug_helpers import script_workspace
from test_debug_owner_only import UNIX_PROBE, on_node
from testbed import Testbed
from textual.widgets import RichLog

from tui.app import TetherApp
from tui.app.screens.pdb import PdbScreen
from tui.config import load_workspace
from tui.session import Session

pytestmark = pytest.mark.needs_netns

SCRIPT = (
    "import time\n"
    "weight = 41\n"
    "print('before', flush=True)\n"
    "breakpoint()\n"
    "print('after', weight, flush=True)\n"
    "while True:\n"
    "    time.sleep(0.1)\n"
)


def pdb_text(app: TetherApp) -> str:
    screen = app.screen
    return "\n".join(s.text for s in screen.query_one(RichLog).lines) if isinstance(screen, PdbScreen) else ""


async def test_pdb_on_a_private_socket_driven_from_the_console(node: Testbed, tmp_path: Path) -> None:
    extra = '[debug]\nmode = "off"\nprovide_debugpy = "never"'
    config = script_workspace(
        tmp_path / "ws", node, SCRIPT, name="nodbg.py", interpreter=node.plain_python, extra=extra
    )
    session = Session(load_workspace(config), ping_interval=0.5)
    app = TetherApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        said = "waiting for debugger at nodbg.py:4 (rank 0; press b for its pdb)"
        await wait_until(pilot, lambda: any(said in str(n.message) for n in app._notifications), 60)
        path = session.debug_runs.rank_states()[0].pdb
        assert path.endswith("/pdb.sock")
        modes = node.node_run_as_user(f"stat -c %a {path} $(dirname {path})", check=True).stdout.split()
        assert modes == ["600", "700"]
        # no TCP port: nothing of the run listens on TCP in mode off without debugpy
        assert "LISTEN" not in node.node_run_as_user("ss -ltnp 2>/dev/null | grep -i python || true").stdout
        # another user of the node cannot even reach the socket
        other = json.loads(on_node(node, ["/usr/bin/python3", "-c", UNIX_PROBE, path], other=True))
        assert other[0].get("error") in ("PermissionError", "FileNotFoundError"), other

        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, PdbScreen), 5)
        await wait_until(pilot, lambda: "(Pdb)" in pdb_text(app), 20)
        await pilot.press(*"p weight + 1", "enter")
        await wait_until(pilot, lambda: "42" in pdb_text(app).split("p weight + 1", 1)[-1], 10)
        await pilot.press(*"weight = 7", "enter")
        await pilot.press("escape")  # the console goes: pdb goes on, as after c
        await wait_until(pilot, lambda: "after 7" in session_output(app), 20)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()


def session_output(app: TetherApp) -> str:
    from tui.app.widgets import OutputPanel

    return "\n".join(app.screen_stack[0].query_one(OutputPanel).lines_text)

"""The debug loop wired end to end on the testbed (issue 5): the run pane runs the loop, the laptop
forwards each rank's debug port (and [ports]) through the node's master, a real DAP client attaches
through the forward, `r` restarts, Ctrl-C in the real pane restarts / leaves, nothing of the run
listens outside loopback, and the forwards come back by themselves after the connection is cut."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from debug_helpers import BREAK_LINE, DEBUGGEE, debug_console, node_home, rank, run_listeners, script_workspace, status
from node_helpers import Events, clean_node, pids_on_node, tmux_on_node
from testbed import Testbed
from testbed.procs import ProcessRef

from tui.config import load_workspace
from tui.debug.dap import DapClient
from tui.events import LinkChanged, LinkState, RankStatus
from tui.session import Session

pytestmark = pytest.mark.needs_netns


@pytest.fixture
def node(needs_netns: Testbed, tether_home: Path):
    clean_node(needs_netns)
    needs_netns.node_run_as_user("pkill -KILL -u $(id -u) -f '[s]leep 6061|[h]ttp.server'; true")
    yield needs_netns
    clean_node(needs_netns)
    needs_netns.node_run_as_user("pkill -KILL -u $(id -u) -f '[s]leep 6061|[h]ttp.server'; true")


def debuggee_up(events: Events) -> bool:
    state = rank(events)
    return bool(state and state.status is RankStatus.RUNNING and state.local_port and state.pid)


async def stop_at_breakpoint(port: int, path: str) -> DapClient:
    client = await DapClient.connect_initialized("127.0.0.1", port, timeout=20)
    accepted = await client.attach({path: [BREAK_LINE]})
    assert accepted[path][BREAK_LINE].verified
    stopped = await client.wait_stopped(timeout=15)
    assert stopped.reason == "breakpoint" and stopped.path == path and stopped.line == BREAK_LINE
    return client


async def test_dap_through_the_forward_restart_loopback_only_and_forwards_back_after_a_cut(
    node: Testbed, tmp_path: Path
):
    port = int(
        node.node_run_as_user(
            f"{node.plain_python} -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"
        ).stdout
    )
    server = node.node_run_as_user(
        f"mkdir -p ~/srv && echo on-the-node > ~/srv/marker.txt && cd ~/srv && "
        f"setsid {node.plain_python} -m http.server {port} --bind 127.0.0.1 </dev/null >/dev/null 2>&1 & echo $!"
    ).stdout.strip()
    config = script_workspace(tmp_path / "ws", node, DEBUGGEE.read_text(), extra=f"[ports]\nboard = {port}")
    workspace = load_workspace(config)
    session, events = Session(workspace, ping_interval=0.5), Events()
    path = f"{node_home(node)}/work/tbws/dbg.py"
    async with debug_console(session, events, lambda: debuggee_up(events)):
        first = rank(events)
        assert first.port != 5678 and first.local_port
        # launch.json names the forwarded port and maps the roots.
        launch = (tmp_path / "ws" / ".vscode" / "launch.json").read_text()
        assert f'"port": {first.local_port}' in launch and "/work/tbws" in launch

        # 1. A real DAP client through the forward stops at a breakpoint ...
        client = await stop_at_breakpoint(first.local_port, path)
        await events.until(lambda: status(events) == "attached")

        # 3. ... while nothing of the run's process tree listens outside loopback.
        listeners = run_listeners(node)
        assert any(p == first.port for _, _, p in listeners), listeners
        assert all(address in ("127.0.0.1", "::1") for _, address, _ in listeners), listeners

        # `r` (restart_run) gives a new process; the client reconnects and stops again.
        await session.restart_run()
        await events.until(lambda: debuggee_up(events) and rank(events).pid != first.pid, 30)
        assert rank(events).restarts == 1
        await client.close()
        client = await stop_at_breakpoint(first.local_port, path)
        await client.disconnect()
        assert len(pids_on_node(node, "[s]leep 6061")) == 1  # the first run's child is gone

        # 8. a [ports] forward reaches the server; cut the node's connection: both come back alone.
        board = next(f for f in session.tunnels.forwards if f.name == "board")
        assert await asyncio.to_thread(fetch, board.local_port) == "on-the-node\n"
        lost = len([e for e in events.of(LinkChanged) if e.state is LinkState.LOST])
        ProcessRef.of(await session.supervisor.node.pid()).signal(signal.SIGKILL)
        await events.until(lambda: len([e for e in events.of(LinkChanged) if e.state is LinkState.LOST]) > lost, 20)
        await events.until(lambda: events.of(LinkChanged)[-1].state is LinkState.UP, 40)
        await events.until(lambda: serves(board.local_port), 20)
        client = await stop_at_breakpoint(first.local_port, path)  # the debug forward works again
        await client.disconnect()
    node.node_run_as_user(f"kill {server}")
    await session.down()


def fetch(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/marker.txt", timeout=5) as response:
        return response.read().decode()


def serves(port: int) -> bool:
    try:
        return fetch(port) == "on-the-node\n"
    except OSError:
        return False


async def test_ctrl_c_in_the_real_pane_restarts_twice_leaves_and_no_child_is_left(node: Testbed, tmp_path: Path):
    config = script_workspace(tmp_path / "ws", node, DEBUGGEE.read_text())
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: debuggee_up(events)):
        first = rank(events)
        pane = next(p.pane_id for p in events.layout().panes if p.name == "run")
        await events.until(lambda: pids_on_node(node, "[s]leep 6061"), 10)
        children = pids_on_node(node, "[s]leep 6061")
        assert len(children) == 1

        tmux_on_node(node, f"send-keys -t {pane} C-c")  # once: restart
        await events.until(lambda: debuggee_up(events) and rank(events).pid != first.pid, 30)
        assert rank(events).restarts == 1
        await events.until(lambda: pids_on_node(node, "[s]leep 6061") not in ([], children), 10)
        again = pids_on_node(node, "[s]leep 6061")
        assert len(again) == 1 and again != children  # the old run's child did not outlive it

        tmux_on_node(node, f"send-keys -t {pane} C-c")  # twice within a second: leave the loop
        tmux_on_node(node, f"send-keys -t {pane} C-c")
        await events.until(lambda: status(events) == "stopped", 20)
        await events.until(lambda: "left the debug loop" in tmux_on_node(node, f"capture-pane -p -t {pane}"), 10)
        assert pids_on_node(node, "[s]leep 6061") == []
        assert pids_on_node(node, "[t]ui.node.loop") == []
        state = json.loads(node.node_run_as_user("cat ~/.cache/tether/runs/tbws/loop0/state.json").stdout)
        assert state["loop_running"] is False and state["host"] == "127.0.0.1"
    await session.down()

"""Laptop ports of the forwards on the real testbed: the debug port's and a [ports] entry's laptop
port stay the same across `q` and `tether attach` (remembered in the session record, launch.json
naming the same port), each is told in the console, and the node's master holds exactly one
listener per forward (stale ones are cancelled with `ssh -O cancel`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from debug_helpers import debug_console, debuggable, rank, script_workspace
from node_helpers import Events
from testbed import Testbed

from tui.config import load_workspace
from tui.events import Notice
from tui.remote.ssh import control_argv, run_argv
from tui.session import Session
from tui.state import StateStore

pytestmark = pytest.mark.needs_netns

SCRIPT = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.5)\n"
PORTS = "[ports]\ntensorboard = 16006\n"


def listening_ports(pid: int) -> list[int]:
    """The TCP ports in LISTEN state that process ``pid`` holds (its fds against /proc/net/tcp*)."""
    listen: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                listen[int(fields[9])] = int(fields[1].split(":")[1], 16)
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in listen:
            found.append(listen[int(target[8:-1])])
    return sorted(found)


def launch_ports(folder: Path) -> list[int]:
    text = (folder / ".vscode" / "launch.json").read_text()
    return [int(c["connect"]["port"]) for c in json.loads(text)["configurations"] if c["name"].startswith("Tether")]


async def test_laptop_ports_stay_the_same_across_attach_with_one_listener_each(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    folder = tmp_path / "ws"
    config = script_workspace(folder, needs_netns, SCRIPT, extra=PORTS)

    async def attach(may_submit: bool) -> tuple[dict[str, int], list[int], Events, Session]:
        session = Session(load_workspace(config), ping_interval=0.5, may_submit=may_submit)
        events = Events()
        async with debug_console(session, events, lambda: debuggable(events)):
            await events.until(lambda: len(session.tunnels.forwards) == 2)
            ports = {f.name: f.local_port for f in session.tunnels.forwards}
            master = await session.supervisor.node.pid()
            assert master is not None
            listeners = listening_ports(master)
            assert rank(events).local_port == ports["debug rank 0"]
        return ports, listeners, events, session

    first, listeners, events, session = await attach(True)
    try:
        assert sorted(listeners) == sorted(first.values())
        assert launch_ports(folder) == [first["debug rank 0"]]
        told = [n.message for n in events.of(Notice)]
        assert any("tensorboard" in m and f"127.0.0.1:{first['tensorboard']}" in m for m in told), told
        record = StateStore().load(session.ws_id)
        assert record is not None and record.extra.get("ports", {}).get("tensorboard") == [first["tensorboard"], 16006]

        # A console that ended without cancelling its forwards (killed): the master, kept by
        # ControlPersist, still listens on the laptop ports.
        master = session.node_master("compute01")
        for name, local in first.items():
            remote = record.extra["ports"][name][1]
            spec = f"127.0.0.1:{local}:127.0.0.1:{remote}"
            assert (await run_argv(control_argv(master.settings, master.hop, "forward", "-L", spec), timeout=10)).ok

        again, listeners, events, session = await attach(False)  # `tether attach`
        assert again == first
        assert sorted(listeners) == sorted(first.values())  # exactly one listener per forward
        assert launch_ports(folder) == [first["debug rank 0"]]
        told = [n.message for n in events.of(Notice)]
        assert any("tensorboard" in m and f"127.0.0.1:{first['tensorboard']}" in m for m in told), told
    finally:
        await session.down()

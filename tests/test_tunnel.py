"""Forwards on the real testbed: a server on the node's 127.0.0.1 reached from the laptop's
127.0.0.1, and the forward back by itself after the connection is cut."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import urllib.request
from pathlib import Path

import pytest
from testbed import Testbed
from testbed.procs import ProcessRef
from workspaces import load_test_workspace

from tui.events import LinkChanged, LinkState
from tui.remote.tunnel import LOOPBACK, Tunnels
from tui.session import Session

pytestmark = pytest.mark.needs_netns


async def until(condition, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await asyncio.sleep(0.1)


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/marker.txt", timeout=5) as response:
        return response.read().decode()


async def test_forward_reaches_the_node_and_comes_back_after_a_cut(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    session = Session(load_test_workspace(tmp_path / "ws", testbed), ping_interval=0.5)
    events: list = []
    task = asyncio.create_task(session.run(events.append))
    try:
        await until(
            lambda: asyncio.sleep(0, session.supervisor is not None and session.supervisor.state.state is LinkState.UP)
        )
        node = session.supervisor.node_master
        port = (
            await node.run(
                f"{testbed.plain_python} -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"
            )
        ).stdout.strip()
        # A server bound to the node's loopback only, as debugpy and tensorboard are.
        started = await node.run(
            f"mkdir -p ~/srv && echo on-the-node > ~/srv/marker.txt && cd ~/srv; "
            f"setsid {testbed.plain_python} -m http.server {port} --bind 127.0.0.1 </dev/null >/dev/null 2>&1 & echo $!"
        )
        server_pid = started.stdout.strip()
        tunnels = Tunnels(lambda: session.supervisor.node_master)
        session.supervisor.add_listener(tunnels.on_link)
        forward = await tunnels.add("tensorboard", int(port))
        await until(lambda: asyncio.to_thread(lambda: _serves(forward.local_port)))
        assert await asyncio.to_thread(fetch, forward.local_port) == "on-the-node\n"

        ProcessRef.of(await session.supervisor.node.pid()).signal(signal.SIGTERM)  # cut
        await until(
            lambda: asyncio.sleep(0, any(isinstance(e, LinkChanged) and e.state is LinkState.LOST for e in events))
        )
        await until(lambda: asyncio.to_thread(lambda: _serves(forward.local_port)))
        assert await asyncio.to_thread(fetch, forward.local_port) == "on-the-node\n"
        await tunnels.close()
        testbed.node_run_as_user(f"kill {server_pid}")
    finally:
        await session.down()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _serves(port: int) -> bool:
    try:
        return fetch(port) == "on-the-node\n"
    except OSError:
        return False

"""One console per workspace, and what a console killed hard leaves behind.

A real `tether up` in a laptop terminal (tmux) holds the workspace: a second `tether up` or `tether
attach` is refused before it logs in, naming the first console's pid. Killed with SIGKILL, the
console's lock goes with it (the ssh masters it leaves for ControlPersist do not keep it), and its
askpass socket, which it could not remove, is removed by the next bridge that starts. The askpass
socket is the owner's alone: another local user (``nobody``) cannot connect to it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from node_helpers import tick_workspace
from testbed import Testbed
from testbed.wait import wait_until

from tui.cli import main
from tui.remote.askpass import AskpassBridge
from tui.state import ConsoleBusy, ConsoleLock, runtime_dir, workspace_id

pytestmark = pytest.mark.needs_netns
ROOT = Path(__file__).resolve().parent.parent
OTHER = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
CONNECT = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('connected')\n"


def tether(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def console_pid(lock: ConsoleLock) -> int | None:
    text = lock.path.read_text().strip() if lock.path.exists() else ""
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    """Until its parent (the terminal's shell) reaps it: that comes after every thread has exited
    and every descriptor is closed (a zombie leader's other threads may still hold them)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_second_console_is_refused_and_a_killed_one_leaves_no_lock_or_socket(node: Testbed, tmp_path: Path, terminal):
    config = tick_workspace(tmp_path / "ws", node)
    lock = ConsoleLock(workspace_id(config))
    terminal.run_tether("-c", str(config), "up")
    try:
        wait_until(lambda: "up " in terminal.screen() and "Run output" in terminal.screen(), 60, 0.1, "the console up")
        sockets = runtime_dir()
        bridge = wait_until(lambda: list(sockets.glob("askpass-*.sock")), 10, 0.05, "the console's askpass socket")
        assert len(bridge) == 1
        pid = int(bridge[0].name.removeprefix("askpass-").removesuffix(".sock"))

        for command in ("up", "attach"):
            second = tether("-c", str(config), command)
            assert second.returncode == 1, second.stderr
            assert "another Tether console is open on this workspace" in second.stderr
            assert f"pid {pid}" in second.stderr and "fix:" in second.stderr
        assert "up " in terminal.screen()  # the first console never noticed
        assert console_pid(lock) == pid

        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), 10, 0.05, "the console gone")
        leftover = sockets / f"askpass-{pid}.sock"
        assert leftover.exists()  # SIGKILL: the console could not remove it itself
        with ConsoleLock(workspace_id(config)):  # free at once: nothing stale blocks the next console
            pass
        asyncio.run(next_bridge_removes(leftover))
    finally:
        assert main(["-c", str(config), "down"]) == 0


async def next_bridge_removes(leftover: Path) -> None:
    async def ask(prompt: str) -> str | None:
        return None

    bridge = AskpassBridge(leftover.parent, ask)
    await bridge.start()
    try:
        assert not leftover.exists()
        assert bridge.socket_path.exists()
    finally:
        await bridge.close()


def test_a_second_lock_names_the_first_and_a_released_lock_is_free(tether_home: Path):
    first = ConsoleLock("abc123")
    first.acquire()
    try:
        with pytest.raises(ConsoleBusy, match=f"pid {os.getpid()}"):
            ConsoleLock("abc123").acquire()
        with ConsoleLock("other1"):  # another workspace is another lock
            pass
    finally:
        first.release()
    with ConsoleLock("abc123"):
        pass
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600


async def test_askpass_socket_is_the_owners_alone(tether_home: Path):
    # Even where the folders above are open to everyone (a home of 0755, a loose runtime folder),
    # the bridge makes its folder 0700 and its socket 0600.
    folder = tether_home / "run" / "tether"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    tether_home.chmod(0o755)
    (tether_home / "run").chmod(0o755)

    async def ask(prompt: str) -> str | None:
        return "secret"

    bridge = AskpassBridge(folder, ask)
    await bridge.start()
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(bridge.socket_path.stat().st_mode) == 0o600
        other = await asyncio.to_thread(
            subprocess.run,
            [*OTHER, sys.executable, "-c", CONNECT, str(bridge.socket_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert other.returncode != 0 and "connected" not in other.stdout
        assert "PermissionError" in other.stderr, other.stderr
        owner = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", CONNECT, str(bridge.socket_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert owner.stdout.strip() == "connected", owner.stderr  # the same path works for its owner
    finally:
        await bridge.close()

"""Breakpoints always hit, however often and however soon the user attaches again (issue 12, item 6).

What was found: debugpy's adapter (1.8) reports its ports to the oldest session still registered
each time a client connects. A client that attaches right after another detached finds that session
closed but not yet unregistered: the report raises in the adapter's accept thread, the thread dies,
and from then on the debug port accepts connections that nobody reads. Every later attach waits
for an ``initialize`` answer that never comes, until the run restarts (plain ``python -m debugpy``
here: wedged at the 8th to 13th immediate reattach, in every one of 3 tries). Tether's guarded
adapter sends that report to a live session and keeps its accept loop alive whatever one
connection's handler does.

The tests: 50 attaches through the console's forward at random moments (a third of them the
instant the last one detached), each sets the breakpoint, stops there, and goes on; 50 immediate
reattaches to the guarded debugpy as the loop runs it, here; and the accept loop of the guarded
adapter serving the next client after a handler failed (before: it served no one again)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from debug_helpers import BREAK_LINE, DEBUGGEE, debug_console, debuggable, node_home, rank, script_workspace
from node_helpers import Events
from testbed import Testbed

from tui.config import load_workspace
from tui.debug.dap import DapClient, DapError
from tui.node.pyhook import install_hook
from tui.session import Session

ATTACHES = 50


async def attach_and_hit(port: int, path: str, line: int) -> str:
    """One attach that must stop at ``path:line``; "" when it did, else what went wrong."""
    try:
        client = await DapClient.connect_initialized("127.0.0.1", port, timeout=15)
    except DapError as exc:
        return f"no session: {exc.message}"
    try:
        accepted = await client.attach({path: [line]}, timeout=15)
        if not accepted[path][line].verified:
            return f"breakpoint not verified: {accepted[path][line].message}"
        try:
            stopped = await client.wait_stopped(timeout=15)
        except DapError as exc:
            return f"verified, never stopped: {exc.message}"
        if (stopped.path, stopped.line) != (path, line):
            return f"stopped at {stopped.path}:{stopped.line} ({stopped.reason})"
        await client.set_breakpoints(path, [])
        await client.continue_(stopped.thread_id)
        return ""
    finally:
        await client.disconnect()


async def attach_many(port: int, path: str, line: int, gaps: list[float]) -> list[str]:
    missed = []
    for index, gap in enumerate(gaps):
        problem = await attach_and_hit(port, path, line)
        if problem:
            missed.append(f"attach {index + 1} (after a {gap:.2f} s gap): {problem}")
        await asyncio.sleep(gap)
    return missed


def random_gaps(seed: int) -> list[float]:
    """The pause after each attach: none for a third of them (the case that wedged debugpy), else
    up to 0.4 s, so the attaches fall on every phase of the run's loop."""
    chance = random.Random(seed)
    return [0.0 if chance.random() < 1 / 3 else chance.uniform(0.0, 0.4) for _ in range(ATTACHES)]


@pytest.mark.needs_netns
async def test_fifty_attaches_at_random_moments_through_the_forward_all_hit(node: Testbed, tmp_path: Path):
    config = script_workspace(tmp_path / "ws", node, DEBUGGEE.read_text())
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    path = f"{node_home(node)}/work/tbws/dbg.py"
    seed = random.randrange(1 << 30)
    up = lambda: debuggable(events) and any(line.startswith("run pid") for line in events.output())
    async with debug_console(session, events, up, 60):
        started = rank(events)
        missed = await attach_many(started.local_port, path, BREAK_LINE, random_gaps(seed))
        assert not missed, f"{len(missed)} of {ATTACHES} attaches missed (seed {seed}): " + "; ".join(missed)
        after = rank(events)
        assert (after.pid, after.restarts, after.local_port) == (started.pid, 0, started.local_port)  # one process
    await session.down()


def guard_folder(tmp_path: Path) -> Path:
    """tether_debugguard and its adapter, copied the way the loop copies them next to its state."""
    (tmp_path / "state").mkdir(parents=True)
    folder = install_hook(tmp_path / "state")
    assert folder is not None
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_guarded(tmp_path: Path, port: int) -> tuple[subprocess.Popen[str], Path]:
    """debugpy as the loop runs it (``python -m tether_debugguard --listen``), on this machine, and
    the program it runs (the debuggee with its ``# BREAK HERE`` line)."""
    guard = guard_folder(tmp_path)
    program = tmp_path / "train.py"
    program.write_text(DEBUGGEE.read_text())
    env = {**os.environ, "PYTHONPATH": str(guard), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    run = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "frozen_modules=off",
            "-m",
            "tether_debugguard",
            "--listen",
            f"127.0.0.1:{port}",
            str(program),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return run, program


async def test_fifty_immediate_reattaches_to_the_guarded_debugpy_all_hit(tmp_path: Path):
    port = free_port()
    run, program = start_guarded(tmp_path, port)
    try:
        missed = await attach_many(port, str(program), BREAK_LINE, [0.0] * ATTACHES)
        assert not missed, f"{len(missed)} of {ATTACHES} missed: " + "; ".join(missed)
        assert run.poll() is None  # the same process all along
    finally:
        run.kill()
        run.wait()
        run.stderr.close()


# In the guarded adapter's setup: serve with a handler that fails on its first connection, then
# connect twice. debugpy's accept loop ran each handler in its own thread of control: a failure
# ended it, and the second connection was never handled.
ACCEPT_LOOP = r"""
import json, socket, sys, threading
import tether_debugguard
from debugpy.common import sockets
from debugpy.adapter import clients, sessions
getattr(tether_debugguard, "survive_quick_reattach", lambda _: None)(sockets)  # absent: debugpy as it is
handled, done = [], threading.Event()
def handler(sock):
    handled.append(len(handled) + 1)
    if len(handled) == 1:
        raise RuntimeError("the first connection's handler fails")
    sock.close()
    done.set()
listener = sockets.serve("Client", handler, "127.0.0.1", 0)
for _ in range(2):
    socket.create_connection(listener.getsockname()[:2]).close()
print(json.dumps({"second_handled": done.wait(10), "handled": handled}))
"""


def test_the_guarded_adapter_serves_the_next_client_after_a_handler_fails(tmp_path: Path):
    guard = guard_folder(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(guard)}
    done = subprocess.run([sys.executable, "-c", ACCEPT_LOOP], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"second_handled": True, "handled": [1, 2]}
    assert "dropped a Client connection: RuntimeError: the first connection's handler fails" in done.stderr

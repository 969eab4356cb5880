"""A run's debugger outlives any client (issue 14): a client that quits at once, or whose link
drops while the run is paused, leaves the debug port answering and the run going.

What was found (debugpy 1.8.x, plain ``python -m debugpy --listen``, no Tether): a client that
attached, paused, evaluated, continued, then sent ``disconnect`` and closed its socket at once, as
a quitting VS Code does, killed the adapter: it read the end of the stream first, then failed to
answer the disconnect, and exited. The run went on with nothing listening on its port (3 of 3
here); so did one that connected and left before the debuggee had reached the adapter (3 of 3;
1 of 3 with the guard as it was; still seen once under load with the holder below, so that case is
not claimed here). The guarded adapter holds its end of every client's connection until it has ended that
client's session itself, and ends it for a client that left without a word.

On this machine, debugpy as the loop runs it (``python -m tether_debugguard --listen``), and the
real loop in a tmux pane: ten quits and ten drops against one run, ten clients that leave at a
restart (issue 14, done-when 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from debug_helpers import BREAK_LINE
from test_debug_reattach import attach_and_hit, free_port, start_guarded
from test_loop import Pane, alive

from tui.debug.dap import DapClient
from tui.debug.wire import DapError
from tui.node import loopstate as ls
from tui.node.dapstorm import frame


async def attached(port: int) -> DapClient:
    """A client attached to the run, once the last client's session has ended (see attach_after):
    a loaded node's adapter ends it a moment after the client left."""
    for _ in range(50):
        client = await DapClient.connect_initialized("127.0.0.1", port, timeout=15)
        try:
            await client.attach({}, timeout=15)
            return client
        except DapError as exc:
            await client.close()
            if "is already being debugged" not in str(exc):
                raise
        await asyncio.sleep(0.1)
    raise AssertionError("the adapter went on refusing the run to a new client for 5 s")


async def leave(port: int, *, quits: bool) -> None:
    """Attach, pause, evaluate; then quit at once (continue, disconnect, close without waiting for
    the answer) or, with the run still paused, drop the connection without a word."""
    client = await attached(port)
    thread = (await client.threads(timeout=15))[0]
    await client.pause(thread.id, timeout=15)
    stopped = await client.wait_stopped(timeout=15)
    top = (await client.stack_trace(stopped.thread_id, levels=1, timeout=15))[0]
    assert (await client.evaluate("1 + 1", frame_id=top.id, timeout=15)).result == "2"
    if quits:
        await client.continue_(stopped.thread_id, timeout=15)
        await client.send_request("disconnect", {"terminateDebuggee": False})
    await client.close()


async def attach_after(port: int, program: Path) -> str:
    """``attach_and_hit`` once the last client's session has ended: the adapter ends it a moment
    after the client left, and until then refuses the run to a new one ("already being debugged"),
    as it does after any client; Tether's console, too, tries again then."""
    for _ in range(50):
        problem = await attach_and_hit(port, str(program), BREAK_LINE)
        if "is already being debugged" not in problem:
            return problem
        await asyncio.sleep(0.1)
    return problem


async def leave_early(port: int) -> None:
    """Connect the moment the port opens (before the debuggee reaches the adapter), say
    ``initialize``, and go."""
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.002)
    writer.write(frame({"seq": 1, "type": "request", "command": "initialize", "arguments": {"adapterID": "t"}}))
    # The port may still have been the old run's, whose adapter the restart ends: a reset is that
    # client's lot (it leaves anyway); what is tested is that the new run answers afterwards.
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def test_a_client_that_quits_or_drops_leaves_the_port_answering_and_the_run_going(tmp_path: Path):
    port = free_port()
    run, program = start_guarded(tmp_path, port)
    try:
        for quits in (True, False, True):
            await leave(port, quits=quits)
            # The next client finds the port, and the run going (its breakpoint hits: not paused).
            problem = await attach_after(port, program)
            assert problem == "", f"after a client that {'quit' if quits else 'dropped'}: {problem}"
        assert run.poll() is None  # the same run all along: nothing was restarted
    finally:
        run.kill()
        run.wait()
        assert run.stderr is not None
        run.stderr.close()


async def answers_within(port: int, seconds: float) -> float:
    """How long a DAP initialize took to be answered (failing past ``seconds``)."""
    started = time.monotonic()
    client = await DapClient.connect_initialized("127.0.0.1", port, timeout=seconds)
    await client.close()
    return time.monotonic() - started


async def test_ten_quits_and_ten_drops_against_one_run_under_the_loop(pane: Pane, tmp_path: Path):
    """Issue 14, done-when 2: each time the port answers again within 1 s, the run's pid never
    changes, and the loop does not go on saying "attached" once the client is gone."""
    pane.start_loop("sleep", mode="attach")
    first = pane.wait_state("running", lambda s: s["status"] == "running")
    for attempt in range(10):
        for quits in (True, False):
            await leave(pane.port, quits=quits)
            took = await answers_within(pane.port, 1.0)
            state = pane.wait_state("the client gone", lambda s: s["status"] == "running", timeout=5)
            assert state["pid"] == first["pid"], (attempt, quits, state["pid"])
            assert took < 1.0
    assert alive(first["pid"]) and pane.read()["restarts"] == 0


async def test_ten_clients_that_leave_at_a_restart_against_the_loop(pane: Pane, tmp_path: Path):
    """A client that comes and goes the moment a run (re)starts: the new run answers within 1 s."""
    pane.start_loop("sleep", mode="attach")
    state = pane.wait_state("running", lambda s: s["status"] == "running")
    for attempt in range(10):
        await asyncio.sleep(1.1)  # the loop never starts twice within a second
        early = asyncio.create_task(leave_early(pane.port))
        ls.send_control(pane.state, "restart")
        await asyncio.wait_for(early, 10)
        new = pane.wait_state("the restart", lambda s, old=state["pid"]: s.get("pid") not in (None, old))
        assert await answers_within(pane.port, 1.0) < 1.0, attempt
        state = new

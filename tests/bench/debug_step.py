"""One debugger step over a slow link (issue 13): the console's debugger against plain DAP.

    sudo python3 tests/bench/debug_step.py            # full: 100 ms round trip, 10 steps each
    sudo python3 tests/bench/debug_step.py --smoke    # 2 steps each (tests/test_bench_smoke_debug.py)

On the testbed, with the login host behind a relay that holds every chunk 50 ms each way (a 100 ms
round trip), the run is tests/fixtures/debugger_loop.py under Tether's loop on the compute node.
A step is `next` from the loop's STEP LINE to the line after, and it counts as done when the
laptop has what the debugger screen shows at a stop: the stack and the top frame's locals.
  tether: the console's debugger (tui/debug/debugger.py) on its private stream over the agent's
          channel, whose node end asks for the stack, scopes and locals itself (tui/node/dapstorm.py);
  plain:  a DAP client on the laptop's forwarded port, as VS Code would do it: next, wait for
          stopped, then stackTrace, scopes, variables, each waiting for the last;
  floor:  the round trip itself (the session's own ping through the relay, median).
Also the restart: from `r` (Session.restart_run) to the console's debugger attached to the new
process with its breakpoint set again. Per step: milliseconds (median), DAP round trips (requests
the laptop sent), DAP bytes (both ways) and the bytes the relay saw cross the link in the window.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import DelayRelay, bench_parser, bench_workspace, ratio, relay_ssh_config, run_benchmark, wait_for
from debug_helpers import rank, ranks
from node_helpers import Events, clean_node
from testbed import Testbed

from tui.config import load_workspace
from tui.debug.dap import DapClient
from tui.events import DebugStatus, LinkChanged, LinkState, RankStatus
from tui.session import Session

LOOP = Path(__file__).resolve().parent.parent / "fixtures" / "debugger_loop.py"
STEP_LINE = next(n for n, t in enumerate(LOOP.read_text().splitlines(), 1) if "# STEP LINE" in t)
DELAY_S = 0.05  # each way


def write_workspace(folder: Path, testbed: Testbed, ssh_config: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOOP.name).write_text(LOOP.read_text())
    run = (f'command = "python3 {LOOP.name}"', "[ui]", "stats_interval = 2.0")
    return bench_workspace(folder, testbed, ssh_config, name="bench", remote_root="~/work/bench", run=run)


async def tether_steps(session: Session, steps: int, relay: DelayRelay) -> dict:
    """The console's way: each step from `next` to the Stop (stack + locals) on the laptop."""
    debugger = session.debugger(0)
    debugger.memory.toggle(LOOP.name, STEP_LINE)
    debugger.start()
    times, requests, dap_bytes, link_bytes = [], [], [], []
    for _ in range(steps):
        await wait_for(lambda: debugger.view.status is DebugStatus.STOPPED and _at(debugger.view, STEP_LINE))
        client = debugger.client
        assert client is not None
        before = (client.requests_sent, client.bytes_sent + client.bytes_received, relay.bytes)
        old = debugger.view.stop
        started = time.monotonic()
        await debugger.step_over()
        await wait_for(lambda: debugger.view.stop is not None and debugger.view.stop is not old)
        times.append(time.monotonic() - started)
        requests.append(client.requests_sent - before[0])
        dap_bytes.append(client.bytes_sent + client.bytes_received - before[1])
        link_bytes.append(relay.bytes - before[2])
        await debugger.resume()  # on to the breakpoint again (not measured)
    return _figures(times, requests, dap_bytes, link_bytes)


async def restart_to_reattached(session: Session, samples: int) -> list[float]:
    """From `r` to the console's debugger attached to the new process, its breakpoint set again."""
    debugger = session.debugger(0)
    seconds = []
    for _ in range(samples):
        await asyncio.sleep(1.2)  # the loop never starts twice within a second (as tests/bench/restart.py)
        attaches = debugger.view.attaches
        started = time.monotonic()
        await session.restart_run()
        await wait_for(lambda: debugger.view.attaches > attaches and bool(debugger.view.verified), 30)
        seconds.append(time.monotonic() - started)
    return seconds


async def plain_steps(port: int, remote_file: str, steps: int, relay: DelayRelay) -> dict:
    """VS Code's way through the forwarded port: next, stopped, then stackTrace, scopes, variables."""
    client = await DapClient.connect_initialized("127.0.0.1", port, timeout=20)
    times, requests, dap_bytes, link_bytes = [], [], [], []
    try:
        await client.attach({remote_file: [STEP_LINE]})
        for _ in range(steps):
            stopped = await client.wait_stopped(timeout=20)
            before = (client.requests_sent, client.bytes_sent + client.bytes_received, relay.bytes)
            started = time.monotonic()
            await client.next(stopped.thread_id)
            await client.wait_for_event("stopped", timeout=20)
            frames = await client.stack_trace(stopped.thread_id, levels=30)
            scopes = await client.scopes(frames[0].id)
            await client.variables(scopes[0].variables_reference, count=100)
            times.append(time.monotonic() - started)
            requests.append(client.requests_sent - before[0])
            dap_bytes.append(client.bytes_sent + client.bytes_received - before[1])
            link_bytes.append(relay.bytes - before[2])
            await client.continue_(stopped.thread_id)
        await client.set_breakpoints(remote_file, [])
    finally:
        await client.disconnect()
    return _figures(times, requests, dap_bytes, link_bytes)


def _at(view, line: int) -> bool:
    top = view.stop.top if view.stop else None
    return top is not None and top.frame.line == line


def _figures(times: list[float], requests: list[int], dap_bytes: list[int], link_bytes: list[int]) -> dict:
    return {
        "ms": round(statistics.median(times) * 1000, 1),
        "ms_all": [round(t * 1000, 1) for t in times],
        "round_trips": statistics.median(requests),
        "dap_bytes": int(statistics.median(dap_bytes)),
        "link_bytes": int(statistics.median(link_bytes)),
    }


async def bench(testbed: Testbed, steps: int, restarts: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="tb-step-"))
    relay = DelayRelay(testbed.login_port, DELAY_S)
    config = relay_ssh_config(testbed, relay, folder, compression=False)
    clean_node(testbed)
    session, events = (
        Session(load_workspace(write_workspace(folder / "ws", testbed, config)), ping_interval=0.5),
        Events(),
    )
    task = asyncio.create_task(session.run(events.append))
    try:
        ready = lambda: (state := rank(events)) is not None and state.status is RankStatus.RUNNING and state.local_port
        await wait_for(lambda: ready() or task.done(), 120)
        if task.done():
            task.result()
        await wait_for(lambda: len([e for e in events.of(LinkChanged) if e.rtt_ms]) >= 3, 30)
        pings = [e.rtt_ms for e in events.of(LinkChanged) if e.state is LinkState.UP and e.rtt_ms]
        tether = await tether_steps(session, steps, relay)
        reattach = await restart_to_reattached(session, restarts)
        await session.debuggers.close()  # debugpy takes one client: let go before the plain one
        remote_file = f"{session.debug_runs.remote_root}/{LOOP.name}"
        plain = await plain_steps(ranks(events)[0].local_port, remote_file, steps, relay)
        await session.detach()
        task.cancel()
        await Session(load_workspace(folder / "ws" / "tether.toml")).down()
    finally:
        relay.close()
        if not task.done():
            task.cancel()
    floor_ms = statistics.median(pings)
    return {
        "rtt_ms": round(floor_ms, 1),
        "steps": steps,
        "tether": tether,
        "plain": plain,
        "ms_ratio": ratio(tether["ms"], plain["ms"], 2),
        "tether_over_rtt": ratio(tether["ms"], floor_ms, 2),
        "plain_over_rtt": ratio(plain["ms"], floor_ms, 2),
        "restart_to_reattached_ms": [round(s * 1000) for s in reattach],
        "meets_goal": tether["round_trips"] <= 1 and tether["ms"] < plain["ms"],
    }


def table(result: dict) -> str:
    t, p = result["tether"], result["plain"]
    rows = [
        f"one step (next, then the stack and the top frame's locals on the laptop), RTT {result['rtt_ms']} ms (floor)",
        f"{'':8} {'ms':>8} {'x RTT':>6} {'round trips':>12} {'DAP bytes':>10} {'link bytes':>11}",
        f"{'tether':8} {t['ms']:>8} {result['tether_over_rtt']:>6} {t['round_trips']:>12} {t['dap_bytes']:>10} {t['link_bytes']:>11}",
        f"{'plain':8} {p['ms']:>8} {result['plain_over_rtt']:>6} {p['round_trips']:>12} {p['dap_bytes']:>10} {p['link_bytes']:>11}",
        f"tether / plain: {result['ms_ratio']} x the time",
        f"r -> debugger attached again, breakpoint set: {result['restart_to_reattached_ms']} ms",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, "2 steps and 1 restart")
    args = parser.parse_args(argv)
    steps, restarts = (2, 1) if args.smoke else (10, 5)
    return run_benchmark("debug_step", lambda testbed, _: bench(testbed, steps, restarts), table)


if __name__ == "__main__":
    sys.exit(main())

"""The console's debugger core (tui/debug/debugger.py) against a real debugpy on 127.0.0.1.

The Debugger connects with a plain TCP connector here; the console's own connector rides the
agent's channel (tests/test_debugger_screen.py covers that on the testbed). The breakpoints are
set in the laptop's file (here the same path as the "node's") and kept in a file across sessions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from test_dap import Debuggee, free_port, wait_until

from tui.dap_model import SourceBreakpoint
from tui.debug.breakpoints import DebugMemory
from tui.debug.debugger import Debugger, Streams
from tui.events import DebugOutput, DebugStatus, DebugView

PROGRAM = Path(__file__).resolve().parent / "fixtures" / "debugger_program.py"


def line_of(marker: str) -> int:
    return next(n for n, text in enumerate(PROGRAM.read_text().splitlines(), 1) if f"# {marker}" in text)


class Seen:
    """What the debugger emitted, oldest first."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    @property
    def views(self) -> list[DebugView]:
        return [e for e in self.events if isinstance(e, DebugView)]

    @property
    def last(self) -> DebugView | None:
        return self.views[-1] if self.views else None

    def output(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, DebugOutput))

    def stops(self) -> list[DebugView]:
        """One view per stop (a stop is published again when, say, a breakpoint changes)."""
        found: dict[int, DebugView] = {}
        for view in self.views:
            if view.status is DebugStatus.STOPPED and view.stop is not None:
                found.setdefault(id(view.stop), view)
        return list(found.values())


def make_debugger(port: int, memory: DebugMemory, seen: Seen) -> Debugger:
    async def connect() -> Streams:
        return await asyncio.open_connection("127.0.0.1", port)

    root = PROGRAM.parent
    return Debugger(memory, root, lambda: str(root), connect, seen)


async def stopped_at(seen: Seen, count: int, timeout: float = 20.0) -> DebugView:
    await wait_until(lambda: len(seen.stops()) >= count, timeout, f"stop number {count}")
    return seen.stops()[count - 1]


async def test_stop_step_and_continue_with_breakpoints_from_the_memory(tmp_path: Path) -> None:
    memory = DebugMemory(tmp_path / "debug.json")
    memory.toggle(PROGRAM.name, line_of("INSPECT LINE"))
    seen = Seen()
    port = free_port()
    run = Debuggee(port, tmp_path / "out", PROGRAM)
    try:
        debugger = make_debugger(port, memory, seen)
        debugger.start()
        view = await stopped_at(seen, 1)
        assert view.stop is not None and view.stop.reason == "breakpoint"
        assert view.stop.top is not None and view.stop.top.local == PROGRAM
        assert view.stop.top.frame.line == line_of("INSPECT LINE")
        names = {v.name: v.value for v in view.stop.local_variables}
        assert names["total"] == "45"  # the loop ran: sum(range(10))
        assert (PROGRAM.name, line_of("INSPECT LINE")) in view.verified

        await debugger.step_over()
        view = await stopped_at(seen, 2)
        assert view.stop is not None and view.stop.top is not None
        assert view.stop.top.frame.line == line_of("CALL LINE") and view.stop.reason == "step"
        await debugger.step_in()
        view = await stopped_at(seen, 3)
        assert view.stop is not None and view.stop.top is not None
        assert view.stop.top.frame.line == line_of("SCALE LINE") and view.stop.top.frame.name == "scale"
        await debugger.step_out()
        view = await stopped_at(seen, 4)
        assert view.stop is not None and view.stop.top is not None and view.stop.top.frame.name == "main"
        await debugger.resume()
        await wait_until(lambda: "program finished" in run.output(), 20, "the program's end")
        await debugger.stop()
        assert seen.last is not None and seen.last.status is DebugStatus.OFF
    finally:
        run.kill()
    saved = json.loads((tmp_path / "debug.json").read_text())
    assert saved["breakpoints"] == {PROGRAM.name: [{"line": line_of("INSPECT LINE")}]}
    assert DebugMemory(tmp_path / "debug.json").breakpoints(PROGRAM.name) == [SourceBreakpoint(line_of("INSPECT LINE"))]


async def test_it_attaches_again_after_a_restart_and_the_breakpoint_hits_again(tmp_path: Path) -> None:
    memory = DebugMemory(None)
    memory.toggle(PROGRAM.name, line_of("INSPECT LINE"))
    seen = Seen()
    port = free_port()
    first = Debuggee(port, tmp_path / "first", PROGRAM)
    second: Debuggee | None = None
    debugger = make_debugger(port, memory, seen)
    try:
        debugger.start()
        await stopped_at(seen, 1)
        await debugger.resume()
        await wait_until(lambda: first.proc.poll() is not None, 20, "the first run's end")
        first.kill()  # its adapter too: the port is free for the restart
        second = Debuggee(port, tmp_path / "second", PROGRAM)  # what `r` does: a new debuggee, same port
        view = await stopped_at(seen, 2)
        assert view.attaches == 2 and view.stop is not None and view.stop.top is not None
        assert view.stop.top.frame.line == line_of("INSPECT LINE")
        await debugger.resume()
        await wait_until(lambda: "program finished" in second.output(), 20, "the second run's end")
    finally:
        await debugger.stop()
        first.kill()
        if second is not None:
            second.kill()


async def test_conditional_hit_count_logpoint_and_exception_breakpoints(tmp_path: Path) -> None:
    memory = DebugMemory(None)
    memory.put(PROGRAM.name, SourceBreakpoint(line_of("LOOP LINE"), condition="step == 7"))
    memory.put(PROGRAM.name, SourceBreakpoint(line_of("SCALE LINE"), log_message="scaling {value}"))
    seen = Seen()
    port = free_port()
    run = Debuggee(port, tmp_path / "out", PROGRAM)
    debugger = make_debugger(port, memory, seen)
    try:
        debugger.start()
        view = await stopped_at(seen, 1)
        assert view.stop is not None
        assert {v.name: v.value for v in view.stop.local_variables}.get("step") == "7"
        # now a hit count instead: the 2nd hit from here on (step 8, then 9: stops at 9)
        await debugger.put_breakpoint(PROGRAM, SourceBreakpoint(line_of("LOOP LINE"), hit_condition="2"))
        await debugger.resume()
        view = await stopped_at(seen, 2)
        assert view.stop is not None
        assert {v.name: v.value for v in view.stop.local_variables}.get("step") == "9"
        await debugger.toggle_breakpoint(PROGRAM, line_of("LOOP LINE"))  # off again
        await debugger.toggle_breakpoint(PROGRAM, line_of("INSPECT LINE"))
        await debugger.resume()
        await stopped_at(seen, 3)
        # "raised" stops on every raise, libraries' own too (imports raise and catch): turned on
        # here, past the imports, as a user would for the error they are after
        await debugger.set_exception_filters(["raised"])
        await debugger.resume()
        view = await stopped_at(seen, 4)  # the logpoint did not stop; the raise did
        assert view.stop is not None and view.stop.reason == "exception"
        assert view.stop.top is not None and view.stop.top.frame.line == line_of("RAISE LINE")
        assert "scaling 45" in seen.output()
        assert memory.exception_filters == ("raised",)
        await debugger.resume()
        await wait_until(lambda: "program finished" in run.output(), 20, "the program's end")
    finally:
        await debugger.stop()
        run.kill()


async def test_a_value_of_10_to_the_8_elements_costs_the_link_a_few_kilobytes(tmp_path: Path) -> None:
    """The stop (stack, the top frame's locals with the array among them) and the array's summary
    and min/max: all of it under 10 KB, though the array alone is 100 MB."""
    memory = DebugMemory(None)
    memory.toggle(PROGRAM.name, line_of("INSPECT LINE"))
    seen = Seen()
    port = free_port()
    run = Debuggee(port, tmp_path / "out", PROGRAM)
    debugger = make_debugger(port, memory, seen)
    received_at_attach: list[int] = []

    def note(event: object) -> None:
        if isinstance(event, DebugView) and event.status is DebugStatus.RUNNING and debugger.client:
            received_at_attach.append(debugger.client.bytes_received)
        seen(event)

    debugger._emit = note  # the counter read the moment it attached (before the stop)
    try:
        debugger.start()
        view = await stopped_at(seen, 1)
        client = debugger.client
        assert client is not None and view.stop is not None
        frame = view.stop.frames[0].frame.id
        big = await debugger.summarize("big", frame)
        tensor = await debugger.summarize("tensor", frame)
        stats = await debugger.array_stats("big", frame)
        assert big is not None and str(big) == "ndarray 100000000 uint8" and big.size == 10**8
        assert tensor is not None and str(tensor) == "StandInTensor 10000×10000 torch.float32 on cuda:0"
        assert stats is not None and (stats.minimum, stats.maximum, stats.nans) == (0, 0, 0)
        received = client.bytes_received - received_at_attach[0]
        print(f"stop + locals + 2 summaries + min/max of 10^8 elements: {received} bytes received")
        assert received < 10_000
    finally:
        await debugger.stop()
        run.kill()


async def test_while_another_debugger_holds_the_run_it_says_so_and_attaches_after(tmp_path: Path) -> None:
    """debugpy takes one client: VS Code (here a plain DAP client) attached first. The console's
    debugger says who holds the run and attaches once that one lets go."""
    from tui.debug.dap import DapClient

    loop = PROGRAM.parent / "debugger_loop.py"  # runs until stopped: there is a run to come back to
    step_line = next(n for n, t in enumerate(loop.read_text().splitlines(), 1) if "# STEP LINE" in t)
    port = free_port()
    run = Debuggee(port, tmp_path / "out", loop)
    seen = Seen()
    debugger = make_debugger(port, DebugMemory(None), seen)
    vscode = await DapClient.connect_initialized("127.0.0.1", port, timeout=20)
    try:
        await vscode.attach({str(loop): [step_line]})
        debugger.start()
        await wait_until(
            lambda: seen.last and "another debugger (VS Code?) holds rank 0" in seen.last.detail, 20, "the word"
        )
        assert seen.last is not None and seen.last.status is DebugStatus.WAITING
        stopped = await vscode.wait_stopped(timeout=20)
        await vscode.set_breakpoints(str(loop), [])
        await vscode.continue_(stopped.thread_id)
        await vscode.disconnect()
        await wait_until(
            lambda: seen.last and seen.last.status is DebugStatus.RUNNING, 20, f"the console attached {seen.views[-3:]}"
        )
    finally:
        await debugger.stop()
        await vscode.close()
        run.kill()

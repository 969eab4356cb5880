"""The requests of a debugger screen, against a real debugpy adapter on 127.0.0.1.

Each test runs tests/fixtures/dap_program.py under ``python -m debugpy --listen 127.0.0.1:PORT
--wait-for-client`` (as tests/test_dap.py does, with its helpers) and always kills what it started,
by pid: the debuggee's process group and debugpy's detached adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from test_dap import LOOPBACK, Debuggee, encode_message, free_port, read_message, scripted_adapter, wait_until

from tui.debug.dap import DapClient, DapError, DapEvent, SourceBreakpoint, StoppedAt, Variable

PROGRAM = Path(__file__).resolve().parent / "fixtures" / "dap_program.py"
SOURCE = PROGRAM.read_text().splitlines()


def marked(marker: str) -> int:
    """The line carrying ``# MARKER`` in the program."""
    return next(n for n, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# {marker}"))


LOOP, COUNT, LOG, INSPECT = marked("LOOP LINE"), marked("COUNT LINE"), marked("LOG LINE"), marked("INSPECT LINE")
PRE_CALL, CALL, AFTER_CALL = marked("PRE CALL LINE"), marked("CALL LINE"), marked("AFTER CALL LINE")
HELPER_FIRST, RAISE = marked("HELPER FIRST LINE"), marked("RAISE LINE")
BUSY, BUSY_EXIT = marked("BUSY LINE"), marked("BUSY EXIT LINE")


class Program(Debuggee):
    """dap_program.py under debugpy, on loopback only; killed like test_dap's debuggee."""

    def __init__(self, port: int, out: Path, *args: str) -> None:
        super().__init__(port, out, PROGRAM, args)


class Session:
    """A started program and an attached client, with every event it got."""

    def __init__(self, client: DapClient, program: Program, events: list[DapEvent]) -> None:
        self.client = client
        self.program = program
        self.events = events

    def output(self) -> str:
        """What the program printed (its stdout: debugpy forwards none of it to an attached client)."""
        return self.program.output()

    def adapter_output(self) -> str:
        """The adapter's ``output`` events but telemetry: logpoints (category "stdout"), its notices."""
        outputs = [e.body for e in self.events if e.name == "output" and e.body.get("category") != "telemetry"]
        return "".join(str(body.get("output", "")) for body in outputs)


OpenSession = Callable[..., Awaitable[Session]]


@pytest.fixture
async def open_session(tmp_path: Path) -> AsyncIterator[OpenSession]:
    started: list[Session] = []
    programs: list[Program] = []

    async def start(
        *args: str,
        breakpoints: Mapping[str, Sequence[int | SourceBreakpoint]] | None = None,
        exception_filters: Sequence[str] = (),
        just_my_code: bool = False,
    ) -> Session:
        port = free_port()
        program = Program(port, tmp_path / f"program-{port}.out", *args)
        programs.append(program)
        events: list[DapEvent] = []
        client = await DapClient.connect_initialized(LOOPBACK, port, timeout=15, on_event=events.append)
        session = Session(client, program, events)
        started.append(session)
        await client.attach(breakpoints, exception_filters=exception_filters, just_my_code=just_my_code, timeout=15)
        return session

    try:
        yield start
    finally:
        for session in started:
            await session.client.disconnect(timeout=2)
        for program in programs:
            program.kill()


async def frame_locals(client: DapClient, stopped: StoppedAt) -> dict[str, Variable]:
    """The top frame's locals, as the variables pane lists them."""
    frame = (await client.stack_trace(stopped.thread_id, levels=1))[0]
    scopes = await client.scopes(frame.id)
    local_scope = next(scope for scope in scopes if scope.name == "Locals")
    return {variable.name: variable for variable in await client.variables(local_scope.variables_reference)}


async def children(client: DapClient, variable: Variable) -> dict[str, Variable]:
    assert variable.expandable, variable
    return {child.name: child for child in await client.variables(variable.variables_reference)}


async def finished(session: Session) -> None:
    """The program ran to its end: its last line printed, and the adapter said so.

    ``terminated`` only: debugpy sends ``exited`` (with the exit code) only for a process it
    launched, not for one it was attached to.
    """
    await session.client.wait_for_event("terminated", timeout=15)
    await wait_until(lambda: "program finished" in session.output(), 10, "the program's last output")
    await wait_until(lambda: session.program.proc.poll() is not None, 10, "the program to exit")
    assert session.program.proc.returncode == 0


async def test_conditional_hit_count_and_logpoint(open_session: OpenSession) -> None:
    wanted = [
        SourceBreakpoint(LOOP, condition="i == 7"),
        SourceBreakpoint(COUNT, hit_condition="3"),
        SourceBreakpoint(LOG, log_message="i is {i}"),
    ]
    session = await open_session(breakpoints={str(PROGRAM): wanted})
    client = session.client

    counted = await client.wait_stopped(timeout=15)
    assert (counted.line, counted.reason) == (COUNT, "breakpoint")
    assert (await frame_locals(client, counted))["i"].value == "2"  # the third time through
    await client.continue_(counted.thread_id)

    conditional = await client.wait_stopped(timeout=15)
    assert (conditional.line, conditional.reason) == (LOOP, "breakpoint")
    assert (await frame_locals(client, conditional))["i"].value == "7"
    await client.continue_(conditional.thread_id)

    await finished(session)
    assert [e.name for e in session.events].count("stopped") == 2  # the logpoint never stopped
    logged = [line for line in session.adapter_output().splitlines() if line.startswith("i is ")]
    assert logged == [f"i is {i}" for i in range(10)]
    assert "loop done: total=45 hits=10 last=9" in session.output()


async def test_inspect_expand_evaluate_complete_and_set(open_session: OpenSession) -> None:
    session = await open_session(breakpoints={str(PROGRAM): [INSPECT]})
    client = session.client
    stopped = await client.wait_stopped(timeout=15)
    assert stopped.line == INSPECT

    local = await frame_locals(client, stopped)
    assert local["total"].value == "45" and not local["total"].expandable
    assert local["message"].value == "'original'" and local["message"].type == "str"
    data = (await children(client, local["config"]))["data"]
    items = (await children(client, data))["'items'"]
    assert items.value == "[10, 20, 30]" and items.type == "list"
    assert [v.value for v in (await children(client, items)).values() if v.name.isdigit()] == ["10", "20", "30"]

    frame = (await client.stack_trace(stopped.thread_id, levels=1))[0]
    result = await client.evaluate("total + len(config.data['items'])", frame_id=frame.id, context="watch")
    assert (result.result, result.type) == ("48", "int")
    with pytest.raises(DapError, match="name 'no_such_name' is not defined"):
        await client.evaluate("no_such_name + 1", frame_id=frame.id)

    completions = await client.completions("conf", 5, frame_id=frame.id)
    assert "config" in [c.label for c in completions]

    changed = await client.set_variable(
        next(s for s in await client.scopes(frame.id) if s.name == "Locals").variables_reference,
        "message",
        "'changed'",
    )
    assert changed.value == "'changed'"
    await client.continue_(stopped.thread_id)
    await finished(session)
    assert "message: changed items=3 big=1000" in session.output()


async def test_next_step_in_step_out_and_run_to_the_end(open_session: OpenSession) -> None:
    session = await open_session(breakpoints={str(PROGRAM): [PRE_CALL]})
    client = session.client
    stopped = await client.wait_stopped(timeout=15)
    assert stopped.line == PRE_CALL
    thread = stopped.thread_id

    await client.next(thread)
    stepped = await client.wait_stopped(timeout=15)
    assert (stepped.line, stepped.reason) == (CALL, "step")

    await client.step_in(thread)
    inside = await client.wait_stopped(timeout=15)
    assert (inside.line, inside.reason) == (HELPER_FIRST, "step")
    frames, total = await client.stack_page(thread, start=0, levels=1)
    assert [f.name for f in frames] == ["helper"]
    callers, _ = await client.stack_page(thread, start=1, levels=1)
    assert [(f.name, f.line) for f in callers] == [("main", CALL)]
    assert total is not None and total >= 3  # helper, main, <module> (and debugpy's own, maybe)

    await client.step_out(thread)
    back = await client.wait_stopped(timeout=15)
    assert (back.reason, back.line) == ("step", CALL)  # back on the calling line, before its assignment
    assert (await client.stack_trace(thread, levels=1))[0].name == "main"
    assert "result" not in await frame_locals(client, back)
    await client.next(thread)
    after = await client.wait_stopped(timeout=15)
    assert after.line == AFTER_CALL and (await frame_locals(client, after))["result"].value == "90"

    await client.continue_(thread)
    await finished(session)
    assert "helper gave 90" in session.output()


async def test_raised_exception_filter_stops_on_a_caught_raise(open_session: OpenSession) -> None:
    # justMyCode: with it off, "raised" first stops inside the stdlib (pathlib, as debugpy starts the program).
    session = await open_session(exception_filters=["raised"], just_my_code=True)
    client = session.client
    assert {f.filter for f in client.exception_filters()} >= {"raised", "uncaught", "userUnhandled"}
    stopped = await client.wait_stopped(timeout=15)
    assert (stopped.reason, stopped.line) == ("exception", RAISE)
    await client.continue_(stopped.thread_id)
    await finished(session)
    assert "caught the ValueError" in session.output()


async def test_a_page_of_a_big_list_is_small_on_the_link(open_session: OpenSession) -> None:
    session = await open_session(breakpoints={str(PROGRAM): [INSPECT]})
    client = session.client
    stopped = await client.wait_stopped(timeout=15)
    big = (await frame_locals(client, stopped))["big"]
    assert big.expandable

    before_bytes, before_requests = client.bytes_received, client.requests_sent
    page = await client.variables(big.variables_reference, start=100, count=10)
    received = client.bytes_received - before_bytes
    assert [(v.name, v.value) for v in page] == [(str(i), str(i)) for i in range(100, 110)]
    assert client.requests_sent - before_requests <= 2  # debugpy does not page: evaluate builds the page
    assert received < 4096, f"a 10-item page took {received} bytes"
    assert page[5].evaluate_name == "big[105]"

    # An item of a page is the list's own: setting it changes the list, not a copy.
    assert (await client.set_variable(big.variables_reference, "105", "-5")).value == "-5"
    frame = (await client.stack_trace(stopped.thread_id, levels=1))[0]
    assert (await client.evaluate("big[105], sum(big)", frame_id=frame.id)).result == f"(-5, {sum(range(1000)) - 110})"

    # Children that are no sequence (a scope's) still come as one page of the asked size.
    local_scope = (await client.scopes(frame.id))[0]
    everything = await client.variables(local_scope.variables_reference)
    assert await client.variables(local_scope.variables_reference, start=1, count=3) == everything[1:4]
    await client.continue_(stopped.thread_id)
    await finished(session)


async def test_pause_a_busy_loop_and_goto_out_of_it(open_session: OpenSession) -> None:
    session = await open_session("busy")
    client = session.client
    await wait_until(lambda: any(e.name == "thread" for e in session.events), 15, "the main thread to start")
    threads = await client.threads()
    assert threads, "debugpy lists no threads"
    main = next((t for t in threads if t.name == "MainThread"), threads[0])

    # Under load the first pause may land before the program reached its loop (still importing,
    # in `open`): go on and pause again until it is in busy(), where the rest of the test works.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        await client.pause(main.id)
        paused = await client.wait_stopped(timeout=15)
        assert paused.reason == "pause" and paused.thread_id == main.id
        top = (await client.stack_trace(main.id, levels=1))[0].name
        if top == "busy" or asyncio.get_running_loop().time() > deadline:
            break
        await client.continue_(main.id)
    assert top == "busy"

    if not client.capabilities.get("supportsGotoTargetsRequest"):
        pytest.skip("this debugpy offers no goto")
    targets = await client.goto_targets(str(PROGRAM), BUSY_EXIT)
    assert targets
    await client.goto(main.id, targets[0])
    moved = await client.wait_stopped(timeout=15)
    assert (moved.reason, moved.line) == ("goto", BUSY_EXIT)
    await client.continue_(main.id)
    await wait_until(lambda: "left the busy loop after" in session.output(), 15, "the line after the loop")
    await wait_until(lambda: session.program.proc.poll() is not None, 10, "the program to exit")


async def test_function_breakpoint_and_debugpy_events(open_session: OpenSession) -> None:
    session = await open_session(breakpoints={str(PROGRAM): [INSPECT]})
    client = session.client
    first = await client.wait_stopped(timeout=15)
    placed = await client.set_function_breakpoints(["helper"])
    assert len(placed) == 1
    await client.continue_(first.thread_id)
    stopped = await client.wait_stopped(timeout=15)
    assert stopped.reason == "function breakpoint"
    assert (await client.stack_trace(stopped.thread_id, levels=1))[0].name == "helper"
    await client.continue_(stopped.thread_id)
    await finished(session)
    names = {e.name for e in session.events}
    assert "process" in names, names  # debugpy's own events arrive like any other
    assert client.requests_sent > 0 and client.bytes_sent > 0 and client.bytes_received > client.bytes_sent


async def test_debugpy_events_and_reverse_requests_do_not_break_the_session() -> None:
    """debugpy's own events go to listeners; an unknown reverse request gets a refusal, and on."""
    own = ["debugpyAttach", "debugpySockets", "debugpyWaitingForServer", "process", "module", "loadedSource"]
    answers: list[dict[str, Any]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_message(reader)
        assert request is not None and request["command"] == "threads"
        for seq, name in enumerate(own, 1):
            writer.write(encode_message({"seq": seq, "type": "event", "event": name, "body": {"n": seq}}))
        writer.write(encode_message({"seq": 50, "type": "request", "command": "startDebugging", "arguments": {}}))
        await writer.drain()
        answer = await read_message(reader)
        assert answer is not None
        answers.append(answer)
        body = {"threads": [{"id": 1, "name": "MainThread"}]}
        reply = {"seq": 51, "type": "response", "request_seq": request["seq"], "command": "threads", "success": True}
        writer.write(encode_message({**reply, "body": body}))
        await writer.drain()
        await reader.read()

    server, port = await scripted_adapter(script)
    seen: list[DapEvent] = []
    async with server:
        async with await DapClient.connect(LOOPBACK, port, timeout=2, on_event=seen.append) as client:
            threads = await client.threads(timeout=5)
            assert [(t.id, t.name) for t in threads] == [(1, "MainThread")]
            for name in own:
                event = await client.wait_for_event(name, timeout=2)
                assert event.body["n"] == own.index(name) + 1
            assert not client.closed
    assert [e.name for e in seen] == own
    assert answers[0]["success"] is False and answers[0]["command"] == "startDebugging"

"""The DAP client against a real debugpy adapter on 127.0.0.1, plus framing and errors on real sockets.

Each debugpy test starts ``python -m debugpy --listen 127.0.0.1:PORT --wait-for-client`` with the
interpreter running the tests, and always kills what it started: the debuggee's process group and
the adapter process that debugpy detaches from it (found by its command line and port).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tui.debug.dap import DapClient, DapError, DapEvent, encode_message, read_message

DEBUGGEE = Path(__file__).resolve().parent / "fixtures" / "debuggee.py"
BREAK_LINE = next(n for n, text in enumerate(DEBUGGEE.read_text().splitlines(), 1) if "# BREAK HERE" in text)
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until truthy, with a deadline (no bare sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= deadline
        if result := predicate():
            return result
        if last:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def adapter_pids(port: int) -> set[int]:
    """debugpy's adapter for this port: it runs detached (parent 1), so find it by its arguments."""
    pids = set()
    for pid in all_pids():
        args = cmdline(pid)
        if any("debugpy" in a and "adapter" in a for a in args) and f"{port}" in args:
            pids.add(pid)
    return pids


def listening_sockets(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by ``pids`` (from /proc/net/tcp*)."""
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: TCP_LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints the address as native-endian 32-bit words.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


class Debuggee:
    """One ``python -m debugpy --listen 127.0.0.1:PORT --wait-for-client debuggee.py`` run."""

    def __init__(self, port: int, out: Path, program: Path = DEBUGGEE, args: tuple[str, ...] = ()) -> None:
        self.port = port
        self.out = out
        listen = f"{LOOPBACK}:{port}"
        self.argv = [sys.executable, "-m", "debugpy", "--listen", listen, "--wait-for-client", str(program), *args]
        env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
        with open(out, "wb") as stdout:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own process group, killed as one
            )
        self.adapters: set[int] = set()

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def find_adapter(self) -> set[int]:
        self.adapters |= adapter_pids(self.port)
        return self.adapters

    def kill(self) -> None:
        self.find_adapter()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the group id is its pid
        except ProcessLookupError:
            pass
        for pid in self.adapters:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=5)


@pytest.fixture
def start_debuggee(tmp_path: Path) -> Iterator[Callable[[int], Debuggee]]:
    started: list[Debuggee] = []

    def start(port: int) -> Debuggee:
        run = Debuggee(port, tmp_path / f"debuggee-{port}.out")
        started.append(run)
        return run

    try:
        yield start
    finally:
        for run in started:
            run.kill()


def assert_loopback_only(run: Debuggee) -> None:
    """Security rule: debugpy is started on 127.0.0.1 and nothing of it listens anywhere else."""
    assert f"{LOOPBACK}:{run.port}" in run.argv and not any("0.0.0.0" in a for a in run.argv)
    assert cmdline(run.proc.pid) == run.argv  # what actually runs, read back from /proc


async def test_breakpoint_stop_continue_and_finish(start_debuggee: Callable[[int], Debuggee]) -> None:
    port = free_port()
    run = start_debuggee(port)
    seen: list[DapEvent] = []
    queue: asyncio.Queue[DapEvent] = asyncio.Queue()
    client = await DapClient.connect(LOOPBACK, port, timeout=10, on_event=seen.append, queue=queue)
    try:
        assert_loopback_only(run)
        capabilities = await client.initialize()
        assert capabilities.get("supportsConfigurationDoneRequest") is True
        accepted = await client.attach({str(DEBUGGEE): [BREAK_LINE]})
        assert accepted[str(DEBUGGEE)][BREAK_LINE].verified

        stopped = await client.wait_stopped(timeout=10)
        assert stopped.reason == "breakpoint"
        assert Path(stopped.path).resolve() == DEBUGGEE and stopped.line == BREAK_LINE
        assert "debuggee finished" not in run.output()
        with pytest.raises(DapError, match="the debug adapter refused 'stackTrace': .+"):
            await client.stack_trace(thread_id=987654)  # the adapter's own error message comes through

        # While it is stopped: the adapter and the debuggee listen on loopback only.
        pids = descendants(run.proc.pid) | run.find_adapter()
        assert run.adapters, "debugpy's adapter process was not found"
        sockets = listening_sockets(pids)
        assert (LOOPBACK, port) in sockets
        assert all(address in (LOOPBACK, "::1") for address, _ in sockets), sockets

        await client.continue_(stopped.thread_id)
        await wait_until(lambda: run.proc.poll() is not None, 10, "the debuggee to exit")
        assert run.proc.returncode == 0
        assert "debuggee finished: total=3" in run.output()
    finally:
        await client.disconnect()
    assert client.closed
    names = [event.name for event in seen]
    assert "initialized" in names and "stopped" in names
    assert [queue.get_nowait().name for _ in range(queue.qsize())] == names


async def test_connect_retries_until_the_adapter_listens(start_debuggee: Callable[[int], Debuggee]) -> None:
    port = free_port()
    connecting = asyncio.ensure_future(DapClient.connect(LOOPBACK, port, timeout=10))
    try:
        await asyncio.sleep(0.3)
        assert not connecting.done(), "connect gave up while the port still refused"
        run = start_debuggee(port)
        client = await connecting
    finally:
        connecting.cancel()
    try:
        await client.initialize()
        await client.attach()  # no breakpoints: the debuggee runs to the end
        await wait_until(lambda: run.proc.poll() is not None, 10, "the debuggee to exit")
        assert "debuggee finished: total=3" in run.output()
    finally:
        await client.disconnect()


async def test_connect_fails_clearly_when_nothing_listens() -> None:
    port = free_port()
    started = time.monotonic()
    expected = rf"no debug adapter listening on 127\.0\.0\.1:{port} after 0\.5s"
    with pytest.raises(DapError, match=expected) as info:
        await DapClient.connect(LOOPBACK, port, timeout=0.5)
    assert time.monotonic() - started < 3
    assert info.value.fix


# ---- framing and errors, against a small scripted adapter on a real loopback socket ----------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def scripted_adapter(script: Script) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    return server, server.sockets[0].getsockname()[1]


def reply(writer: asyncio.StreamWriter, request: dict[str, Any], **fields: Any) -> None:
    seq, command = request["seq"], request["command"]
    message = {"seq": 100 + seq, "type": "response", "request_seq": seq, "command": command, **fields}
    writer.write(encode_message(message))


async def test_error_response_carries_the_adapters_message() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_message(reader)
        assert request is not None and request["command"] == "evaluate" and request["seq"] == 1
        error = {"format": "name {n} is not defined", "variables": {"n": "foo"}}
        reply(writer, request, success=False, message="generic", body={"error": error})
        await writer.drain()
        await reader.read()

    server, port = await scripted_adapter(script)
    async with server:
        async with await DapClient.connect(LOOPBACK, port, timeout=2) as client:
            with pytest.raises(DapError, match="refused 'evaluate': name foo is not defined"):
                await client.request("evaluate", {"expression": "foo"})


async def test_early_event_is_kept_and_closed_connection_fails_pending_requests() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode_message({"seq": 1, "type": "event", "event": "output", "body": {"output": "hi"}}))
        writer.write(encode_message({"seq": 2, "type": "request", "command": "runInTerminal"}))
        await writer.drain()
        answer = await read_message(reader)  # our refusal of the reverse request
        assert answer is not None and answer["type"] == "response" and answer["success"] is False
        await read_message(reader)  # the "threads" request: hang up without answering

    server, port = await scripted_adapter(script)
    async with server:
        client = await DapClient.connect(LOOPBACK, port, timeout=2)
        try:
            await asyncio.sleep(0)  # let the event arrive before anyone waits for it
            event = await client.wait_for_event("output", lambda e: e.body.get("output") == "hi", timeout=2)
            assert event.body == {"output": "hi"}
            expected = "no answer to 'threads': the debug adapter closed the connection"
            with pytest.raises(DapError, match=expected):
                await client.request("threads", timeout=5)
            assert client.closed
            with pytest.raises(DapError, match="cannot send 'threads'"):
                await client.request("threads")
        finally:
            await client.disconnect()  # already closed by the adapter: not an error


async def test_connect_initialized_retries_while_a_forward_hangs_up() -> None:
    """An ssh forward accepts and then closes while nothing listens on the node: that is a retry."""
    attempts = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            return  # hang up at once, as ssh does when the far end refuses
        request = await read_message(reader)
        assert request is not None and request["arguments"]["clientID"] == "tether"
        reply(writer, request, success=True, body={"supportsConfigurationDoneRequest": True})
        await writer.drain()
        await reader.read()

    server, port = await scripted_adapter(script)
    async with server:
        async with await DapClient.connect_initialized(LOOPBACK, port, timeout=5) as client:
            assert client.capabilities == {"supportsConfigurationDoneRequest": True}
        assert attempts == 3


async def test_connect_initialized_gives_up_at_the_deadline() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return  # always hangs up

    server, port = await scripted_adapter(script)
    async with server:
        with pytest.raises(DapError, match="kept closing the connection for 0.5s"):
            await DapClient.connect_initialized(LOOPBACK, port, timeout=0.5)


async def test_attach_refused_at_once_raises_the_adapters_message() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_message(reader)
        assert request is not None and request["command"] == "attach"
        assert request["arguments"]["justMyCode"] is False
        reply(writer, request, success=False, message="Failed to connect to the debuggee")
        await writer.drain()
        await reader.read()

    server, port = await scripted_adapter(script)
    async with server:
        async with await DapClient.connect(LOOPBACK, port, timeout=2) as client:
            started = time.monotonic()
            with pytest.raises(DapError, match="refused 'attach': Failed to connect to the debuggee"):
                await client.attach({"/x.py": [3]}, timeout=5)
            assert time.monotonic() - started < 2  # not after waiting for an initialized event


async def test_attach_accepted_early_still_configures() -> None:
    """Adapters other than debugpy may answer attach first, then send initialized: also fine."""
    commands: list[str] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_message(reader)) is not None:
            commands.append(request["command"])
            reply(writer, request, success=True, body={"breakpoints": [{"verified": True, "line": 3}]})
            if request["command"] == "attach":
                writer.write(encode_message({"seq": 1, "type": "event", "event": "initialized"}))
            await writer.drain()

    server, port = await scripted_adapter(script)
    async with server:
        async with await DapClient.connect(LOOPBACK, port, timeout=2) as client:
            accepted = await client.attach({"/x.py": [3]}, path_mappings=[("/laptop", "/node")], timeout=5)
    assert accepted["/x.py"][3].verified
    assert commands == ["attach", "setBreakpoints", "configurationDone"]


async def test_request_without_answer_times_out() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads everything, answers nothing

    server, port = await scripted_adapter(script)
    async with server:
        async with await DapClient.connect(LOOPBACK, port, timeout=2) as client:
            expected = r"no answer to 'threads' from the debug adapter at .* within 0\.2s"
            with pytest.raises(DapError, match=expected):
                await client.request("threads", timeout=0.2)
            assert not client.closed


async def test_a_peer_that_is_not_dap_fails_pending_requests() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_message(reader)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await reader.read()

    server, port = await scripted_adapter(script)
    async with server:
        async with await DapClient.connect(LOOPBACK, port, timeout=2) as client:
            with pytest.raises(DapError, match="no answer to 'threads'.*Content-Length"):
                await client.request("threads", timeout=5)


def test_encode_message_frames_utf8_length() -> None:
    framed = encode_message({"text": "é"})
    header, body = framed.split(b"\r\n\r\n", 1)
    assert header == b"Content-Length: %d" % len(body) and json.loads(body) == {"text": "é"}

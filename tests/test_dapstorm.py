"""The node's stop storm (tui/node/dapstorm.py) between a DAP client and a real debugpy, as the
relay runs it on the node (two threads: the adapter's socket read by one, the client's bytes
written by another). A stop reaches the client with its stack, scopes and locals in one
``tetherStop`` event; the relay's own requests never reach the client; the client's messages pass
whole and in order."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

from test_dap import Debuggee, free_port, wait_until

from tui.debug.dap import DapClient
from tui.node.dapstorm import INJECTED_SEQ, Framer, StopStorm, frame

PROGRAM = Path(__file__).resolve().parent / "fixtures" / "debugger_loop.py"
STEP_LINE = next(n for n, t in enumerate(PROGRAM.read_text().splitlines(), 1) if "# STEP LINE" in t)


def test_framer_gives_whole_messages_from_any_chunks() -> None:
    stream = frame({"seq": 1, "type": "event", "event": "a"}) + frame({"seq": 2, "type": "event", "event": "é"})
    framer, got = Framer(), []
    for i in range(len(stream)):  # one byte at a time: the worst a socket can do
        got += framer.feed(stream[i : i + 1])
    assert [message["event"] for _, message in got] == ["a", "é"] and b"".join(raw for raw, _ in got) == stream
    broken = Framer()
    assert broken.feed(b"GET / HTTP/1.1\r\n\r\n") == [(b"GET / HTTP/1.1\r\n\r\n", None)]  # not DAP: passed on


class NodeRelay:
    """The relay's two ends as tui/node/relay.py wires them, in this process: the adapter's TCP
    socket on one side, a socketpair standing in for the agent's channel to the laptop."""

    def __init__(self, port: int) -> None:
        self.adapter = socket.create_connection(("127.0.0.1", port))
        self.adapter.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.laptop, self._node_end = socket.socketpair()
        self.storm = StopStorm(self.adapter.sendall, self._node_end.sendall)
        self.from_laptop: list[bytes] = []
        threading.Thread(target=self._pump_adapter, daemon=True).start()
        threading.Thread(target=self._pump_laptop, daemon=True).start()

    def _pump_adapter(self) -> None:
        while chunk := self.adapter.recv(65536):
            self.storm.adapter_data(chunk)
        self._node_end.close()

    def _pump_laptop(self) -> None:
        try:
            while chunk := self._node_end.recv(65536):
                self.from_laptop.append(chunk)
                self.storm.laptop_data(chunk)
        except OSError:
            pass

    def close(self) -> None:
        for sock in (self.adapter, self.laptop, self._node_end):
            sock.close()


async def test_a_stop_arrives_with_its_stack_and_locals_in_one_event(tmp_path: Path) -> None:
    port = free_port()
    run = Debuggee(port, tmp_path / "out", PROGRAM)
    relay: NodeRelay | None = None
    try:
        deadline = time.monotonic() + 20
        while relay is None:
            try:
                relay = NodeRelay(port)
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "debugpy did not listen"
                await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection(sock=relay.laptop)
        events: list[str] = []
        client = DapClient(reader, writer, on_event=lambda e: events.append(e.name))
        await client.initialize()
        await client.attach({str(PROGRAM): [STEP_LINE]})
        stopped = await client.wait_for_event("stopped")
        started = time.monotonic()
        storm = await client.wait_for_event("tetherStop")
        took = time.monotonic() - started
        body = storm.body
        assert body["threadId"] == stopped.body["threadId"]
        frames = body["stackTrace"]["stackFrames"]
        assert frames[0]["line"] == STEP_LINE and frames[0]["name"] == "main"
        names = {v["name"]: v["value"] for v in body["variables"]["variables"]}
        assert names["step"] == "1" and names["weight"] == "1.0"
        assert events.index("stopped") < events.index("tetherStop")
        print(f"the node's storm after the stop: {took * 1000:.1f} ms")
        # the client's own requests still work, and nothing of the relay's came through to it
        threads = await client.threads()
        await client.continue_(threads[0].id)
        await wait_until(lambda: events.count("tetherStop") >= 2, 10, "the next stop's storm")
        assert client.requests_sent < INJECTED_SEQ
        await client.set_breakpoints(str(PROGRAM), [])
        await client.disconnect()
    finally:
        if relay is not None:
            relay.close()
        run.kill()

"""The port relay end to end without ssh: the real agent as a local process, a local TCP echo server
standing in for debugpy on the node, and PortRelay listening on the laptop's side."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from tui.node import protocol
from tui.node import relay as node_relay
from tui.remote.agent_channel import AgentChannel, AgentError
from tui.remote.relay import PortRelay
from tui.remote.tunnel import free_local_port

ROOT = Path(__file__).resolve().parent.parent
QUICK = 2.0  # seconds anything here may take


@dataclass
class EchoServer:
    """127.0.0.1:port echoing every byte back; ``greeting`` set: says it, then hangs up at once."""

    greeting: bytes = b""
    port: int = 0
    peers: list[str] = field(default_factory=list)
    eof_seen: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    async def start(self) -> EchoServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[0])
        try:
            if self.greeting:
                writer.write(self.greeting)
                await writer.drain()
                return
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            self.eof_seen.set()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class Node:
    """The agent over pipes, the channel to it, and the relays its events go to."""

    channel: AgentChannel
    relays: list[PortRelay]
    events: list[dict[str, Any]]

    async def relay(self, remote_port: int, name: str = "debug") -> PortRelay:
        relay = PortRelay(name, remote_port, 0, lambda: self.channel)
        await relay.start()
        self.relays.append(relay)
        return relay


@pytest.fixture
def agent_log(tmp_path: Path) -> Iterator[BinaryIO]:
    """The agent's stderr (its log), kept out of the pipes."""
    with open(tmp_path / "agent.log", "wb") as log:
        yield log


@pytest.fixture
async def node(agent_log: BinaryIO) -> AsyncIterator[Node]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tui.node.agent",
        "test-version",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=agent_log,
        cwd=ROOT,
        limit=protocol.MAX_LINE_BYTES,
    )
    assert process.stdout is not None
    hello = protocol.decode(await asyncio.wait_for(process.stdout.readline(), 10))
    assert "relay" in hello["capabilities"]
    relays: list[PortRelay] = []
    events: list[dict[str, Any]] = []

    def on_event(message: dict[str, Any]) -> None:
        if not any(relay.handle(message) for relay in relays):
            events.append(message)

    channel = AgentChannel(process, hello, on_event)
    try:
        yield Node(channel, relays, events)
    finally:
        for relay in relays:
            await relay.close()
        await channel.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.close()


async def connect(relay: PortRelay) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", relay.local_port)


async def round_trip(relay: PortRelay, payload: bytes) -> bytes:
    """Send ``payload`` through the relay while reading the echo (both at once: no deadlock)."""
    reader, writer = await connect(relay)

    async def send() -> None:
        writer.write(payload)
        await writer.drain()

    try:
        _, echoed = await asyncio.gather(send(), reader.readexactly(len(payload)))
    finally:
        writer.close()
    return echoed


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """What arrives before the connection ends; a reset counts as an end."""
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_bytes_round_trip_unchanged_including_a_mebibyte(node: Node, echo: EchoServer):
    relay = await node.relay(echo.port)
    assert await asyncio.wait_for(round_trip(relay, b"hello node\n"), QUICK) == b"hello node\n"
    payload = os.urandom(1024 * 1024)
    echoed = await asyncio.wait_for(round_trip(relay, payload), QUICK)
    assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert echo.peers == ["127.0.0.1", "127.0.0.1"]


async def test_concurrent_connections_do_not_mix(node: Node, echo: EchoServer):
    relay = await node.relay(echo.port)
    other = await node.relay(echo.port, name="tensorboard")
    payloads = [bytes([n]) * 300_000 for n in (1, 2, 3)]
    echoed = await asyncio.wait_for(
        asyncio.gather(round_trip(relay, payloads[0]), round_trip(relay, payloads[1]), round_trip(other, payloads[2])),
        QUICK,
    )
    assert list(echoed) == payloads


async def test_relay_listens_on_loopback_only(node: Node, echo: EchoServer):
    relay = await node.relay(echo.port)
    assert await asyncio.wait_for(round_trip(relay, b"ping"), QUICK) == b"ping"
    if sys.platform.startswith("linux"):  # all of 127/8 is local there: a 0.0.0.0 listener would answer on .2
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.2", relay.local_port)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", relay.local_port)) == 0


async def test_nothing_listening_on_the_node_closes_the_laptop_connection(node: Node):
    relay = await node.relay(free_local_port())
    reader, writer = await connect(relay)
    try:
        assert await asyncio.wait_for(read_to_eof(reader), QUICK) == b""
    finally:
        writer.close()
    assert await node.channel.ping(timeout=QUICK) >= 0
    with pytest.raises(AgentError, match=r"nothing listens on 127\.0\.0\.1:\d+ on the node"):
        await node.channel.request("relay.open", stream="probe", port=relay.remote_port, timeout=QUICK)


@pytest.mark.parametrize("port", [0, 70000, -1, "22", True, None])
async def test_node_refuses_ports_that_are_not_tcp_ports(node: Node, port: Any):
    with pytest.raises(AgentError, match="1 to 65535"):
        await node.channel.request("relay.open", stream="s", port=port, timeout=QUICK)


async def test_node_connects_to_loopback_whatever_the_message_says(node: Node, echo: EchoServer):
    # The protocol has no host field: one slipped in is ignored, and the connection lands on 127.0.0.1.
    reply = await node.channel.request("relay.open", stream="s", port=echo.port, host="192.0.2.1", timeout=QUICK)
    assert reply["op"] == "relay.opened" and reply["stream"] == "s"
    await node.channel.send_raw(protocol.encode({"op": "relay.close", "stream": "s"}))
    assert node_relay.LOOPBACK == "127.0.0.1"
    tree = ast.parse(Path(node_relay.__file__).read_text())
    targets = [
        call.args[0]
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and getattr(call.func, "attr", "") in ("create_connection", "connect", "connect_ex")
    ]
    assert targets, "relay.py connects somewhere"
    for target in targets:  # every connect is to (LOOPBACK, port), never to an address from the message
        assert (
            isinstance(target, ast.Tuple) and isinstance(target.elts[0], ast.Name) and target.elts[0].id == "LOOPBACK"
        )


async def test_stream_names_are_checked_and_unknown_streams_ignored(node: Node, echo: EchoServer):
    await node.channel.request("relay.open", stream="twice", port=echo.port, timeout=QUICK)
    with pytest.raises(AgentError, match="already open"):
        await node.channel.request("relay.open", stream="twice", port=echo.port, timeout=QUICK)
    with pytest.raises(AgentError, match="stream must be"):
        await node.channel.request("relay.open", stream=7, port=echo.port, timeout=QUICK)
    for late in ({"op": "relay.send", "stream": "gone", "data": "aGk="}, {"op": "relay.close", "stream": "gone"}):
        await node.channel.send_raw(protocol.encode(late))
    assert await node.channel.ping(timeout=QUICK) >= 0
    assert node.events == []  # notifications are never answered, not even for a stream that is gone
    await node.channel.send_raw(protocol.encode({"op": "relay.send", "stream": "twice", "data": "not base64!"}))
    assert await node.channel.ping(timeout=QUICK) >= 0
    assert node.events == [{"op": "relay.closed", "stream": "twice"}]  # garbage ends that stream alone


async def test_server_hanging_up_ends_the_laptop_connection(node: Node):
    # It speaks first and hangs up at once: bytes that may beat relay.opened back still arrive.
    greeter = await EchoServer(greeting=b"welcome, and goodbye\n").start()
    try:
        relay = await node.relay(greeter.port)
        reader, writer = await connect(relay)
        try:
            assert await asyncio.wait_for(read_to_eof(reader), QUICK) == b"welcome, and goodbye\n"
        finally:
            writer.close()
    finally:
        await greeter.close()


async def test_laptop_client_closing_closes_the_node_socket(node: Node, echo: EchoServer):
    relay = await node.relay(echo.port)
    reader, writer = await connect(relay)
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(1), QUICK) == b"x"
    writer.close()
    await asyncio.wait_for(echo.eof_seen.wait(), QUICK)


async def test_channel_closing_closes_open_laptop_connections(node: Node, echo: EchoServer):
    relay = await node.relay(echo.port)
    reader, writer = await connect(relay)
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(1), QUICK) == b"x"
    await asyncio.wait_for(node.channel.close(), QUICK)
    try:
        assert await asyncio.wait_for(read_to_eof(reader), QUICK) == b""
    finally:
        writer.close()
    late_reader, late_writer = await connect(relay)  # no channel now: accepted, then closed at once
    try:
        assert await asyncio.wait_for(read_to_eof(late_reader), QUICK) == b""
    finally:
        late_writer.close()


async def test_closing_the_relay_stops_listening_and_closes_connections(node: Node, echo: EchoServer):
    relay = await node.relay(echo.port)
    reader, writer = await connect(relay)
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(1), QUICK) == b"x"
    await asyncio.wait_for(relay.close(), QUICK)
    try:
        assert await asyncio.wait_for(read_to_eof(reader), QUICK) == b""
    finally:
        writer.close()
    await asyncio.wait_for(echo.eof_seen.wait(), QUICK)  # the node's end was closed too
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", relay.local_port)


def test_the_only_unix_socket_the_relay_reaches_is_the_users_own_pdb(tmp_path: Path):
    """relay.open's pdb target (tui/node/pdbsocket.py): a pdb.sock of this user's, in a folder no
    one else may enter; anything else is refused before any connection."""
    import os
    import socket as socketlib

    from tui.node.pdbsocket import pdb_refusal

    folder = tmp_path / "loop"
    folder.mkdir(mode=0o700)
    path = folder / "pdb.sock"
    server = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    server.bind(str(path))
    try:
        assert pdb_refusal(str(path)) is None
        assert "absolute path" in (pdb_refusal("loop/pdb.sock") or "")
        assert "absolute path" in (pdb_refusal(str(folder / "control.sock")) or "")
        assert "absolute path" in (pdb_refusal(7) or "")
        os.chmod(folder, 0o755)  # others may enter the folder: not a private pdb
        assert "private folder" in (pdb_refusal(str(path)) or "")
        os.chmod(folder, 0o700)
        link_folder = tmp_path / "other"
        link_folder.mkdir(mode=0o700)
        (link_folder / "pdb.sock").symlink_to("/run/systemd/private")  # a name, pointing elsewhere
        assert "not a socket" in (pdb_refusal(str(link_folder / "pdb.sock")) or "")
        assert "no pdb waits" in (pdb_refusal(str(tmp_path / "gone" / "pdb.sock")) or "")
    finally:
        server.close()

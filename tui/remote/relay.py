"""A TCP port relayed over the agent's channel, for nodes that ``ssh -O forward`` cannot reach.

On Slurm sites whose nodes take no ssh, the node is reached only through ``srun --overlap`` steps,
so there is no master to add a forward to. ``PortRelay`` listens on the laptop's 127.0.0.1 itself
and carries each connection it accepts as a stream of ``relay.*`` messages to 127.0.0.1 on the node
(``tui.node.relay``). Like the ssh forwards (``tui.remote.tunnel``) it listens on 127.0.0.1 only: a
debug port open to the network would hand out code execution on the node.

Streams are named here, unique across relays and reconnects, so ``handle`` needs no channel to
know which connection an event belongs to, and bytes the node sends before ``relay.opened`` comes
back still find their connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import socket
from collections.abc import Callable
from typing import cast

from tui.node import protocol
from tui.node import protocol_relay as pr
from tui.remote.agent_channel import AgentChannel, AgentError

LOOPBACK = "127.0.0.1"
READ_CHUNK = 48 * 1024  # base64 makes it 64 KiB on the channel


class PortRelay:
    """laptop 127.0.0.1:local_port -> node 127.0.0.1:remote_port, carried by the agent channel."""

    def __init__(self, name: str, remote_port: int, local_port: int, agent: Callable[[], AgentChannel | None]) -> None:
        self.name = name
        self.remote_port = remote_port
        self.local_port = local_port  # 0: the kernel picks one, set by start()
        self._agent = agent  # read anew per connection: a reconnect brings a new channel
        self._server: asyncio.Server | None = None
        self._writers: dict[str, asyncio.StreamWriter] = {}  # open streams, by name
        self._connections: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.local_port)
        self.local_port = self._server.sockets[0].getsockname()[1]

    async def open_stream(
        self, *, dap: bool = False, pdb: str = ""
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the node's port for this process alone, with no listener at all: one end
        of a socketpair (no address another user of the laptop could reach), whose other end the
        relay carries as if it had accepted it. The console's own debugger connects this way;
        ``dap``: the node answers each stop's requests itself (tui.node.dapstorm); ``pdb``: a run's pdb
        socket on the node instead of the port (tui.node.hook)."""
        ours, theirs = socket.socketpair()
        try:
            carried = await asyncio.open_connection(sock=theirs)
            streams = await asyncio.open_connection(sock=ours)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        target = pr.RelayTarget(pdb=pdb) if pdb else pr.RelayTarget(port=self.remote_port)
        if dap and not pdb:
            target["dap"] = True
        self._connections.add(asyncio.get_running_loop().create_task(self._serve(*carried, target=target)))
        return streams

    def handle(self, message: protocol.Message) -> bool:
        """Take an agent event; True when it belonged to one of this relay's streams."""
        stream = message.get("stream")
        if message.get("op") not in (pr.DATA, pr.CLOSED) or not isinstance(stream, str):
            return False
        writer = self._writers.get(stream)
        if writer is None:
            return False
        if message["op"] == pr.CLOSED:
            del self._writers[stream]  # the node closed its end: nothing to tell it back
            writer.close()
        elif not writer.is_closing():
            try:
                data = cast(pr.RelayData, message).get("data", "")
                writer.write(base64.b64decode(data, validate=True))  # in arrival order
            except (binascii.Error, TypeError):
                writer.close()  # raising would end the channel's reader; _serve tells the node
        return True

    async def close(self) -> None:
        """Stop listening and close every open connection (the node's ends too, while the channel is up)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: pr.RelayTarget | None = None
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        channel = self._agent()
        # id(self) keeps two relays with one name apart; the counter, this relay's connections.
        stream = f"{self.name[:64]}:{id(self):x}:{next(self._numbers)}"
        self._writers[stream] = writer
        try:
            if channel is not None and not channel.closed:
                await self._carry(reader, channel, stream, target or pr.RelayTarget(port=self.remote_port))
        except (AgentError, asyncio.TimeoutError):
            pass  # nothing listens on the node, or the channel went away: the client sees the close
        except asyncio.CancelledError:
            pass  # how close() ends a connection; Python < 3.12 would log a cancelled one as an error
        finally:
            self._connections.discard(task)
            writer.close()
            # Still ours: the client, relay.close() or a failed or late open ended it, so the node's end
            # must close too (a stream the node never opened is ignored there).
            if self._writers.pop(stream, None) is not None and channel is not None and not channel.closed:
                with contextlib.suppress(AgentError):
                    await channel.send_raw(protocol.encode(pr.RelayClose(op=pr.CLOSE, stream=stream)))

    async def _carry(
        self, reader: asyncio.StreamReader, channel: AgentChannel, stream: str, target: pr.RelayTarget
    ) -> None:
        """Open the node's end (``target``: relay.open's port or pdb), then pump until either end
        closes or the channel does."""
        await channel.call(pr.OPEN, pr.RelayOpen(stream=stream, **target))
        pump = asyncio.create_task(self._pump(reader, channel, stream))
        gone = asyncio.create_task(channel.wait_closed())  # a reconnect's new channel knows no old streams
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            gone.cancel()

    async def _pump(self, reader: asyncio.StreamReader, channel: AgentChannel, stream: str) -> None:
        """The client's bytes to the node until it closes (or handle() closed it on relay.closed)."""
        with contextlib.suppress(ConnectionError, AgentError):
            while data := await reader.read(READ_CHUNK):
                message = pr.RelaySend(op=pr.SEND, stream=stream, data=base64.b64encode(data).decode())
                await channel.send_raw(protocol.encode(message))

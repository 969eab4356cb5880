"""Agent capability ``tui.node.relay``: TCP connections to 127.0.0.1 on the node over the agent's channel.

On sites whose compute nodes take no ssh (Slurm steps through ``srun --overlap``) ``ssh -O forward``
cannot reach the debug port, so the laptop listens itself and carries each connection it accepts
over these ops. The target is always 127.0.0.1 (no message names a host, so the relay can never
become a proxy into the cluster's network), or a run's own pdb socket. Stdlib only.

The laptop names each stream (unique on this channel) before it opens it, so bytes a server sends
at once cannot arrive before the laptop knows where they belong.

Ops:    relay.open  {stream, port}   -> relay.opened {stream}; an error when the port is not 1..65535,
                                        the stream is already open, or nothing listens there;
                                        with ``dap: true`` the stream is a debug adapter's and the
                                        node answers each stop's requests itself (tui.node.dapstorm);
                    {stream, pdb}    the same to a run's pdb socket (tui.node.hook), checked to be
                                        the user's own pdb.sock in a 0700 folder of theirs
        relay.send  {stream, data}   (no id, no reply): base64 bytes to the stream's socket
        relay.close {stream}         (no id, no reply): shut the stream's socket down
Events: relay.data   {stream, data}  bytes the node's socket sent (base64, reads of up to 64 KiB)
        relay.closed {stream}        the node's socket ended (EOF or error); not sent after relay.close
Closing either side closes the whole stream (no half-close). The process's exit closes the rest.
The messages' types are ``protocol_relay``'s.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import socket
import struct
import threading
from typing import TYPE_CHECKING

from tui.node.dapstorm import StopStorm
from tui.node.pdbsocket import pdb_connection, pdb_refusal
from tui.node.protocol import ErrorReply
from tui.node.protocol_relay import (
    CLOSE,
    CLOSED,
    DATA,
    OPEN,
    SEND,
    RelayClose,
    RelayClosed,
    RelayData,
    RelayOpen,
    RelayOpened,
    RelaySend,
)

if TYPE_CHECKING:
    from tui.node.agent import Agent

LOOPBACK = "127.0.0.1"
READ_CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0  # loopback answers at once; this only bounds a wedged listener
# sendall runs on the agent's one request thread: a target that stops reading would stall pings
# too, so a send blocked this long closes that stream instead.
SEND_TIMEOUT_S = 10
MAX_STREAM_NAME = 128


def port_refusal(port: object) -> str | None:
    """Why ``port`` cannot be a relay target, or None when it is a TCP port."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"port must be a number from 1 to 65535, not {port!r}"
    return None


def _error(text: str) -> ErrorReply:
    return {"op": "error", "error": text}


class Relay:
    """The node's open streams: a socket per stream name, each read by its own thread."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._sockets: dict[str, socket.socket] = {}
        self._storms: dict[str, StopStorm] = {}  # the streams opened with dap: true
        self._lock = threading.Lock()  # reader threads forget streams while the main thread opens them

    def open(self, message: RelayOpen) -> RelayOpened | ErrorReply:
        stream, port, unix = message.get("stream"), message.get("port"), message.get("pdb")
        refusal = pdb_refusal(unix) if unix is not None else port_refusal(port)
        if refusal is not None:
            return _error(f"relay.open: {refusal}")
        if not isinstance(stream, str) or not 0 < len(stream) <= MAX_STREAM_NAME:
            return _error(f"relay.open: stream must be a name of 1 to {MAX_STREAM_NAME} characters")
        with self._lock:
            if stream in self._sockets:
                return _error(f"relay.open: stream {stream!r} is already open")
        target = str(unix) if unix is not None else f"{LOOPBACK}:{port}"
        try:
            if unix is not None:
                sock = pdb_connection(str(unix), CONNECT_TIMEOUT)
            else:
                sock = socket.create_connection((LOOPBACK, port), timeout=CONNECT_TIMEOUT)
        except (ConnectionRefusedError, FileNotFoundError):
            return _error(f"nothing listens on {target} on the node")
        except OSError as exc:
            return _error(f"cannot connect to {target} on the node: {exc}")
        sock.settimeout(None)
        # Small request/answer messages (DAP): without this, Nagle's wait for the peer's delayed
        # ACK holds each one ~40 ms, and the node's stop storm (three in a row) took 130 ms.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError, struct.error):  # Linux/BSD timeval; elsewhere sends just block
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))
        with self._lock:
            self._sockets[stream] = sock
            if message.get("dap") is True:
                self._storms[stream] = StopStorm(sock.sendall, lambda data: self._to_laptop(stream, data))
        self.agent.spawn(f"relay {stream}", lambda: self._read(stream, sock))
        return RelayOpened(op="relay.opened", stream=stream)

    def send(self, message: RelaySend) -> None:
        stream = message.get("stream")
        if not isinstance(stream, str):
            return
        with self._lock:
            sock = self._sockets.get(stream)
            storm = self._storms.get(stream)
        if sock is None:
            return  # closed a moment ago: the laptop learns it from relay.closed
        try:
            data = base64.b64decode(message.get("data", ""), validate=True)
            if storm is not None:
                storm.laptop_data(data)
            else:
                sock.sendall(data)
        except (OSError, binascii.Error, TypeError) as exc:
            self.agent.log(f"relay {stream}: send failed: {exc!r}")
            if self._forget(stream, sock):
                _shut(sock)
                self.agent.send(RelayClosed(op=CLOSED, stream=stream))

    def close(self, message: RelayClose) -> None:
        stream = message.get("stream")
        with self._lock:
            sock = self._sockets.pop(stream, None) if isinstance(stream, str) else None
            if isinstance(stream, str):
                self._storms.pop(stream, None)
        if sock is not None:
            _shut(sock)  # wakes the reader's recv; it sees the stream gone and says nothing

    def _read(self, stream: str, sock: socket.socket) -> None:
        try:
            storm = self._storms.get(stream)
            while chunk := sock.recv(READ_CHUNK):
                if storm is not None:
                    storm.adapter_data(chunk)
                else:
                    self._to_laptop(stream, chunk)
        except OSError:
            pass  # reset by the server, or shut by relay.close: either way the stream is over
        finally:
            if self._forget(stream, sock):
                _shut(sock)
                self.agent.send(RelayClosed(op=CLOSED, stream=stream))

    def _to_laptop(self, stream: str, data: bytes) -> None:
        self.agent.send(RelayData(op=DATA, stream=stream, data=base64.b64encode(data).decode()))

    def _forget(self, stream: str, sock: socket.socket) -> bool:
        """Drop ``stream`` if it is still ``sock``; False when relay.close (or a new open) got there first."""
        with self._lock:
            if self._sockets.get(stream) is not sock:
                return False
            del self._sockets[stream]
            self._storms.pop(stream, None)
            return True


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
    sock.close()


def register(agent: Agent) -> None:
    relay = Relay(agent)
    agent.register(OPEN.name, relay.open)
    agent.register(SEND, relay.send)
    agent.register(CLOSE, relay.close)

"""debugpy's adapter, guarded (``tui.node.debugguard``): the half of the guard that runs in the
adapter process debugpy spawns (``python tether_adapter --for-server ...``).

Its listeners are guarded like the debuggee's, and the debug port is bound with SO_REUSEPORT (a
standby's adapter binds it beside the run's, listening only once the loop says go). The one
connection that hands the debuggee its endpoints waits for the debuggee to close first (debugpy
writes and closes at once, which would leave nothing alive for the debuggee's guarded accept to
check). And it keeps debugpy answering: a client that attaches the instant another detached, a
connection whose handler fails, a client that sends disconnect and closes at once (each of these
left debugpy 1.8's debug port deaf, or killed its adapter, until a restart).

Stdlib only; it runs in the user's interpreter, so it avoids syntax newer than Python 3.7. The loop
copies it with debugguard.py into the ``tether_debugguard`` package next to its state, so the
relative import finds its sibling there as here.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .debugguard import GATE_ENV, ROOT_ENV, GuardedSocket, guard, install, note

ENDPOINTS_WAIT_S = 30.0  # debugpy's own limit for the debuggee to take the endpoints
CLIENT_GONE_WAIT_S = 10.0  # how long a client's session may take to end once the client has left
# Sent for a client that left without its disconnect: the run goes on, as after VS Code's own.
DISCONNECT = (
    b'{"seq": 2147483647, "type": "request", "command": "disconnect", "arguments": {"terminateDebuggee": false}}'
)


class WaitsForReader(socket.socket):
    """The adapter's connection that hands the debuggee its endpoints: its close waits (a bounded
    while) until the debuggee has read them and closed its end, so that the debuggee's guarded
    accept still finds this socket alive, owned by this uid (debugpy writes and closes at once)."""

    _waited = False

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_RDWR and not self._waited:
            self._waited = True
            try:
                super().shutdown(socket.SHUT_WR)
                self.settimeout(ENDPOINTS_WAIT_S)
                while self.recv(4096):
                    pass
            except OSError:
                pass  # the debuggee closed it first (or refused it): nothing to wait for
        super().shutdown(how)


def debug_port_server(create_server: Callable[..., socket.socket], gate: str | None) -> Callable[..., socket.socket]:
    """debugpy's ``create_server`` for the adapter: the debug port (the one port given; the others
    are the kernel's pick) with SO_REUSEPORT, so that the loop's standby can hold the port beside
    the run's adapter (the kernel lets only this uid join), and, in a standby (``gate``), bound but
    not listening until the loop says go: no client can reach it before it is the run."""

    def create(host: Any, port: Any = 0, backlog: int = socket.SOMAXCONN, timeout: Any = None) -> socket.socket:
        if not port or not hasattr(socket, "SO_REUSEPORT"):
            return guard(create_server(host, port, backlog, timeout))
        host = host or "127.0.0.1"
        family = socket.AF_INET6 if host.count(":") > 1 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        server = guard(sock)
        assert isinstance(server, GuardedSocket)
        if timeout is not None:
            server.settimeout(timeout)
        if gate:
            server.gate, server.backlog = gate, backlog
        else:
            server.listen(backlog)
        return server

    return create


def adapter_main() -> None:
    """``python tether_adapter --for-server ...``: debugpy's adapter, guarded, from the run's debugpy."""
    root = os.environ.get(ROOT_ENV)
    if root:
        sys.path.insert(0, root)
    install(spawns_adapter=False)
    from debugpy.common import sockets

    sockets.create_server = debug_port_server(sockets.create_server, os.environ.pop(GATE_ENV, None))
    # the adapter's one client socket: the endpoints for the debuggee
    create_client: Callable[..., socket.socket] = sockets.create_client

    def waiting_client(*args: Any, **kwargs: Any) -> socket.socket:
        client = create_client(*args, **kwargs)
        return WaitsForReader(client.family, client.type, client.proto, fileno=client.detach())

    sockets.create_client = waiting_client
    import locale

    try:
        locale.setlocale(locale.LC_ALL, "")
    except Exception:  # noqa: BLE001 - what debugpy's own adapter __main__ does too
        pass
    from debugpy.adapter.__main__ import main

    debugpy_adapter: Callable[[], None] = main
    survive_quick_reattach(sockets)
    debugpy_adapter()


class ClientRequests:
    """What a client asked of the adapter so far, read from its DAP stream as it passes. (The
    agent reads DAP with tui/node/dapstorm.py; this file runs alone in the user's interpreter.)"""

    def __init__(self) -> None:
        self._buffer = b""
        self.any = False  # a whole message came: the adapter has a session for this client
        self.disconnect = False  # the client ended its session itself
        self._blind = False  # not DAP after all: nothing more to learn

    def feed(self, data: bytes) -> None:
        if self._blind:
            return
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = None
            for line in self._buffer[:head_end].split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and value.strip().isdigit():
                    length = int(value.strip())
            if length is None:
                self._blind, self._buffer = True, b""
                return
            end = head_end + 4 + length
            if len(self._buffer) < end:
                return
            body, self._buffer = self._buffer[head_end + 4 : end], self._buffer[end:]
            self.any = True
            try:
                message = json.loads(body.decode("utf-8"))
            except ValueError:
                continue
            if (
                isinstance(message, dict)
                and message.get("type") == "request"
                and message.get("command") == "disconnect"
            ):
                self.disconnect = True


def hold_client(client: socket.socket) -> socket.socket:
    """The adapter's end of a client's connection, which ends only when the adapter ends it.

    debugpy's adapter (seen in 1.8.x) dies when a client sends ``disconnect`` and closes its socket
    at once, as a quitting client does: the adapter reads the end of the stream, marks it closed,
    then fails to send the disconnect's answer, and the run goes on with nothing listening on its
    debug port. Here the adapter talks to one end of a socketpair; two threads carry the bytes to
    and from the client. When the client goes (quits, or its link drops), the adapter's end stays
    open: a client that did not end its session gets a ``disconnect`` sent in its name (the run
    goes on), and the adapter's end is closed once the adapter has closed its own (its session
    is over), or after CLIENT_GONE_WAIT_S."""
    ours, theirs = socket.socketpair()
    requests = ClientRequests()
    gone = threading.Event()  # the client has left

    def to_adapter() -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                requests.feed(data)
                ours.sendall(data)
        except OSError:
            pass
        gone.set()
        if not requests.any:
            _close(ours)  # no session to end: as if it had never come
        elif not requests.disconnect:
            try:
                ours.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(DISCONNECT), DISCONNECT))
            except OSError:
                pass

    def to_client() -> None:
        deadline = None
        try:
            while True:
                if gone.is_set() and deadline is None:
                    deadline = time.monotonic() + CLIENT_GONE_WAIT_S
                if deadline is not None and time.monotonic() > deadline:
                    break
                readable, _, _ = select.select([ours], [], [], 0.5)
                if not readable:
                    continue
                data = ours.recv(65536)
                if not data:
                    break  # the adapter closed its end: the session is over
                if not gone.is_set():
                    try:
                        client.sendall(data)
                    except OSError:
                        gone.set()  # the answers to a client that left are dropped
        except (OSError, ValueError):
            pass
        _close(ours)
        _close(client)

    for pump in (to_adapter, to_client):
        threading.Thread(target=pump, name="tether-client-" + pump.__name__, daemon=True).start()
    return theirs


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def survive_quick_reattach(sockets: Any) -> None:
    """Keep debugpy's adapter answering when a client attaches right after another detached.

    debugpy (seen in 1.8) tells the oldest session still registered which ports it listens on
    (``sessions.report_sockets``) each time a client connects; when that session's client has just
    disconnected, its channel is closed but the session is not yet unregistered, the send raises in
    the adapter's accept thread, that thread dies, and the debug port accepts TCP connections that
    nobody ever reads: every later attach waits forever for its ``initialize`` answer, until the
    run restarts. Here that report goes to the oldest session whose client is still connected and a
    failed send is dropped (the event only informs the client); and a connection whose handler
    fails is closed on its own, so the accept loop goes on whatever the handler does."""
    try:
        from debugpy.adapter import clients, sessions  # noqa: F401 - clients first: the order debugpy imports them
    except ImportError:
        return
    registered = getattr(sessions, "_sessions", None)
    lock = getattr(sessions, "_lock", None)
    if registered is not None and lock is not None and hasattr(sessions, "report_sockets"):

        def report_sockets() -> None:
            with lock:
                live = sorted(registered, key=lambda session: session.id)
            for session in live:
                client = session.client
                if not client or not getattr(client, "is_connected", False):
                    continue
                try:
                    client.report_sockets()
                except Exception:  # noqa: BLE001 - closed under us: the next session gets the news
                    continue
                return

        sessions.report_sockets = report_sockets

    serve = getattr(sockets, "serve", None)
    if serve is None:
        return

    def serve_surviving(name: str, handler: Callable[[Any], None], *args: Any, **kwargs: Any) -> Any:
        def handle(sock: Any) -> None:
            if name == "Client":  # the debug port's connections (not the debuggee's, "Server")
                sock = hold_client(sock)
            try:
                handler(sock)
            except Exception as exc:  # noqa: BLE001 - one bad connection must not end the accept loop
                note(f"the debug adapter dropped a {name} connection: {type(exc).__name__}: {exc}")
                try:
                    sock.close()
                except OSError:
                    pass

        return serve(name, handle, *args, **kwargs)

    sockets.serve = serve_surviving

"""Only the run's owner reaches its debugger: debugpy's TCP listeners accept no other user.

127.0.0.1 is not enough on a shared node: every user of the node can connect there, and debugpy's
adapter takes whatever a client sends (attach, then ``evaluate`` runs code as the run's owner). The
loop copies this file next to its state as ``tether_debugguard.py`` (on the run's PYTHONPATH) and
runs the program as ``python -m tether_debugguard --listen 127.0.0.1:PORT ... script.py`` instead of
``python -m debugpy ...``. Before debugpy's command line runs, every listening socket debugpy makes
in this process and in the adapter it spawns becomes a guarded one:
  - the adapter's client port (the debug port: ssh forwards, the agent's relay, kubectl connect there),
  - the adapter's server port (the debuggee and its subprocesses connect there),
  - the debuggee's endpoints port (the adapter tells it where those two are, at start-up).
A guarded socket accepts a connection, looks up the other end's socket in /proc/net/tcp(6) (the
kernel records its owner's uid), and closes it unread unless that owner is this uid (or root, who
can ptrace the run anyway). An end with no owner (closed already: orphaned or TIME_WAIT, inode 0)
is refused too, so a client cannot slip through by writing its requests and closing first. No
/proc/net/tcp: every connection is refused (fail closed) and the run's output says why.

debugpy's adapter writes the endpoints and closes at once, which would leave nothing alive to check
at the debuggee's accept: in the adapter, that one connection waits for the debuggee to close first.
The adapter gets the guard because ``debugpy.adapter.__file__`` is pointed at the ``tether_adapter``
folder next to this file (debugpy runs ``python <dirname(adapter.__file__)> --for-server ...``): its
``__main__`` installs the guard and then runs debugpy's own adapter, from the debugpy the run uses.
``breakpoint()`` in mode off (``tether_breakpoint``) calls ``install()`` before ``debugpy.listen``.

Stdlib only; it runs in the user's interpreter, so it avoids syntax newer than Python 3.7.
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

GUARD_MODULE = "tether_debugguard"  # this file's name where the loop copies it
ADAPTER_DIR = "tether_adapter"  # next to this file: its __main__.py runs the guarded adapter
ROOT_ENV = "TETHER_DEBUGPY_ROOT"  # the folder holding the run's debugpy package, for the adapter
# A standby run (the loop's next run, started ahead): the FIFO in the loop's 0700 folder that says
# "go", one byte to the run and one to its adapter (the loop holds it open until then).
GATE_ENV = "TETHER_STANDBY_GATE"
ADAPTER_MAIN = (
    "# Written by Tether's debug loop: debugpy's adapter with its listeners guarded (tether_debugguard).\n"
    "import os, sys\n"
    "sys.path[0] = os.path.dirname(os.path.abspath(sys.path[0]))\n"
    "import tether_debugguard\n"
    "tether_debugguard.adapter_main()\n"
)
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
ENDPOINTS_WAIT_S = 30.0  # debugpy's own limit for the debuggee to take the endpoints
CLIENT_GONE_WAIT_S = 10.0  # how long a client's session may take to end once the client has left
# Sent for a client that left without its disconnect: the run goes on, as after VS Code's own.
DISCONNECT = (
    b'{"seq": 2147483647, "type": "request", "command": "disconnect", "arguments": {"terminateDebuggee": false}}'
)


def _note(text: str) -> None:
    try:
        sys.stderr.write("tether: %s\n" % text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # the adapter closes its stdio


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # /proc prints 32-bit words host-endian
    text = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    return _plain(text), int(port, 16)


def _plain(host: str) -> str:
    """127.0.0.1 for ::ffff:127.0.0.1, so a dual-stack listener finds an IPv4 client's socket."""
    return host[7:] if host.lower().startswith("::ffff:") and "." in host else host


def peer_owner(conn: socket.socket) -> int | None:
    """The uid owning the other end of ``conn`` (a TCP connection inside this host), or None when
    that end is not a live socket of this network namespace (remote, closed, or no /proc)."""
    try:
        here = conn.getsockname()[:2]
        there = conn.getpeername()[:2]
    except OSError:
        return None
    here, there = (_plain(here[0]), here[1]), (_plain(there[0]), there[1])
    for table in _TABLES:
        try:
            with open(table) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                if _address(fields[1]) != there or _address(fields[2]) != here:
                    continue
                uid, inode = int(fields[7]), int(fields[9])
            except ValueError:
                continue
            if inode == 0:
                return None  # orphaned (its owner closed it) or TIME_WAIT: no owner to trust
            return uid
    return None


def peer_allowed(conn: socket.socket) -> bool:
    owner = peer_owner(conn)
    return owner is not None and owner in (os.getuid(), 0)


class GuardedSocket(socket.socket):
    """A listening socket whose accept() hands out only connections of this uid (or root). A
    standby's debug port is bound but listens only once the loop says go (``gate``)."""

    gate: str | None = None
    backlog = socket.SOMAXCONN

    def accept(self) -> tuple[socket.socket, Any]:
        if self.gate:
            gate, self.gate = self.gate, None
            if not wait_at_gate(gate):
                os._exit(0)  # the loop dropped this standby: its adapter goes with it
            self.listen(self.backlog)
        while True:
            conn, address = super().accept()
            if peer_allowed(conn):
                # debugpy writes a message's header and body apart: with Nagle the body waits for
                # the peer's delayed ACK, ~40 ms per answer to a request sent right after a stop
                try:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
                return conn, address
            owner = peer_owner(conn)
            conn.close()
            if not any(os.path.exists(table) for table in _TABLES):
                _note("refused a debugger connection: /proc/net/tcp is missing, so who connects cannot be checked")
            else:
                who = "a closed socket" if owner is None else "uid %d" % owner
                _note(
                    "refused a debugger connection from %s on port %s: only uid %d may attach"
                    % (who, self.getsockname()[1], os.getuid())
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


def guard(listener: socket.socket) -> socket.socket:
    """``listener`` as a GuardedSocket (the same file descriptor and timeout)."""
    if isinstance(listener, GuardedSocket) or listener.family not in (socket.AF_INET, socket.AF_INET6):
        return listener
    timeout = listener.gettimeout()
    guarded = GuardedSocket(listener.family, listener.type, listener.proto, fileno=listener.detach())
    guarded.settimeout(timeout)
    return guarded


def wait_at_gate(path: str) -> bool:
    """Until the loop says go (one byte from the FIFO ``path``); False when it never will (its end
    closed: the standby is dropped)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            try:
                return bool(os.read(fd, 1))
            except InterruptedError:
                continue
    finally:
        os.close(fd)


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


def install(spawns_adapter: bool = True) -> None:
    """Guard every listener debugpy creates from now on, here and (``spawns_adapter``) in the
    adapter it spawns. Raises ImportError without debugpy, RuntimeError when this debugpy is one
    the guard cannot hold."""
    import debugpy
    from debugpy.common import sockets

    if getattr(sockets, "_tether_guarded", False):
        return
    create_server = getattr(sockets, "create_server", None)
    if create_server is None:
        raise RuntimeError(
            "this debugpy (%s) has no debugpy.common.sockets.create_server: Tether cannot keep "
            "other users out of it; use debugpy >= 1.0" % getattr(debugpy, "__version__", "?")
        )

    def guarded_create_server(*args: Any, **kwargs: Any) -> Any:
        return guard(create_server(*args, **kwargs))

    sockets.create_server = guarded_create_server
    setattr(sockets, "_tether_guarded", True)  # noqa: B010 - a mark on debugpy's module, not ours
    if not spawns_adapter:
        return
    from debugpy import adapter

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), ADAPTER_DIR)
    if not os.path.isfile(os.path.join(folder, "__main__.py")):
        raise RuntimeError("%s is missing: the loop writes it next to tether_debugguard.py" % folder)
    adapter.__file__ = os.path.join(folder, "__init__.py")  # api.listen runs dirname(adapter.__file__)
    os.environ[ROOT_ENV] = os.path.dirname(os.path.dirname(os.path.abspath(debugpy.__file__)))


def write_adapter(folder: str) -> None:
    """The ``tether_adapter`` folder next to this file's copy in ``folder`` (the loop calls it)."""
    target = os.path.join(folder, ADAPTER_DIR)
    os.makedirs(target, mode=0o700, exist_ok=True)
    path = os.path.join(target, "__main__.py")
    try:
        with open(path) as handle:
            if handle.read() == ADAPTER_MAIN:
                return
    except OSError:
        pass
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(ADAPTER_MAIN)
    os.replace(tmp, path)


def adapter_main() -> None:
    """``python tether_adapter --for-server ...``: debugpy's adapter, guarded, from the run's debugpy."""
    root = os.environ.get(ROOT_ENV)
    if root:
        sys.path.insert(0, root)
    install(spawns_adapter=False)
    from debugpy.common import sockets

    sockets.create_server = debug_port_server(sockets.create_server, os.environ.pop(GATE_ENV, None))
    create_client = sockets.create_client  # the adapter's one client socket: the endpoints for the debuggee

    def waiting_client(*args: Any, **kwargs: Any) -> socket.socket:
        client = create_client(*args, **kwargs)
        return WaitsForReader(client.family, client.type, client.proto, fileno=client.detach())

    sockets.create_client = waiting_client
    import locale

    try:
        locale.setlocale(locale.LC_ALL, "")
    except Exception:  # noqa: BLE001 - what debugpy's own adapter __main__ does too
        pass
    from debugpy.adapter.__main__ import main as debugpy_adapter

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
                _note("the debug adapter dropped a %s connection: %s: %s" % (name, type(exc).__name__, exc))
                try:
                    sock.close()
                except OSError:
                    pass

        return serve(name, handle, *args, **kwargs)

    sockets.serve = serve_surviving


def main() -> None:
    """``python -m tether_debugguard ARGS``: ``python -m debugpy ARGS`` with the guard installed."""
    try:
        install()
    except ImportError:
        sys.stderr.write("%s: No module named debugpy\n" % sys.executable)  # the loop looks for these words
        sys.exit(1)
    except RuntimeError as exc:
        _note(str(exc))
        sys.exit(1)
    from debugpy.server import cli

    _honour_pythonbreakpoint()
    _answer_without_nagle()
    gate = os.environ.pop(GATE_ENV, None)
    if gate:
        _stand_by(cli, gate)
    cli.main()


def _stand_by(cli: Any, gate: str) -> None:
    """A standby: debugpy starts (its import, its adapter: most of a start's time), then the run
    waits for the loop's go before any of the user's code runs, so it runs the files as they are
    then. The adapter learns of the gate from the environment it starts with."""
    start_debugging = cli.start_debugging

    def start_at_go(argv_0: str) -> None:
        wait_for_client = cli.options.wait_for_client
        cli.options.wait_for_client = False
        os.environ[GATE_ENV] = gate  # for the adapter that listen() starts
        try:
            start_debugging(argv_0)
        finally:
            os.environ.pop(GATE_ENV, None)
        if not wait_at_gate(gate):
            sys.exit(0)  # dropped before it ran
        if wait_for_client:
            import debugpy

            debugpy.wait_for_client()

    cli.start_debugging = start_at_go


def _answer_without_nagle() -> None:
    """pydevd writes each answer's header and body apart on its connection to the adapter, and
    with Nagle the body waits for the adapter's delayed ACK: ~40 ms per request sent right after
    a stop (the node's stop storm asks three in a row). TCP_NODELAY on that one socket."""
    try:
        import debugpy._vendored.force_pydevd  # noqa: F401 - puts pydevd where the imports find it
        import pydevd  # type: ignore[import-not-found]
        from _pydevd_bundle import pydevd_comm  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - a debugpy laid out otherwise: only slower
        return
    start_client = pydevd_comm.start_client

    def start_client_without_nagle(host: str, port: int) -> socket.socket:
        sock: socket.socket = start_client(host, port)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return sock

    pydevd_comm.start_client = start_client_without_nagle
    pydevd.start_client = start_client_without_nagle  # pydevd calls it by the name it imported


def _honour_pythonbreakpoint() -> None:
    """Give breakpoint() back to PYTHONBREAKPOINT (the loop's ``tether_breakpoint``, which says where
    the run waits). debugpy sets ``sys.breakpointhook`` to its own when pydevd is imported, which
    ignores PYTHONBREAKPOINT: breakpoint() then did nothing visible in modes attach and wait."""
    if not os.environ.get("PYTHONBREAKPOINT"):
        return
    try:
        import debugpy._vendored.force_pydevd  # noqa: F401 - the import that installs debugpy's hook
    except ImportError:
        return
    sys.breakpointhook = sys.__breakpointhook__  # the default hook reads PYTHONBREAKPOINT at each call


if __name__ == "__main__":
    main()

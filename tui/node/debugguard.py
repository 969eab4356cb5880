"""Only the run's owner reaches its debugger: debugpy's TCP listeners accept no other user.

127.0.0.1 is not enough on a shared node: every user of the node can connect there, and debugpy's
adapter takes whatever a client sends (attach, then ``evaluate`` runs code as the run's owner). The
loop copies this file, with its adapter's half (``debugadapter.py``), into a package
``tether_debugguard`` next to its state (on the run's PYTHONPATH; see ``tui.node.pyhook``) and runs
the program as ``python -m tether_debugguard --listen 127.0.0.1:PORT ... script.py`` instead of
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

The adapter gets the guard because ``debugpy.adapter.__file__`` is pointed at the ``tether_adapter``
folder next to this file (debugpy runs ``python <dirname(adapter.__file__)> --for-server ...``): its
``__main__`` runs ``debugadapter.adapter_main``, which installs the guard and then debugpy's own
adapter, from the debugpy the run uses. ``breakpoint()`` in mode off (``tether_breakpoint``) calls
``install()`` before ``debugpy.listen``.

Stdlib only; it runs in the user's interpreter, so it avoids syntax newer than Python 3.7.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

GUARD_MODULE = "tether_debugguard"  # the package the loop copies this file into, next to its state
ADAPTER_DIR = "tether_adapter"  # next to this file: its __main__.py runs the guarded adapter
ROOT_ENV = "TETHER_DEBUGPY_ROOT"  # the folder holding the run's debugpy package, for the adapter
# A standby run (the loop's next run, started ahead): the FIFO in the loop's 0700 folder that says
# "go", one byte to the run and one to its adapter (the loop holds it open until then).
GATE_ENV = "TETHER_STANDBY_GATE"
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def note(text: str) -> None:
    """A ``tether:`` line on stderr: the run's output, which the loop shows."""
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
                note("refused a debugger connection: /proc/net/tcp is missing, so who connects cannot be checked")
            else:
                who = "a closed socket" if owner is None else "uid %d" % owner
                note(
                    "refused a debugger connection from %s on port %s: only uid %d may attach"
                    % (who, self.getsockname()[1], os.getuid())
                )


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
        raise RuntimeError("%s is missing: the loop writes it next to this file" % folder)
    adapter.__file__ = os.path.join(folder, "__init__.py")  # api.listen runs dirname(adapter.__file__)
    os.environ[ROOT_ENV] = os.path.dirname(os.path.dirname(os.path.abspath(debugpy.__file__)))


def main() -> None:
    """``python -m tether_debugguard ARGS``: ``python -m debugpy ARGS`` with the guard installed."""
    try:
        install()
    except ImportError:
        sys.stderr.write("%s: No module named debugpy\n" % sys.executable)  # the loop looks for these words
        sys.exit(1)
    except RuntimeError as exc:
        note(str(exc))
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

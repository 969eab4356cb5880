"""``breakpoint()`` for runs under Tether's debug loop (PYTHONBREAKPOINT=tether_breakpoint.breakpointhook).

The loop copies this file next to its state as ``tether_breakpoint.py`` and puts that folder on the
run's PYTHONPATH. Stdlib only; debugpy is imported when breakpoint() is called. A call:
  1. makes sure debugpy listens on the rank's port (TETHER_DEBUG_PORT, on 127.0.0.1 only, for the
     run's owner alone: ``tether_debugguard``): already so in modes attach and wait; in mode off it
     starts listening now;
  2. writes ``breakpoint.json`` next to the loop's state ({token, file, line, pid, port, at}): the loop
     shows "waiting for debugger at train.py:42" and the console notifies;
  3. waits for a debugger, then stops in the caller's frame (at the breakpoint() line).
Without debugpy, pdb listens on a Unix socket in the loop's folder (the console's debugger opens
it, through the agent); without a loop around it (no TETHER_LOOP_DIR), plain pdb in the terminal.
"""

from __future__ import annotations

import io
import json
import os
import pdb
import socket
import struct
import sys
import time
from typing import Any

HOST = "127.0.0.1"  # never 0.0.0.0
# in the loop's folder (TETHER_LOOP_DIR, 0700); the name tui.node.pdbsocket checks (this file runs
# alone inside the user's run, so it cannot import that module)
PDB_SOCKET = "pdb.sock"


def _note(text: str) -> None:
    sys.stderr.write(f"tether: {text}\n")
    sys.stderr.flush()


def _record(folder: str, info: dict[str, Any]) -> str:
    path = os.path.join(folder, "breakpoint.json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(info, handle)
    os.replace(tmp, path)
    return path


def _waiting(frame: Any, port: int, **extra: str) -> dict[str, Any]:
    """What breakpoint.json says: where the run waits, for the loop (it matches the token)."""
    return {
        "token": os.environ.get("TETHER_LOOP_RUN"),
        "file": os.path.basename(frame.f_code.co_filename),
        "path": frame.f_code.co_filename,
        "line": frame.f_lineno,
        "pid": os.getpid(),
        "port": port,
        "at": time.time(),
        **extra,
    }


def _forget(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux: SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return None
    return int(uid)


class _SocketPdb(pdb.Pdb):
    """pdb on one connection; it lets go of it when the run goes on (c) or pdb ends (q)."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._file = conn.makefile("rw", buffering=1, encoding="utf-8", errors="replace")
        super().__init__(stdin=self._file, stdout=self._file)
        self.prompt = "(Pdb) \n"  # a line of its own: the console reads lines

    def _release(self) -> None:
        # Nothing may stop the run later on a closed stream (a write there would raise inside
        # the run): its pdb breakpoints go, and what pdb still says goes nowhere.
        self.clear_all_breaks()
        self.stdin = self.stdout = io.StringIO()
        for part in (self._file, self._conn):
            try:
                part.close()
            except OSError:
                pass

    def do_EOF(self, arg: str) -> bool | None:
        # The console went away (closed, or the link dropped): the run goes on, never quits.
        return self.do_continue(arg)

    def set_continue(self) -> None:
        super().set_continue()
        self._release()

    def set_quit(self) -> None:
        super().set_quit()
        self._release()


def _pdb_on_socket(folder: str, frame: Any) -> None:
    """Where the run's python has no debugpy: pdb over a Unix socket in the loop's folder (0700,
    the socket 0600), never a TCP port; the agent carries it to the console. Only the run's owner
    (or root) gets in: the folder's mode, and the peer's uid checked at accept."""
    path = os.path.join(folder, PDB_SOCKET)
    try:
        os.unlink(path)
    except OSError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(old)
    server.listen(1)
    record = _record(folder, _waiting(frame, 0, pdb=path))
    _note(f"pdb waits at {os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} (b in the console)")
    try:
        while True:
            conn, _ = server.accept()
            if peer_uid(conn) in (os.getuid(), 0):
                break
            conn.close()
    finally:
        server.close()
        _forget(path)
        _forget(record)
    _SocketPdb(conn).set_trace(frame)


def breakpointhook(*args: object, **kwargs: object) -> None:
    frame = sys._getframe(1)
    folder, port = os.environ.get("TETHER_LOOP_DIR"), os.environ.get("TETHER_DEBUG_PORT")
    if not folder or not port:
        import pdb

        return pdb.Pdb().set_trace(frame)
    try:
        import debugpy
    except ImportError:
        _note(f"breakpoint(): debugpy is not installed for {sys.executable}; pdb on the console's debugger")
        return _pdb_on_socket(folder, frame)
    if os.environ.get("TETHER_DEBUG_MODE") == "off" and not getattr(breakpointhook, "_listening", False):
        try:  # only the run's owner may reach it (tether_debugguard, next to this file)
            import tether_debugguard

            tether_debugguard.install()
        except (ImportError, RuntimeError) as exc:
            _note(f"breakpoint(): cannot keep other users of the node out of debugpy ({exc}); falling back to pdb")
            import pdb

            return pdb.Pdb().set_trace(frame)
        try:
            debugpy.listen((HOST, int(port)))
        except RuntimeError:  # already listening (a second call)
            pass
        breakpointhook._listening = True  # type: ignore[attr-defined]
    where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    path = _record(folder, _waiting(frame, int(port)))
    try:
        if not debugpy.is_client_connected():
            _note(f"waiting for debugger at {where} (port {port} on {HOST}; attach from Tether or VS Code)")
            debugpy.wait_for_client()
    finally:
        _forget(path)
    try:  # stop in the caller's frame, not in this hook (what debugpy.breakpoint() does from user code)
        from debugpy.server import api

        api._settrace(suspend=True, trace_only_current_thread=True, patch_multiprocessing=False, stop_at_frame=frame)
    except Exception:  # noqa: BLE001 - a debugpy without that internal: stop here instead
        debugpy.breakpoint()

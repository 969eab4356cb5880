"""The debug loop's control socket: ``control.sock`` in the loop's directory (0600), one command line
in, one JSON line out (``protocol_loop.LoopReply``); a peer of another uid (not root) is closed
unread. Opening it claims the directory: a second loop there is refused.

Stdlib only (shipped to the node); Linux only (SO_PEERCRED).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from tui.node import loopstate as ls
from tui.node.protocol_loop import LoopReply, LoopState

CLIENT_TIMEOUT_S = 2.0  # a client sends its line at once; a stuck one costs at most this
MAX_COMMAND_BYTES = 1024


class ControlSocket:
    def __init__(self, server: socket.socket, path: Path, answer: Callable[[str], LoopReply]) -> None:
        self.server = server
        self.path = path
        self.answer = answer

    @classmethod
    def claim(
        cls,
        directory: Path,
        previous: LoopState | None,
        sel: selectors.BaseSelector,
        answer: Callable[[str], LoopReply],
    ) -> ControlSocket:
        """Listen in ``directory``, answering each command with ``answer``, served from ``sel``.
        Raises LoopError when a loop still answers there, or the ``previous`` state's still runs."""
        path = directory / ls.CONTROL_NAME
        try:
            owner = ls.send_control(directory, "status", timeout=2.0).get("loop_pid")
        except ls.LoopError:  # nothing answers: no socket, or a stale one
            owner = previous.get("loop_pid") if previous and previous.get("loop_alive") else None
        if owner is not None:
            raise ls.LoopError(
                f"another debug loop (pid {owner}) runs in {directory}: leave it first "
                "(Ctrl-C twice in its pane, or quit from Tether)"
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            with ls.unix_address(path) as address:
                server.bind(address)
        finally:
            os.umask(old_umask)
        server.listen(8)
        server.setblocking(False)
        control = cls(server, path, answer)
        sel.register(server, selectors.EVENT_READ, lambda _key: control.accept())
        return control

    def accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid not in (os.getuid(), 0):
            conn.close()
            return
        conn.settimeout(CLIENT_TIMEOUT_S)
        try:
            data = b""
            while b"\n" not in data and len(data) < MAX_COMMAND_BYTES:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
            reply = self.answer(data.split(b"\n")[0].decode(errors="replace").strip())
            conn.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.server.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

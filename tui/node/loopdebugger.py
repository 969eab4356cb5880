"""What the debug loop sees of its run's debugger, from outside: whether debugpy listens on the
debug port and who is attached (the TCP table: our uid, local port = the debug port), where
breakpoint() waits (``breakpoint.json``, written by tui.node.hook), whether the port is free before
a start, and whether the run's python has debugpy at all (and the command that installs it).

Stdlib only (shipped to the node); Linux only (/proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tui.node import loopstate as ls
from tui.node.loopcmd import HOST
from tui.node.pyenv import PYTHON_ENV_PROBE, debugpy_install_fix
from tui.node.standby import token_entry

BREAKPOINT_NAME = "breakpoint.json"
DEBUGGER_GONE_S = 2.0  # the debug port unheard this long, the run alive: its debugger is gone
PORT_WAIT_S = 3.0


@dataclass
class DebuggerSeen:
    """What the probes saw of one run's debugger."""

    up: float | None = None  # monotonic time debugpy was first seen listening (mode off: the start)
    listening: bool = False
    unheard_since: float | None = None  # it listened, and since then no longer does
    gone: bool = False  # ... for DEBUGGER_GONE_S with the run alive: the adapter is gone
    clients: int = 0
    ever_attached: bool = False
    waiting_at: str | None = None  # "train.py:42": breakpoint() waits for a debugger there
    pdb: str = ""  # the Unix socket where pdb waits instead (the run's python has no debugpy)


class DebuggerProbe:
    """The debug port and the breakpoint file of one loop."""

    def __init__(self, directory: Path, port: int, say: Callable[[str], None]) -> None:
        self.dir = directory
        self.port = port
        self.say = say
        self.breakpoint_seen: tuple[int, int] | None = None
        self.port_wait: float | None = None

    def read_breakpoint(self, seen: DebuggerSeen, token: str) -> None:
        """breakpoint() in the run (tui.node.hook) says where it waits for a debugger."""
        path = self.dir / BREAKPOINT_NAME
        try:
            stat = path.stat()
        except FileNotFoundError:
            if seen.waiting_at and not seen.clients:
                seen.waiting_at = None
            self.breakpoint_seen = None
            return
        key = (stat.st_mtime_ns, stat.st_size)
        if key == self.breakpoint_seen:
            return
        self.breakpoint_seen = key
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(info, dict) and info.get("token") == token:
            seen.waiting_at = f"{info.get('file')}:{info.get('line')}"
            seen.pdb = str(info.get("pdb") or "")
            if seen.pdb:
                self.say(f"pdb waits at {seen.waiting_at} (breakpoint(); no debugpy): press b in the console")
            else:
                self.say(f"waiting for debugger at {seen.waiting_at} (breakpoint(); port {self.port} on {HOST})")

    def hear(self, seen: DebuggerSeen, token: str, now: float) -> set[int]:
        """Listening yet? A client attached? The inodes of the port's listening sockets (none: not
        listening)."""
        self.read_breakpoint(seen, token)
        mine = [s for s in ls.tcp_sockets() if s.port == self.port and s.uid == os.getuid()]
        listening = {s.inode for s in mine if s.state == "LISTEN"}
        seen.clients = sum(s.state == "ESTABLISHED" for s in mine)
        if listening and seen.up is None:
            seen.up = now
        if listening:
            seen.listening = True
        if listening or not seen.listening:
            seen.unheard_since = None
        elif seen.unheard_since is None:
            seen.unheard_since = now
        # A run that ends closes its debugger first: only one still alive a while later (this is
        # asked only while it is) lost it.
        elif not seen.gone and now - seen.unheard_since >= DEBUGGER_GONE_S:
            seen.gone = True
            self.say(
                f"the run's debugger stopped listening on port {self.port} (debugpy's adapter is gone); "
                "the run goes on without one; a restart brings it back"
            )
        return listening

    def port_ready(self, now: float, last_token: str | None, debugging: bool = True) -> bool:
        """Before a start: let the last run's debugpy adapter free the port (it exits by itself);
        after PORT_WAIT_S, one of that run's (``last_token``) is killed, anyone else's is said.
        Not ``debugging`` (mode off): ready at once."""
        port = self.port
        held = {s.inode for s in ls.tcp_sockets() if s.port == port and s.state == "LISTEN"}
        if not debugging or not held:
            self.port_wait = None
            return True
        if self.port_wait is None:
            self.port_wait = now + PORT_WAIT_S
        if now < self.port_wait:
            return False
        self.port_wait = None
        owners = sorted(ls.socket_owners(held))
        stale = [pid for pid in owners if last_token and ls.environ_has(pid, token_entry(last_token))]
        for pid in stale:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if stale:
            self.say(f"killed {stale}, left by the last run, that still held port {port}")
        else:
            who = f"pids {owners}" if owners else "a process of another user"
            self.say(f"port {port} on {HOST} is taken by {who}: debugpy cannot listen there; choose another port")
        return True


def adapters_holding(inodes: set[int], token: str) -> list[int]:
    """The run's processes (``token``) that hold one of the listening sockets ``inodes``: debugpy's adapter."""
    entry = token_entry(token)
    return [pid for pid in ls.socket_owners(inodes) if ls.environ_has(pid, entry)]


class DebugpyCheck:
    """Whether the run's python has debugpy, asked of it once; where it has none, whether Tether's
    copy is there instead (``folder``), and the command that installs it."""

    def __init__(self, folder: Path | None, say: Callable[[str], None]) -> None:
        self.folder = folder
        self.say = say
        self.use_folder: bool | None = None  # None: not decided yet (Tether's copy not there yet)
        self.missing = False
        self._fix: str | None = None

    def folder_needed(self, prefix: tuple[str, ...], python: str, env: Mapping[str, str], debugging: bool) -> bool:
        """Whether the run needs Tether's copy of debugpy (once decided, whatever the mode; not
        ``debugging``, mode off, asks nothing). While it has none and Tether's copy is not on the
        node yet, ``missing`` holds the start (a debuggee started anyway would only crash on "No
        module named debugpy")."""
        if self.use_folder is not None:
            return self.use_folder
        if not debugging:
            return False
        probe = [*prefix, python, "-c", "import debugpy"]
        try:
            found = (
                subprocess.run(
                    probe,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=60,
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            found = False
        folder = self.folder
        if found:
            self.use_folder, self.missing = False, False
        elif folder is not None and (folder / "debugpy" / "__init__.py").is_file():
            self.use_folder, self.missing = True, False
            self.say(f"{python} has no debugpy: using Tether's copy in {folder}")
        else:
            self.missing = True  # undecided: the next start asks again
        return bool(self.use_folder)

    def fix(self, prefix: tuple[str, ...], python: str) -> str:
        """The command that installs debugpy for the run's python and works there (a venv, PEP 668's
        externally managed pythons, no pip), asked of that python once."""
        if self._fix is None:
            try:
                kind = subprocess.run(
                    [*prefix, python, "-c", PYTHON_ENV_PROBE],
                    text=True,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=60,
                ).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                kind = ""
            self._fix = debugpy_install_fix(python, kind)
        return self._fix

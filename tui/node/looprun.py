"""One start of the debug loop's run: its process group, from start to every process gone.

The run is started in a session of its own (session id = process group id = its pid), its stdout
and stderr one pipe that the loop reads. Stopping it is a state machine: ALIVE, then TERM (SIGTERM
to the whole session, to members that moved to another group, and to debugpy's adapter, which left
the session but carries the run's token), then KILL (SIGKILL, once ``grace`` has passed), done when
the run has exited and none of them is left. A run that ends by itself is stopped the same way, for
what it left in its session (DataLoader workers). Out of reach: processes that made themselves a
new session (setsid, daemons).

Stdlib only (shipped to the node); Linux only (/proc).
"""

from __future__ import annotations

import enum
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tui.node import loopstate as ls
from tui.node.loopdebugger import DebuggerSeen
from tui.node.protocol_loop import LoopState
from tui.node.standby import Standby, kill_now, processes_with, token_entry

KILL_WAIT_S = 5.0  # after SIGKILL: members still there this long later are said to be stuck


class Phase(enum.Enum):
    ALIVE = "alive"
    TERM = "term"  # SIGTERM sent
    KILL = "kill"  # SIGKILL sent


class Settled(enum.Enum):
    """Where stopping a run that is no longer ALIVE stands."""

    GONE = "gone"  # exited, and nothing of its session is left
    WAITING = "waiting"
    STUCK = "stuck"  # members survive SIGKILL (said once)


def signal_name(code: int) -> str | None:
    """SIGKILL for returncode -9; None for a normal exit."""
    if code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def describe_exit(code: int) -> str:
    return f"was killed by {signal_name(code)}" if code < 0 else f"exited with code {code}"


def pdeathsig() -> Callable[[], None] | None:
    """A preexec function asking the kernel to SIGKILL the child when the loop dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError, ImportError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class LastRun:
    """How the last run ended (or failed to start), for the state file while no run goes on."""

    pid: int | None = None  # also its session's id
    token: str | None = None
    exit_code: int | None = None
    exit_reason: str | None = None
    started_at: float | None = None
    ended_at: float | None = None

    def state_fields(self) -> LoopState:
        return {
            "pid": self.pid,
            "pgid": self.pid,
            "token": self.token,
            "exit_code": self.exit_code,
            "exit_signal": None if self.exit_code is None else signal_name(self.exit_code),
            "exit_reason": self.exit_reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "debugger_clients": 0,
        }


@dataclass
class Run:
    """One start of the debuggee."""

    popen: subprocess.Popen[bytes]
    fd: int  # read end of its output pipe; -1 once closed
    token: str
    started: float  # monotonic
    started_at: float  # wall clock
    phase: Phase = Phase.ALIVE
    kill_at: float = 0.0
    stop_reason: str | None = None  # set when the loop stopped it
    exit_code: int | None = None
    ended: float = 0.0
    ended_at: float = 0.0
    adapters: list[int] = field(default_factory=list)  # debugpy's adapter: it holds the port
    warned_stuck: bool = False
    gate: Standby | None = None  # the standby it was, until it and its adapter passed their gate
    debugger: DebuggerSeen = field(default_factory=DebuggerSeen)

    @classmethod
    def start(
        cls, argv: tuple[str, ...], env: Mapping[str, str], token: str, preexec: Callable[[], None] | None
    ) -> Run:
        """``argv`` in a new session, its output on a pipe of ours. Raises OSError when it cannot start."""
        read_fd, write_fd = os.pipe()
        try:
            popen = subprocess.Popen(
                argv,
                stdout=write_fd,
                stderr=write_fd,
                env=env,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        return cls(popen, read_fd, token, time.monotonic(), time.time())

    @classmethod
    def take_over(cls, standby: Standby) -> Run:
        """The standby, told to go: the run from now on."""
        standby.go()
        return cls(standby.popen, standby.fd, standby.token, time.monotonic(), time.time(), gate=standby)

    def state_fields(self) -> LoopState:
        """What the state file says of it while it goes on."""
        return {
            "pid": self.popen.pid,
            "pgid": self.popen.pid,
            "token": self.token,
            "started_at": self.started_at,
            "ended_at": None,
            "exit_code": None,
            "exit_signal": None,
            "exit_reason": None,
            "debugger_clients": self.debugger.clients,
        }

    # ---------------------------------------------------------------- output
    def read_output(self, sink: Callable[[bytes], None], sel: selectors.BaseSelector) -> int:
        """Hand what the run wrote to ``sink``, at most 1 MiB a call (so signals are not starved);
        bytes read. At the end of the pipe it is closed and taken off ``sel``."""
        total = 0
        for _ in range(16):
            if self.fd < 0:
                break
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.close_output(sel)
                break
            sink(data)
            total += len(data)
        return total

    def close_output(self, sel: selectors.BaseSelector) -> None:
        if self.fd >= 0:
            sel.unregister(self.fd)
            os.close(self.fd)
            self.fd = -1

    # ---------------------------------------------------------------- the process group
    def members(self) -> list[int]:
        """The run's live processes: its session, and debugpy's adapter (which left the session)."""
        entry = token_entry(self.token)
        adapters = [pid for pid in self.adapters if ls.environ_has(pid, entry) and pid in ls.live_pids([pid])]
        return ls.session_members(self.popen.pid) + adapters

    def signal(self, sig: int) -> None:
        sid = self.popen.pid  # start_new_session: session id = process group id = the debuggee's pid
        for kill, target in [(os.killpg, sid)] + [(os.kill, pid) for pid in self.members()]:
            try:
                kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, reason: str, grace: float) -> None:
        """SIGTERM to all of it (SIGKILL follows after ``grace`` s: ``settle``)."""
        if self.stop_reason is None and self.exit_code is None:
            self.stop_reason = reason
        if self.phase is Phase.ALIVE:
            # Its adapter, also where the listening poll has not seen it yet (a run just handed
            # over from the standby): it carries the run's token, and must not outlive the run.
            self.adapters = sorted(set(self.adapters) | set(processes_with(token_entry(self.token))))
            self.signal(signal.SIGTERM)
            self.phase, self.kill_at = Phase.TERM, time.monotonic() + grace

    def poll_exit(self, now: float, grace: float) -> None:
        """Whether the debuggee exited; if it did by itself, what it left in its session is stopped."""
        if self.exit_code is not None:
            return
        code = self.popen.poll()
        if code is not None:
            self.exit_code, self.ended, self.ended_at = code, now, time.time()
            if self.phase is Phase.ALIVE:
                self.signal(signal.SIGTERM)
                self.phase, self.kill_at = Phase.TERM, now + grace

    def settle(self, now: float) -> tuple[Settled, list[int]]:
        """Once it is being stopped: gone yet? If not, SIGKILL when its grace is over. With the
        members still there."""
        members = self.members()
        if self.exit_code is not None and not members:
            return Settled.GONE, members
        if self.phase is Phase.TERM and now >= self.kill_at:
            self.signal(signal.SIGKILL)
            self.phase, self.kill_at = Phase.KILL, now + KILL_WAIT_S
        elif self.phase is Phase.KILL and now >= self.kill_at and not self.warned_stuck:
            self.warned_stuck = True
            return Settled.STUCK, members
        return Settled.WAITING, members


def stop_leftovers(old: LoopState | None, grace: float, say: Callable[[str], None]) -> None:
    """Stop what a killed loop left (its state ``old``): processes of its last run's session,
    recognised by token, and its standby's (the kernel ended the standby with the loop; its adapter
    may stay)."""
    standby_token = old.get("standby_token") if old else None
    if isinstance(standby_token, str):
        kill_now(processes_with(token_entry(standby_token)))
    pgid, token = (old.get("pgid"), old.get("token")) if old else (None, None)
    if not isinstance(pgid, int) or not isinstance(token, str):
        return
    entry = token_entry(token)
    leftovers = [pid for pid in ls.session_members(pgid) if ls.environ_has(pid, entry)]
    if not leftovers:
        return
    say(f"stopping {len(leftovers)} process(es) left by the previous loop's run: {leftovers}")
    deadline = time.monotonic() + grace
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in leftovers:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        while time.monotonic() < deadline:
            leftovers = [pid for pid in leftovers if pid in ls.session_members(pgid)]
            if not leftovers:
                return
            time.sleep(0.05)
        deadline = time.monotonic() + 2.0

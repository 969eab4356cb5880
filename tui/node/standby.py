"""The debug loop's next run, started ahead of time, so that a restart takes milliseconds.

Most of a start under debugpy is debugpy's own (its import, and its adapter's start in a second
interpreter: ~0.4 s, against ~10 ms for Python itself). The loop starts the launch's command once
more while the run goes on, with ``TETHER_STANDBY_GATE`` naming a FIFO in its 0700 folder
(``tui.node.debugguard``): debugpy starts, its adapter binds the debug port beside the run's
adapter (SO_REUSEPORT, which the kernel grants to this uid alone) without listening, and the
standby waits before any of the user's code runs. ``go`` hands it the run: one byte to it and one
to its adapter, which listens from then on. No client reaches it before that, and the files it
runs are the ones on disk at ``go``. It is dropped when the command or its environment changes
(and never made where ``[debug] standby = false``).

Stdlib only (shipped to the node).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import signal
import subprocess
import termios
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tui.node import loopstate as ls
from tui.node.debugguard import GATE_ENV

TOKEN_ENV = "TETHER_LOOP_RUN"  # what marks a run's processes (its adapter too, which leaves its session)


def _without_token(env: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key != TOKEN_ENV}


def token_entry(token: str) -> str:
    """The environment entry that marks a run's processes: ``TETHER_LOOP_RUN=<token>``."""
    return f"{TOKEN_ENV}={token}"


def processes_with(entry: str) -> list[int]:
    """Every process of this user whose environment holds ``entry`` (a ``token_entry``)."""
    pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    return [pid for pid in pids if pid != os.getpid() and ls.environ_has(pid, entry)]


def kill_now(pids: set[int] | list[int]) -> None:
    """SIGKILL each of ``pids`` that is still there."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Standby:
    popen: subprocess.Popen[bytes]
    fd: int  # the read end of its output pipe: the run's once it goes
    token: str
    argv: tuple[str, ...]
    env: dict[str, str]  # as started, without the token
    gate: Path
    gate_fd: int  # held open until go (or drop), so the standby's reads wait for it

    @classmethod
    def start(
        cls,
        argv: tuple[str, ...],
        env: Mapping[str, str],
        folder: Path,
        preexec: Callable[[], object] | None,
    ) -> Standby:
        """``argv`` with ``env`` (its TETHER_LOOP_RUN the standby's token), waiting at a gate in
        ``folder``. Raises OSError when it cannot be started."""
        token = env[TOKEN_ENV]
        gate = folder / f"standby-{token}.fifo"
        os.mkfifo(gate, 0o600)
        gate_fd = os.open(gate, os.O_RDWR)  # O_RDWR: never blocks, and keeps the FIFO's bytes
        read_fd, write_fd = os.pipe()
        try:
            popen = subprocess.Popen(
                argv,
                stdout=write_fd,
                stderr=write_fd,
                env={**env, GATE_ENV: str(gate)},
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError:
            for fd in (read_fd, write_fd, gate_fd):
                os.close(fd)
            gate.unlink(missing_ok=True)
            raise
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return cls(popen, read_fd, token, tuple(argv), _without_token(env), gate, gate_fd)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def fits(self, argv: tuple[str, ...], env: Mapping[str, str]) -> bool:
        """It would run what a start now would: the same command in the same environment."""
        return self.argv == tuple(argv) and self.env == _without_token(env)

    def go(self) -> None:
        """The run from now on: the user's code starts, and its adapter listens (each as soon as it
        is at its gate: one still starting gets there later). The gate stays until ``taken``."""
        os.write(self.gate_fd, b"gg")  # one byte for the standby, one for its adapter

    def taken(self) -> bool:
        """Both bytes read: the gate is closed and removed (before, closing it would lose them)."""
        if self.gate_fd < 0:
            return True
        waiting = array.array("i", [0])
        try:
            fcntl.ioctl(self.gate_fd, termios.FIONREAD, waiting)
        except OSError:
            waiting[0] = 0
        if waiting[0]:
            return False
        self._close_gate()
        return True

    def close_gate(self) -> None:
        """The run it became has ended: its gate goes with it."""
        self._close_gate()

    def drop(self) -> None:
        """End it and its adapter (closing the gate alone makes both leave, this does not wait)."""
        self._close_gate()
        kill_now(set(ls.session_members(self.popen.pid)) | set(processes_with(token_entry(self.token))))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _close_gate(self) -> None:
        if self.gate_fd >= 0:
            os.close(self.gate_fd)
            self.gate_fd = -1
        self.gate.unlink(missing_ok=True)

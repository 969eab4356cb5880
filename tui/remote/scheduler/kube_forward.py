"""``kubectl port-forward`` kept alive: restarted with backoff whenever it drops.

People script this reconnect loop by hand today; the debug port and [ports] forwards of a pod
workspace ride on it.
"""

from __future__ import annotations

import asyncio
import enum
import os
import re
import shlex
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tui.errors import TetherError
from tui.events import EventSink, ignore_events


class KubeError(TetherError):
    """kubectl/oc failed or the pod cannot be used."""


# kubectl prints "Forwarding from 127.0.0.1:PORT -> REMOTE" once it listens, "Handling connection
# for PORT" per connection, and "E.... portforward.go:NNN] lost connection to pod" when the stream
# to the pod breaks (it then exits; some versions stay alive but forward nothing).
_FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")
LOST_CONNECTION = "lost connection to pod"
DEFAULT_BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


def parse_forwarding(line: str) -> tuple[int, int] | None:
    """(local, remote) from kubectl's "Forwarding from 127.0.0.1:L -> R" line, else None."""
    match = _FORWARDING.match(line.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


class ForwardState(enum.Enum):
    STARTING = "starting"
    UP = "up"
    RESTARTING = "restarting"
    CLOSED = "closed"


@dataclass(frozen=True)
class ForwardChanged:
    """A port-forward changed state; ``detail`` is kubectl's last complaint, if any."""

    state: ForwardState
    local_port: int
    remote_port: int
    detail: str = ""
    restarts: int = 0


class PortForward:
    """``kubectl port-forward`` as a supervised subprocess: restarted (with backoff) whenever it ends.

    Listens on 127.0.0.1 only. With ``local_port`` 0 kubectl picks a port; the first one it reports
    is kept for every restart, so whatever connects (a debugger) finds it again.
    """

    def __init__(
        self,
        base_argv: list[str],
        target: str,
        local_port: int,
        remote_port: int,
        *,
        env: Mapping[str, str] | None = None,
        backoff: tuple[float, ...] = DEFAULT_BACKOFF,
        stable_after: float = 10.0,
        events: EventSink = ignore_events,
    ) -> None:
        self._base_argv = list(base_argv)
        self.target = target
        self.local_port = local_port
        self.remote_port = remote_port
        self._env = dict(env) if env is not None else None
        self._backoff = backoff
        self._stable_after = stable_after
        self._events = events
        self.state = ForwardState.STARTING
        self.restarts = 0
        self.last_error = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._wake = asyncio.Event()
        self._closing = False

    @property
    def pid(self) -> int | None:
        """The running kubectl's pid, None between restarts."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def argv(self) -> list[str]:
        return [
            *self._base_argv,
            "port-forward",
            "--address",
            "127.0.0.1",
            self.target,
            f"{self.local_port}:{self.remote_port}",
        ]

    async def start(self, timeout: float = 30.0) -> int:
        """Start forwarding; the local port once kubectl listens. Closes and raises if it never does."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise())
        if await self.wait_up(timeout):
            return self.local_port
        detail = self.last_error or "it printed nothing"
        await self.close()
        raise KubeError(
            f"port-forward to {self.target}:{self.remote_port} did not start in {timeout:.0f}s: {detail}",
            fix=f"try `{shlex.join(self.argv())}` in a terminal; the pod must be Running",
        )

    async def wait_up(self, timeout: float | None = None) -> bool:
        """True once forwarding (again); False on timeout or when closed."""
        if self.state is ForwardState.CLOSED:
            return False
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return self.state is ForwardState.UP

    async def close(self) -> None:
        """Stop restarting and end kubectl by its pid."""
        self._closing = True
        self._wake.set()
        await self._stop_process()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except asyncio.TimeoutError:
                self._task.cancel()
            self._task = None
        self._set_state(ForwardState.CLOSED)
        self._up.set()  # wake waiters; wait_up reports False for CLOSED

    def _set_state(self, state: ForwardState) -> None:
        if state is self.state and state is not ForwardState.RESTARTING:
            return
        self.state = state
        self._events(ForwardChanged(state, self.local_port, self.remote_port, self.last_error, self.restarts))

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            started = time.monotonic()
            was_up = await self._run_once()
            if self._closing:
                break
            if was_up and time.monotonic() - started >= self._stable_after:
                attempt = 0  # it had worked for a while: this drop starts a fresh backoff
            delay = self._backoff[min(attempt, len(self._backoff) - 1)]
            attempt += 1
            self.restarts += 1
            self._set_state(ForwardState.RESTARTING)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _run_once(self) -> bool:
        """Run kubectl until it exits; True if it was forwarding at some point."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
            )
        except FileNotFoundError:
            self.last_error = f"{self._base_argv[0]} was not found on this computer"
            return False
        self._proc = proc
        if self._closing:
            await self._stop_process()
            return False
        was_up = False
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                break
            was_up = self._on_line(raw.decode(errors="replace").rstrip()) or was_up
        await proc.wait()
        self._proc = None
        self._up.clear()
        return was_up

    def _on_line(self, line: str) -> bool:
        """Track kubectl's output; True when the line says it now forwards."""
        forwarding = parse_forwarding(line)
        if forwarding is not None:
            self.local_port = forwarding[0]  # kubectl's pick when 0 was asked; kept for restarts
            self.last_error = ""
            self._set_state(ForwardState.UP)
            self._up.set()
            return True
        if line.startswith(("Forwarding from", "Handling connection for")) or not line:
            return False
        self.last_error = line
        if LOST_CONNECTION in line:
            # Some kubectl versions log this and stay alive forwarding nothing: end it so it restarts.
            self._signal(signal.SIGTERM)
        return False

    def _signal(self, sig: int) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass

    async def _stop_process(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except asyncio.TimeoutError:
            self._signal(signal.SIGKILL)
            await proc.wait()

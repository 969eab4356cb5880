"""Helpers for the node-panel tests on the testbed: a run that ticks, event waits, node checks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from testbed import Testbed
from workspaces import write_workspace

from tui.events import GpuStats, LayoutChanged, LinkChanged, LinkState, OutputLines, RunProcesses
from tui.session import Session

ROOT = Path(__file__).resolve().parent.parent
STANDIN_NVIDIA_SMI = ROOT / "tests" / "fixtures" / "nvidia-smi-standin" / "nvidia-smi"

# The run: says its pid once, then a numbered line every 0.2 s.
TICK = """import itertools, os, time
print('run pid', os.getpid(), flush=True)
for i in itertools.count():
    print('tick', i, flush=True)
    time.sleep(0.2)
"""

E = TypeVar("E")


def tick_workspace(
    folder: Path, testbed: Testbed, *, run_env: str = "", layout: str = "", interval: float = 0.5
) -> Path:
    """A workspace whose run is tick.py: written locally, sync takes it to the node's remote root."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tick.py").write_text(TICK)
    extra = ['command = "python3 tick.py"']
    if run_env:
        extra.append(f"env = [{run_env}]")
    if layout:
        extra += ["[layout]", layout]
    extra += ["[ui]", f"stats_interval = {interval}"]
    return write_workspace(folder, testbed, extra="\n".join(extra))


def install_standin_nvidia_smi(testbed: Testbed) -> str:
    """The stand-in nvidia-smi in ~/standin-bin on the node; returns the [run] env line for PATH."""
    testbed.node_run_as_user(
        "mkdir -p ~/standin-bin && cat > ~/standin-bin/nvidia-smi && chmod +x ~/standin-bin/nvidia-smi",
        input=STANDIN_NVIDIA_SMI.read_text(),
        check=True,
    )
    return '"export PATH=$HOME/standin-bin:$PATH"'


def clean_node(testbed: Testbed) -> None:
    """Whatever a failed test left on the node: the test user's tmux server, runs and agents."""
    testbed.node_run_as_user(
        "tmux kill-server 2>/dev/null; pkill -KILL -u $(id -u) -f '[t]ick.py|[t]ui.node' ; rm -rf ~/.cache/tether/runs; true"
    )


def tmux_on_node(testbed: Testbed, args: str) -> str:
    return testbed.node_run_as_user(f"tmux {args}").stdout


def pids_on_node(testbed: Testbed, pattern: str) -> list[str]:
    return testbed.node_run_as_user(f"pgrep -u $(id -u) -f {pattern!r} || true").stdout.split()


class Events(list):
    """Everything a session reported, with waits that poll under a deadline."""

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self if isinstance(e, kind)]

    def output(self) -> list[str]:
        """Output lines as a console would show them (a history event replaces what came before)."""
        lines: list[str] = []
        for event in self.of(OutputLines):
            lines = list(event.lines) if event.history else lines + list(event.lines)
        return lines

    def ticks(self) -> list[int]:
        return [int(line.split()[1]) for line in self.output() if line.startswith("tick ")]

    def layout(self) -> LayoutChanged | None:
        found = self.of(LayoutChanged)
        return found[-1] if found else None

    def run_pids(self) -> list[int]:
        found = self.of(RunProcesses)
        return [p.pid for p in found[-1].processes] if found else []

    def settled_run_pids(self) -> list[int]:
        """The run's processes as reported after its first tick line. By then debugpy's adapter is
        up (debugpy.listen returns only once the adapter has connected back), so the set is whole;
        a report from before can miss the adapter."""
        ticked, found = False, None
        for event in self:
            if isinstance(event, OutputLines) and any(line.startswith("tick ") for line in event.lines):
                ticked = True
            elif ticked and isinstance(event, RunProcesses):
                found = event
        return [p.pid for p in found.processes] if found else []

    def gpus(self) -> GpuStats | None:
        found = self.of(GpuStats)
        return found[-1] if found else None

    async def until(self, condition: Callable[[], object], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout} s: {condition}; last events: {self[-5:]}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def console(session: Session, events: Events):
    """The session running as a console would run it, until the layout and output are there."""
    async with running_session(session, events, lambda: events.layout() is not None and events.ticks()) as task:
        yield task


@contextlib.asynccontextmanager
async def running_session(session: Session, events: Events, ready: Callable[[], object], timeout: float = 30.0):
    """The session running as a console runs it, from when ``ready()`` holds until the block ends
    (then detached, so the run goes on for the next test step to check)."""
    task = asyncio.create_task(session.run(events.append))
    try:
        await events.until(lambda: task.done() or ready(), timeout)
        if task.done():
            task.result()
        yield task
    finally:
        if not task.done():
            await session.detach()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def link_up(events: Events) -> bool:
    states = events.of(LinkChanged)
    return bool(states) and states[-1].state is LinkState.UP

"""Helpers for the debug-loop tests on the testbed: a workspace whose run is a given script, the
run state from a session's events, the node's listening sockets."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from node_helpers import Events, running_session
from testbed import Testbed
from workspaces import write_workspace

from tui.events import RankState, RankStatus, RunState
from tui.session import Session

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEBUGGEE = FIXTURES / "loop_node_debuggee.py"
BREAK_LINE = next(n for n, text in enumerate(DEBUGGEE.read_text().splitlines(), 1) if "# BREAK HERE" in text)


def script_workspace(
    folder: Path,
    testbed: Testbed,
    script: str,
    name: str = "dbg.py",
    *,
    command: str = "",
    extra: str = "",
    **kwargs: str,
) -> Path:
    """A workspace whose run is ``script``: written locally, sync takes it to ~/work/tbws/NAME on the node."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(script)
    lines = [f'command = "{command or "python3 " + name}"', extra, "[ui]", "stats_interval = 0.5"]
    return write_workspace(folder, testbed, extra="\n".join(lines), **kwargs)


def node_home(testbed: Testbed) -> str:
    return testbed.node_run_as_user("echo $HOME", check=True).stdout.strip()


def ranks(events: Events) -> tuple[RankState, ...]:
    found = events.of(RunState)
    return found[-1].ranks if found else ()


def rank(events: Events, index: int = 0) -> RankState | None:
    return next((r for r in ranks(events) if r.rank == index), None)


def debuggable(events: Events) -> bool:
    """Rank 0 runs, its debug port is forwarded to the laptop, and its output is arriving."""
    state = rank(events)
    return bool(state and state.status is RankStatus.RUNNING and state.local_port and events.output())


def status(events: Events, index: int = 0) -> str:
    state = rank(events, index)
    return state.status.value if state else ""


# Every TCP socket in LISTEN state held by a process of the run (its environment has the loop's
# TETHER_LOOP_RUN token: the debuggee, its children and debugpy's adapter), from /proc.
LISTENERS = r"""
import json, os, socket
def addr(h):
    raw = bytes.fromhex(h)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
listen = {}
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).readlines()[1:]:
        f = line.split()
        if f[3] == "0A":
            a, p = f[1].split(":")
            listen[int(f[9])] = (addr(a), int(p, 16))
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    if not any(e.startswith(b"TETHER_LOOP_RUN=") for e in env):
        continue
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in listen:
            found.append([int(pid), *listen[int(target[8:-1])]])
print(json.dumps(found))
"""


def run_listeners(testbed: Testbed) -> list[tuple[int, str, int]]:
    out = testbed.node_run_as_user("/usr/bin/python3 -", input=LISTENERS, check=True).stdout
    return [tuple(item) for item in json.loads(out)]


@contextlib.asynccontextmanager
async def debug_console(session: Session, events: Events, ready=None, timeout: float = 30.0):
    """The session running as a console runs it, until the layout is there and ``ready()`` holds."""
    layout_and_ready = lambda: events.layout() is not None and (ready is None or ready())
    async with running_session(session, events, layout_and_ready, timeout) as task:
        yield task

"""The laptop side of the debug loop: forwards, launch.json, run state per rank, restart and stop.

Textual-free. ``DebugRuns`` is fed the agent's ``layout.ensure`` reply (its ``debug`` part: mode,
and per rank the node port and the loop's state file) each time the link comes up, and the agent's
``loop.state`` events. It forwards every rank's debug port and every [ports] entry with ``Tunnels``
(kept across reconnects), writes ``.vscode/launch.json`` with the laptop ports, emits ``RunState``
snapshots, and notices for what the user must act on (breakpoint() waiting, debugpy missing).
With ``[debug] vscode_port = false`` the ranks get no laptop port and no launch.json; otherwise,
where other people use this machine, it says once that the laptop port is theirs to reach too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import cast

from tui.config import Workspace
from tui.events import DebuggerWaiting, EventSink, Notice, RankState, RankStatus, RunState
from tui.node.protocol import Message
from tui.node.protocol_layout import LayoutReply
from tui.node.protocol_loop import (
    CONTROL,
    STATE_EVENT,
    WATCH,
    LoopControlRequest,
    LoopRank,
    LoopReply,
    LoopState,
    LoopStateEvent,
    LoopWatchRequest,
)
from tui.remote.agent_channel import AgentChannel
from tui.remote.tunnel import Tunnels


def other_local_users() -> list[str]:
    """Other people on the machine the console runs on: ``who``'s logins, and on Linux the owners
    of processes with a login uid (1000 and up, not nobody) other than ours."""
    import os
    import pwd
    import subprocess

    me = os.getuid()
    found: set[str] = set()
    try:
        who = subprocess.run(["who"], capture_output=True, text=True, timeout=5).stdout
        found |= {line.split()[0] for line in who.splitlines() if line.strip()}
    except (OSError, subprocess.SubprocessError):
        pass
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit():
                with contextlib.suppress(OSError):
                    uid = os.stat(f"/proc/{name}").st_uid
                    if uid != me and 1000 <= uid < 65534:
                        try:
                            found.add(pwd.getpwuid(uid).pw_name)
                        except KeyError:
                            found.add(str(uid))
    with contextlib.suppress(KeyError):
        found.discard(pwd.getpwuid(me).pw_name)
    return sorted(found)


def rank_forward_name(rank: int) -> str:
    return f"debug rank {rank}"


def pass_env_values(workspace: Workspace, environ: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """({name: value} of [run] pass_env found in ``environ``, names that are not set there)."""
    values = {name: environ[name] for name in workspace.run.pass_env if name in environ}
    return values, [name for name in workspace.run.pass_env if name not in environ]


def debugpy_bundle() -> bytes:
    """Tether's own debugpy (pure Python parts) as a tar.gz of ``debugpy/...``, for a node without it."""
    spec = importlib.util.find_spec("debugpy")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("debugpy is not installed next to Tether")
    root = Path(spec.origin).parent
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            if (
                path.is_dir()
                or "__pycache__" in path.parts
                or path.suffix in (".pyc", ".dll", ".exe", ".dylib", ".pdb")
            ):
                continue
            tar.add(path, arcname=f"debugpy/{path.relative_to(root)}", recursive=False)
    return buffer.getvalue()


class DebugRuns:
    """The run's ranks as the console shows them, and the forwards that reach their debuggers."""

    def __init__(
        self,
        workspace: Workspace,
        tunnels: Tunnels,
        sink: EventSink,
        provide_debugpy: Callable[[], bool] = lambda: False,
    ) -> None:
        """``provide_debugpy`` is called when a rank waits for Tether's copy of debugpy and
        [debug] provide_debugpy is "auto": it starts copying it (and then restarts the loops), or
        returns False when it will not (it did already, and the run's python still finds none)."""
        self.workspace = workspace
        self._provide_debugpy = provide_debugpy
        self.tunnels = tunnels
        self.sink = sink
        self.mode = workspace.debug.mode
        self.ranks: list[LoopRank] = []  # from the agent
        self.states: dict[str, LoopState | None] = {}  # state path -> last loop state
        self.local_ports: dict[int, int] = {}
        self.remote_root = ""
        self._waiting: dict[int, str] = {}
        self._told: set[str] = set()

    # ---------------------------------------------------------------- bring up (each link up)
    async def bring_up(self, agent: AgentChannel, reply: LayoutReply | None) -> None:
        debug = (reply.get("debug") if reply else None) or {}
        self.mode = str(debug.get("mode", self.mode))
        self.remote_root = str((reply.get("root") if reply else None) or self.remote_root)
        self.ranks = list(debug.get("ranks", ()))
        # mode "off" forwards too: breakpoint() still opens the rank's port and waits there
        vscode_port = self.workspace.debug.vscode_port
        if vscode_port:
            self._warn_shared_laptop()
        for entry in self.ranks if vscode_port else ():
            forward = await self.tunnels.add(
                rank_forward_name(int(entry["rank"])), int(entry["port"]), self.local_ports.get(int(entry["rank"]), 0)
            )
            self.local_ports[int(entry["rank"])] = forward.local_port
        for port in self.workspace.ports:
            try:
                await self.tunnels.add(port.name, port.remote, port.local)
            except Exception as exc:  # noqa: BLE001 - one forward failing must not stop the others
                self._tell(str(exc), "warning")
        for entry in self.ranks:
            await agent.call(WATCH, LoopWatchRequest(state=entry["state"], interval=0.25))
        self.write_launch_json()
        self.emit()

    def _warn_shared_laptop(self) -> None:
        """Once: other people use this machine, and the laptop's 127.0.0.1 port is theirs to reach too."""
        others = other_local_users()
        if others:
            self._tell(
                f"other users are logged in to this machine ({', '.join(others[:5])}): the debug port "
                "forwarded to 127.0.0.1 here for VS Code is open to them too, and gives code execution "
                "on the node as you; set [debug] vscode_port = false in tether.toml to turn it off",
                "warning",
            )

    def write_launch_json(self) -> Path | None:
        if not self.ranks or not self.remote_root or self.mode == "off" or not self.workspace.debug.vscode_port:
            return None
        from tui.debug.vscode import write_launch_json

        root = self.workspace.local_root
        try:
            return write_launch_json(
                root,
                self.workspace.name,
                root,
                self.remote_root,
                [self.local_ports[int(e["rank"])] for e in self.ranks],
            )
        except Exception as exc:  # noqa: BLE001 - a broken launch.json is the user's to fix; say so
            self._tell(f"could not update .vscode/launch.json: {exc}", "warning")
            return None

    # ---------------------------------------------------------------- agent events
    def handle(self, message: Message) -> None:
        if message.get("op") != STATE_EVENT:
            return
        event = cast(LoopStateEvent, message)  # its op says so
        path = str(event.get("state_path"))
        if path not in {e["state"] for e in self.ranks}:
            return
        self.states[path] = event.get("state")
        self.emit()

    def rank_states(self) -> tuple[RankState, ...]:
        found = []
        for entry in self.ranks:
            rank, state = int(entry["rank"]), self.states.get(entry["state"])
            local = self.local_ports.get(rank, 0)
            if not state:
                found.append(RankState(rank, RankStatus.STARTING, int(entry["port"]), local))
                continue
            status = RankStatus.of(state.get("status", "starting"))
            if not state.get("loop_alive", True) and state.get("loop_running"):
                status, reason = RankStatus.CRASHED, "the debug loop was killed"
            else:
                reason = str(state.get("exit_reason") or "")
            if (
                not state.get("loop_alive", True)
                and not state.get("loop_running")
                and status not in (RankStatus.EXITED, RankStatus.CRASHED)
            ):
                status = RankStatus.STOPPED
            found.append(
                RankState(
                    rank,
                    status,
                    int(state.get("port") or entry["port"]),
                    local,
                    state.get("pid"),
                    int(state.get("restarts") or 0),
                    state.get("started_at"),
                    state.get("exit_code"),
                    reason,
                    str(state.get("waiting_at") or ""),
                    float(state.get("backoff_s") or 0.0),
                    bool(state.get("debugpy_missing")),
                    str(state.get("fix") or ""),
                    str(state.get("pdb") or ""),
                )
            )
        return tuple(found)

    def emit(self) -> None:
        ranks = self.rank_states()
        for rank in ranks:
            if rank.waiting_at and self._waiting.get(rank.rank) != rank.waiting_at:
                self.sink(DebuggerWaiting(rank.rank, rank.waiting_at, rank.local_port, bool(rank.pdb)))
                where = "press b for its pdb" if rank.pdb else f"attach to 127.0.0.1:{rank.local_port}"
                self.sink(Notice(f"rank {rank.rank}: waiting for debugger at {rank.waiting_at} ({where})", "warning"))
            self._waiting[rank.rank] = rank.waiting_at
        if any(rank.debugpy_missing for rank in ranks):
            self._debugpy_missing(next(rank for rank in ranks if rank.debugpy_missing))
        # The mode the loops run in: a mode changed in tether.toml applies at their next restart.
        running = next((str(s["mode"]) for s in self.states.values() if s and s.get("mode")), self.mode)
        self.sink(RunState(ranks, running))

    def _debugpy_missing(self, rank: RankState) -> None:
        """The run's python has no debugpy: what [debug] provide_debugpy says to do about it."""
        choice = self.workspace.debug.provide_debugpy
        if choice == "auto":
            if not self._provide_debugpy():
                self._tell(
                    f"Tether's copy of debugpy did not help the run's python ({rank.reason or 'no debugpy'}): "
                    f"install debugpy there: {rank.fix}",
                    "error",
                )
        elif choice == "ask":
            self._tell(
                "The run's python has no debugpy: copy Tether's own to the node with the command "
                "'Make debugpy available' (ctrl+p; works offline), or install it there: " + rank.fix,
                "warning",
            )
        else:
            self._tell(rank.reason or f"debugpy is not installed for the run's python: {rank.fix}", "error")

    def _tell(self, text: str, level: str = "info") -> None:
        if text not in self._told:
            self._told.add(text)
            self.sink(Notice(text, level))

    # ---------------------------------------------------------------- commands
    async def control(self, agent: AgentChannel, command: str) -> list[LoopReply]:
        """Send ``command`` (restart, stop, quit, status) to every rank's loop; their replies."""
        if not self.ranks:
            raise RuntimeError("the run has no debug loop (a [layout] run pane with its own command?)")
        replies = await asyncio.gather(
            *(agent.call(CONTROL, LoopControlRequest(state=e["state"], command=command)) for e in self.ranks)
        )
        return [reply.get("reply", {}) for reply in replies]

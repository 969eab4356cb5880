"""The console's debuggers: one per rank, one more per subprocess a rank starts (a launcher's
workers), and what acts on all of them at once.

Textual-free. The laptop's forwarded debug port (for VS Code) is open to every user of the laptop;
the console does not need it. ``RelayConnections`` gives each debugger a stream of its own: one end
of a socketpair in this process, carried over the agent's channel to 127.0.0.1 on the node, where
the debug guard lets in the owner alone. So the console debugs also with
``[debug] vscode_port = false``. A subprocess's session rides the same kind of stream to the same
port (debugpy tells them apart by ``subProcessId``). The breakpoints, watches and exception filters
are the workspace's (``DebugMemory``) and shared by every process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.debug.breakpoints import DebugMemory
from tui.debug.debugger import Debugger, Emit, Streams, quietly
from tui.debug.runs import DebugRuns
from tui.events import DebugStatus, DebugView
from tui.node.protocol import Message
from tui.remote.agent_channel import AgentChannel, AgentError
from tui.remote.relay import PortRelay

RankConnector = Callable[[int], Awaitable[Streams]]


class RankDebuggers:
    """Every process the console debugs, and "all together" (any stop pauses the others; F5 and
    F6 go to all)."""

    def __init__(
        self,
        memory: DebugMemory,
        local_root: Path,
        remote_root: Callable[[], str],
        connect: RankConnector,
        emit: Emit,
        ranks: Callable[[], list[int]] = lambda: [0],
        *,
        stops_prefetched: bool = False,
    ) -> None:
        """``stops_prefetched``: the streams ``connect`` opens answer each stop's requests on the
        node (RelayConnections' do)."""
        self.memory = memory
        self._prefetched = stops_prefetched
        self.local_root = local_root
        self._remote_root = remote_root
        self._connect = connect
        self._emit = emit
        self._ranks = ranks
        self._debuggers: dict[tuple[int, int], Debugger] = {}  # (rank, pid or 0) -> its debugger
        self.together = False
        self._pausing: set[asyncio.Task[None]] = set()

    def debugger(self, rank: int = 0) -> Debugger:
        """Rank ``rank``'s debugger (made on first use; attached only once started)."""
        key = (rank, 0)
        if key not in self._debuggers:
            self._debuggers[key] = self._make(rank, None)
        return self._debuggers[key]

    def _make(self, rank: int, config: dict[str, Any] | None) -> Debugger:
        return Debugger(
            self.memory,
            self.local_root,
            self._remote_root,
            lambda: self._connect(rank),
            self._seen,
            rank=rank,
            config=config,
            on_child=self._child,
            stops_prefetched=self._prefetched,
        )

    def _child(self, parent: Debugger, config: dict[str, Any]) -> None:
        child = self._make(parent.rank, config)
        self._debuggers[(child.rank, child.process)] = child
        child.start()

    def processes(self) -> list[Debugger]:
        """The ranks being debugged and their live subprocesses, by rank, then in start order."""
        live = [d for d in self._debuggers.values() if d.wanted]
        return sorted(live, key=lambda d: (d.rank, d.process != 0))

    def _seen(self, event: object) -> None:
        if isinstance(event, DebugView):
            if event.process and event.status is DebugStatus.OFF:
                self._debuggers.pop(event.key, None)  # the worker ended
            # a pause is one of ours (or the user's pause of all): only a stop of the run's own
            # (a breakpoint, a step, an exception) stops the others
            reason = event.stop.reason if event.stop else ""
            if self.together and event.status is DebugStatus.STOPPED and reason != "pause":
                self._pause_others(event.key)
        self._emit(event)

    def _pause_others(self, key: tuple[int, int]) -> None:
        for debugger in self.processes():
            if (debugger.rank, debugger.process) != key and debugger.view.status is DebugStatus.RUNNING:
                task = asyncio.get_running_loop().create_task(quietly(debugger.pause()))
                self._pausing.add(task)
                task.add_done_callback(self._pausing.discard)

    def set_together(self, on: bool) -> None:
        self.together = on

    async def resume_all(self) -> None:
        await asyncio.gather(*(quietly(d.resume()) for d in self.processes() if d.view.status is DebugStatus.STOPPED))

    async def pause_all(self) -> None:
        await asyncio.gather(*(quietly(d.pause()) for d in self.processes() if d.view.status is DebugStatus.RUNNING))

    def bring_up(self) -> None:
        """After the node reported the run: the user's saved breakpoints mean they debug in the
        console, so it attaches at once (VS Code can attach once it lets go)."""
        if self.memory.files():
            for rank in self._ranks():
                self.debugger(rank).start()

    async def close(self) -> None:
        for debugger in list(self._debuggers.values()):
            if debugger.wanted:
                await debugger.stop()


class RelayConnections:
    """Streams to each rank's debug port on the node, over the agent's channel (see the module doc)."""

    def __init__(self, runs: DebugRuns, agent: Callable[[], AgentChannel | None]) -> None:
        self._runs = runs
        self._agent = agent
        self._relays: dict[int, PortRelay] = {}

    def ranks(self) -> list[int]:
        """The ranks the run has, as the agent last said (rank 0 before it said)."""
        return sorted(int(entry["rank"]) for entry in self._runs.ranks) or [0]

    def _node_port(self, rank: int) -> int:
        for entry in self._runs.ranks:
            if int(entry["rank"]) == rank:
                return int(entry["port"])
        raise AgentError(f"rank {rank} has no debug port yet (the node has not reported the run)")

    def _relay(self, rank: int, port: int) -> PortRelay:
        """The rank's relay (one per rank, made anew when its port moved), on a connected node."""
        relay = self._relays.get(rank)
        if relay is None or relay.remote_port != port:
            relay = self._relays[rank] = PortRelay(f"debugger rank {rank}", port, 0, self._agent)
        if self._agent() is None:
            raise AgentError("the node is not connected right now")
        return relay

    async def open(self, rank: int) -> Streams:
        return await self._relay(rank, self._node_port(rank)).open_stream(dap=True)

    async def open_pdb(self, rank: int) -> Streams:
        """A stream to the pdb that breakpoint() started in the rank (its python has no debugpy)."""
        state = next((s for s in self._runs.rank_states() if s.rank == rank), None)
        if state is None or not state.pdb:
            raise AgentError(f"rank {rank} waits in no pdb")
        return await self._relay(rank, state.port).open_stream(pdb=state.pdb)

    def handle(self, message: Message) -> bool:
        """Pass an agent event to the relays; True when it was one of their streams' bytes."""
        return any(relay.handle(message) for relay in self._relays.values())

    async def close(self) -> None:
        for relay in self._relays.values():
            await relay.close()


if TYPE_CHECKING:  # the console's contract: mypy checks that RankDebuggers keeps it
    from tui.console_api import ConsoleDebugGroup

    _KEEPS_THE_CONTRACT: type[ConsoleDebugGroup] = RankDebuggers

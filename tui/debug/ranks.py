"""The console's debuggers, one per rank, each on a stream no one else can reach.

Textual-free. The laptop's forwarded debug port (for VS Code) is open to every user of the laptop;
the console does not need it. Each rank's ``Debugger`` connects through a ``PortRelay`` stream: one
end of a socketpair in this process, carried over the agent's channel to 127.0.0.1 on the node,
where the debug guard lets in the owner alone. So the console debugs also with
``[debug] vscode_port = false``. The breakpoints, watches and exception filters are the
workspace's (``DebugMemory``, saved in Tether's state folder) and shared by every rank.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.config import Workspace
from tui.debug.breakpoints import DebugMemory
from tui.debug.debugger import Debugger, Emit, Streams
from tui.debug.runs import DebugRuns
from tui.remote.agent_channel import AgentChannel, AgentError
from tui.remote.relay import PortRelay


class RankDebuggers:
    def __init__(
        self,
        workspace: Workspace,
        runs: DebugRuns,
        agent: Callable[[], AgentChannel | None],
        emit: Emit,
        memory_path: Path | None,
    ) -> None:
        self.workspace = workspace
        self.memory = DebugMemory(memory_path)
        self._runs = runs
        self._agent = agent
        self._emit = emit
        self._debuggers: dict[int, Debugger] = {}
        self._relays: dict[int, PortRelay] = {}

    def ranks(self) -> list[int]:
        """The ranks the run has, as the agent last said (rank 0 before it said)."""
        found = sorted(int(entry["rank"]) for entry in self._runs.ranks)
        return found or [0]

    def _node_port(self, rank: int) -> int:
        for entry in self._runs.ranks:
            if int(entry["rank"]) == rank:
                return int(entry["port"])
        raise AgentError(f"rank {rank} has no debug port yet (the node has not reported the run)")

    def debugger(self, rank: int = 0) -> Debugger:
        """Rank ``rank``'s debugger (made on first use; attached only once started)."""
        if rank not in self._debuggers:
            self._debuggers[rank] = Debugger(
                self.memory,
                self.workspace.local_root,
                lambda: self._runs.remote_root,
                lambda: self._open(rank),
                self._emit,
                rank=rank,
            )
        return self._debuggers[rank]

    async def _open(self, rank: int) -> Streams:
        port = self._node_port(rank)
        relay = self._relays.get(rank)
        if relay is None or relay.remote_port != port:
            relay = self._relays[rank] = PortRelay(f"debugger rank {rank}", port, 0, self._agent)
        if self._agent() is None:
            raise AgentError("the node is not connected right now")
        return await relay.open_stream()

    def bring_up(self) -> None:
        """After the node reported the run: the user's saved breakpoints mean they debug in the
        console, so it attaches at once (VS Code can attach once it lets go)."""
        if self.memory.files():
            for rank in self.ranks():
                self.debugger(rank).start()

    def handle(self, message: dict[str, Any]) -> bool:
        """Pass an agent event to the relays; True when it was one of their streams' bytes."""
        return any(relay.handle(message) for relay in self._relays.values())

    async def close(self) -> None:
        for debugger in self._debuggers.values():
            if debugger.wanted:
                await debugger.stop()
        for relay in self._relays.values():
            await relay.close()

"""The laptop's end of the agent's ``files.*`` ops for one workspace's remote root.

Each op goes with its typed request and reply (tui/node/protocol_files.py). A request that did not
reach the node (the channel closed, no answer in time) raises ``LinkFailure``, which the engine
treats as the link being down: the paths go back in the queue. An error of the agent's own stays a
TetherError. The root is opened once per agent channel: as a sync (which takes the root over on the
node) or, for `tether pull`, only to learn its real path.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from tui.errors import TetherError
from tui.node.protocol import Message, Op
from tui.node.protocol_files import (
    APPLY,
    BACKUP,
    HASH,
    MANIFEST,
    OPEN,
    PREPARE,
    RECORD,
    REFUSED,
    ApplyReply,
    ApplyRequest,
    BackupReply,
    Expected,
    FileOp,
    ManifestReply,
    ManifestRequest,
    OpenReply,
    OpenRequest,
    PathsRequest,
    PatternRow,
    PrepareReply,
    PrepareRequest,
)
from tui.remote.agent_channel import AgentChannel
from tui.sync import safety

RequestT = TypeVar("RequestT", bound=Message)
ReplyT = TypeVar("ReplyT", bound=Message)


class LinkFailure(TetherError):
    """The push did not reach the node (channel or master gone): the paths go back in the queue."""


class NodeRoot:
    """One workspace's remote root as the agent on the node sees it."""

    def __init__(self, key: str) -> None:
        self.key = key  # how the agent names the opened root: remote_root as the config writes it
        self.remote_root = ""  # the node's real path, from files.open
        self.opened_on: AgentChannel | None = None  # the channel the root was opened on for a sync

    async def call(
        self, agent: AgentChannel | None, op: Op[RequestT, ReplyT], request: RequestT, *, timeout: float = 30.0
    ) -> ReplyT:
        if agent is None or agent.closed:
            raise LinkFailure("the agent channel is closed")
        try:
            return await agent.call(op, request, timeout=timeout)
        except asyncio.TimeoutError:
            raise LinkFailure(f"no answer to {op.name} in {timeout:.0f} s") from None
        except TetherError as exc:
            if agent.closed or "closed" in str(exc):
                raise LinkFailure(str(exc)) from None
            raise

    async def _open(self, agent: AgentChannel | None, request: OpenRequest) -> OpenReply:
        reply = await self.call(agent, OPEN, request, timeout=30)
        if reply.get("op") == REFUSED:
            safety.refuse_root(self.key, reply["root"], reply["home"])
        return reply

    async def ensure_open(self, agent: AgentChannel | None, protect: list[PatternRow]) -> None:
        """Open the root for a sync on this channel, unless it is open on it already."""
        if agent is not None and agent is self.opened_on and not agent.closed:
            return
        reply = await self._open(agent, {"root": self.key, "protect": protect})
        self.remote_root = reply["root"]
        self.opened_on = agent

    async def ensure_readable(self, agent: AgentChannel | None) -> None:
        """The node's real remote root, for reading only. Never ``files.open`` as a sync: that hands
        the root to this agent, and a console's sync running beside a `tether pull` would see its
        pushes dropped."""
        if agent is not None and agent is self.opened_on and not agent.closed:
            return
        reply = await self._open(agent, {"root": self.key, "claim": False})
        if reply.get("missing"):
            raise TetherError(
                f"{self.key} is not on the node yet: nothing to pull",
                fix="check remote_root in tether.toml, or run `tether up` or `tether sync` first",
            )
        self.remote_root = reply["root"]

    async def manifest(self, agent: AgentChannel | None, exclude: list[PatternRow]) -> ManifestReply:
        request: ManifestRequest = {"root": self.key, "exclude": exclude}
        return await self.call(agent, MANIFEST, request, timeout=120)

    async def apply(
        self, agent: AgentChannel | None, ops: list[FileOp], *, delete_theirs: bool, timeout: float
    ) -> ApplyReply:
        request: ApplyRequest = {"root": self.key, "ops": ops, "delete_theirs": delete_theirs}
        return await self.call(agent, APPLY, request, timeout=timeout)

    async def prepare(
        self,
        agent: AgentChannel | None,
        paths: list[str],
        expect: list[Expected],
        *,
        theirs_aside: bool,
        timeout: float,
    ) -> PrepareReply:
        """Node-edited files (with ``theirs_aside`` the node's own too) moved aside before rsync
        writes ``paths``; ``expect``: what rsync will write."""
        request: PrepareRequest = {"root": self.key, "paths": paths, "expect": expect, "theirs_aside": theirs_aside}
        return await self.call(agent, PREPARE, request, timeout=timeout)

    async def record(self, agent: AgentChannel | None, paths: list[str], *, timeout: float) -> None:
        """Tell the node Tether wrote ``paths`` (they are Tether's from now on)."""
        await self.call(agent, RECORD, self._paths(paths), timeout=timeout)

    async def hashes(self, agent: AgentChannel | None, paths: list[str]) -> dict[str, str]:
        """sha256 of the regular files among ``paths`` on the node."""
        reply = await self.call(agent, HASH, self._paths(paths), timeout=60 + len(paths) / 100)
        return reply.get("hashes", {})

    async def backup(self, agent: AgentChannel | None, paths: list[str]) -> BackupReply:
        """The node's own ``paths`` moved to BACKUP_DIR/<date>/ inside the root."""
        return await self.call(agent, BACKUP, self._paths(paths), timeout=60 + len(paths) / 100)

    def _paths(self, paths: list[str]) -> PathsRequest:
        return {"root": self.key, "paths": paths}

"""Apply a plan on the target: small files over the agent's open channel, large ones with rsync.

One change set costs one message and one reply: deletes, folders, links and the contents of
small files travel together in ``files.apply`` (split into a few pipelined messages when large).
Files above ``SMALL_FILE``, and everything in a first sync of many files, go through rsync over
the target's ControlMaster, between ``files.prepare`` (node-edited files moved aside) and
``files.record`` (remember what was written, for the next conflict check).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tui.errors import TetherError
from tui.node.protocol_files import ApplyReply, Conflict, Expected, FileError, FileOp
from tui.remote.agent_channel import AgentChannel
from tui.remote.ssh import ControlMaster
from tui.sync.node_root import LinkFailure, NodeRoot
from tui.sync.reconcile import Plan
from tui.sync.rsync import RsyncProgress, files_from, pull_argv, push_argv, remote_of, run_rsync

SMALL_FILE = 1024 * 1024  # bytes; larger files go as rsync deltas
MESSAGE_BYTES = 4 * 1024 * 1024  # file bytes per files.apply message
# A change set with more files than this (a branch switch, a first sync) goes through rsync: the
# node's filesystem work dominates there, and rsync pipelines it with the transfer.
BULK_FILES = 2000
BULK_BYTES = 8 * 1024 * 1024
# rsync exit codes that mean "some files changed or vanished meanwhile": the watcher sends those again.
RSYNC_VANISHED = (24,)
RSYNC_PARTIAL = (23,)
LINK_WORDS = (
    "connection unexpectedly closed",
    "Broken pipe",
    "protocol data stream",
    "Connection closed",
    "Connection reset",
    "unexpected end of file",
    "mux_client",
    "write failed",
    "error in socket IO",
)


@dataclass
class PushResult:
    files: int = 0
    bytes: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    retry: set[str] = field(default_factory=set)  # paths that changed while being sent
    kept: list[str] = field(default_factory=list)  # the node's own files a delete left in place


def read_for_put(root: Path, rel: str) -> tuple[FileOp | None, int]:
    """A ``put`` op with the file's bytes, mode and mtime as read now; None when it vanished."""
    try:
        with open(os.path.join(root, rel), "rb") as source:
            data = source.read()
            st = os.fstat(source.fileno())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, 0
    op: FileOp = {
        "k": "put",
        "p": rel,
        "d": base64.b64encode(data).decode(),
        "m": st.st_mode & 0o7777,
        "t": st.st_mtime_ns,
    }
    return op, len(data)


def _request_timeout(nbytes: int) -> float:
    return 30.0 + nbytes / 100_000  # a slow link: ~100 KB/s still finishes


class Pusher:
    def __init__(self, local_root: Path, node: NodeRoot) -> None:
        self.local_root = local_root
        self.node = node

    def _messages(self, plan: Plan, rsync_all: bool) -> tuple[list[list[FileOp]], list[int], list[str], PushResult]:
        """The files.apply messages (with their byte sizes), the paths left for rsync."""
        result = PushResult()
        head: list[FileOp] = [{"k": "del", "p": p} for p in plan.deletes]
        if not (rsync_all and plan.full):  # a whole-tree rsync makes the folders and links itself
            head += [{"k": "mkdir", "p": p, "m": m} for p, m in plan.mkdirs]
            head += [{"k": "link", "p": p, "l": t} for p, t in plan.links]
        messages, sizes = [head], [0]
        by_rsync: list[str] = []
        for rel, entry in plan.files:
            if rsync_all or entry.size > SMALL_FILE:
                by_rsync.append(rel)
                continue
            op, size = read_for_put(self.local_root, rel)
            if op is None:
                result.retry.add(rel)
                continue
            if sizes[-1] + size > MESSAGE_BYTES and messages[-1]:
                messages.append([])
                sizes.append(0)
            messages[-1].append(op)
            sizes[-1] += size
            result.files += 1
            result.bytes += size
        return [m for m in messages if m], [s for m, s in zip(messages, sizes) if m], by_rsync, result

    async def apply(
        self,
        plan: Plan,
        agent: AgentChannel | None,
        master: ControlMaster,
        *,
        on_progress: Callable[[int, int, RsyncProgress | None], None] | None = None,
        delete_theirs: bool = False,
    ) -> PushResult:
        """Send ``plan``. The node's own files (not written by Tether) are neither deleted nor
        overwritten unless ``delete_theirs`` (the user said so): a delete leaves them (``kept``),
        a write moves them aside as a conflict copy. A full comparison has asked about them already."""
        rsync_all = len(plan.files) > BULK_FILES or plan.bytes_to_send > BULK_BYTES
        messages, sizes, by_rsync, result = self._messages(plan, rsync_all)
        replies = await asyncio.gather(
            *(
                self.node.apply(agent, ops, delete_theirs=delete_theirs, timeout=_request_timeout(size))
                for ops, size in zip(messages, sizes)
            ),
            return_exceptions=True,
        )
        answers: list[ApplyReply] = []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
            answers.append(reply)
        for reply in answers:
            result.conflicts += reply.get("conflicts", [])
            result.errors += reply.get("errors", [])
            result.kept += reply.get("kept", [])
        if on_progress is not None:
            on_progress(result.files, result.bytes, None)
        if by_rsync:
            await self._rsync(
                by_rsync,
                agent,
                master,
                result,
                on_progress,
                plan if rsync_all else None,
                theirs_aside=not (delete_theirs or plan.full),
            )
        return result

    async def _rsync(
        self,
        paths: list[str],
        agent: AgentChannel | None,
        master: ControlMaster,
        result: PushResult,
        on_progress: Callable[[int, int, RsyncProgress | None], None] | None,
        plan: Plan | None = None,
        theirs_aside: bool = False,
    ) -> None:
        existing = [p for p in paths if plan is None or p not in plan.known_absent]
        # Files the node may hold: node-side edits are moved aside first. What rsync will write is
        # noted for every path, so a cut before files.record still leaves them Tether's own.
        expect: list[Expected] = [(p, *_size_mtime(self.local_root, p)) for p in paths]
        prepared = await self.node.prepare(
            agent,
            existing,
            [e for e in expect if e[1] >= 0],
            theirs_aside=theirs_aside,
            timeout=60 + len(paths) / 1000,
        )
        result.conflicts += prepared.get("conflicts", [])
        # A full comparison's plan goes as one recursive rsync of the root, like a hand-run rsync
        # (scanning and sending at once); what the rules exclude is named exactly.
        whole = plan is not None and plan.full
        excludes = plan.skipped if whole and plan is not None else []
        base_files, base_bytes = result.files, result.bytes

        def progress(p: RsyncProgress) -> None:
            if on_progress is not None:
                on_progress(base_files + (p.files_done or 0), base_bytes + p.bytes_done, p)

        env = {**os.environ, **master.settings.extra_env}
        argv = push_argv(
            str(self.local_root),
            remote_of(master, self.node.remote_root),
            progress=on_progress is not None,
            whole_tree=whole,
            excludes=excludes,
        )
        done = await run_rsync(argv, stdin=b"" if whole else files_from(paths), env=env, on_progress=progress)
        if done.returncode in RSYNC_VANISHED + RSYNC_PARTIAL and not await self._link_broke(done.stderr, agent, master):
            # A file changed or vanished while rsync read it: its event sends it again.
            result.errors += [
                FileError(path="", error=line) for line in done.stderr.splitlines() if not _gone_meanwhile(line)
            ][:5]
        elif not done.ok:
            raise LinkFailure(f"rsync to {master.name} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        await self.node.record(agent, paths, timeout=60 + len(paths) / 1000)
        result.files += len(paths)
        result.bytes += sum(_size(self.local_root, p) for p in paths)

    @staticmethod
    async def _link_broke(stderr: str, agent: AgentChannel | None, master: ControlMaster) -> bool:
        """rsync says 23 (partial) also when the connection died mid-file: tell the two apart."""
        if any(words in stderr for words in LINK_WORDS) or agent is None or agent.closed:
            return True
        return await master.pid() is None

    async def fetch_copy(self, agent: AgentChannel | None, master: ControlMaster, rel: str) -> None:
        """Bring a node-side conflict copy next to the local file, so the user sees both versions."""
        await self.pull(master, rel)

    async def pull(self, master: ControlMaster, rel: str) -> None:
        env = {**os.environ, **master.settings.extra_env}
        done = await run_rsync(pull_argv(str(self.local_root), remote_of(master, self.node.remote_root), rel), env=env)
        if not done.ok:
            raise TetherError(
                f"could not pull {rel} from {master.name}: {done.stderr.strip()[-300:]}",
                fix="check the path: it is relative to the workspace (e.g. outputs/model.pt)",
            )


def _gone_meanwhile(line: str) -> bool:
    """rsync's words for a file deleted after the plan was made (its deletion comes as its own event),
    its folder among them, or its folder replaced by a file ("Not a directory")."""
    return (
        "vanished" in line
        or ("link_stat" in line and ("No such file or directory" in line or "Not a directory" in line))
        or line.startswith("rsync error: some files")
        or not line.strip()
    )


def _size_mtime(root: Path, rel: str) -> tuple[int, int]:
    try:
        st = os.stat(os.path.join(root, rel), follow_symlinks=False)
    except OSError:
        return -1, 0
    return (st.st_size, st.st_mtime_ns) if not os.path.islink(os.path.join(root, rel)) else (-1, 0)


def _size(root: Path, rel: str) -> int:
    try:
        return os.lstat(os.path.join(root, rel)).st_size
    except OSError:
        return 0

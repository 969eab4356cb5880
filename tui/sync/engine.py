"""The sync engine: first sync, then watch -> coalesce -> push, pausing while the link is down.

Every local change gets a sequence number. Changed paths wait in one set (a path changed twice is
sent once, as it is at push time); one push loop takes the whole set, reads each path's local
state now, plans (tui/sync/reconcile.py) and applies it (tui/sync/push.py). A push that fails on
the link puts its paths back, so nothing is lost: after a reconnect the set (everything changed
meanwhile, plus the push that was cut) is pushed again, and every op is idempotent.
``wait_synced()`` returns once every change made before the call is on the node.

It runs inside the console's session or headless (`tether sync`): all it needs is a target
(tui/sync/target.py) and an EventSink.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from tui.config import Workspace
from tui.events import HALT_DELETES, HALT_FOREIGN, EventSink, Notice
from tui.sync import safety
from tui.sync.ignore import BUILTIN_IGNORES, Rules, compile_for_node, parents
from tui.sync.node_root import LinkFailure, NodeRoot
from tui.sync.push import Pusher, PushResult
from tui.sync.reconcile import Plan, RemoteIndex, deletes_exceed, plan_changes, reconcile, vanished_children
from tui.sync.rsync import RsyncProgress
from tui.sync.status import SyncConflict, SyncHaltReport, SyncProgress, SyncState, SyncStatus, write_status
from tui.sync.target import SyncTarget
from tui.sync.tree import FILE, Tree, count_files, entries_from_wire, file_hashes, scan_local, stat_local
from tui.sync.watcher import Watcher, make_watcher

SETTLE = 0.003  # seconds without new events before a change set is taken
SETTLE_MAX = 0.05


class SyncEngine:
    def __init__(
        self,
        workspace: Workspace,
        target: SyncTarget,
        sink: EventSink,
        *,
        ws_id: str | None = None,
        allow_deletes: bool = False,
        settle: float = SETTLE,
    ) -> None:
        self.workspace = workspace
        self.root: Path = workspace.local_root
        self.target = target
        self._sink = sink
        self._ws_id = ws_id
        self.allow_deletes = allow_deletes
        self._settle = settle
        config = workspace.sync
        self.rules = Rules.for_root(self.root, config.ignore, config.protect)
        self._node_exclude = compile_for_node(list(BUILTIN_IGNORES) + list(config.ignore))
        self._node_protect = compile_for_node(config.protect)
        self.node = NodeRoot(workspace.remote_root)  # the files.* ops, and the node's real root path
        self.pusher = Pusher(self.root, self.node)
        self.index = RemoteIndex()
        self.watcher: Watcher | None = None
        self._dirty: dict[str, int] = {}  # path -> sequence number of its last change
        self._inflight: set[str] = set()
        self._first_dirty_at: float | None = None
        self._seq = 0  # the last change seen
        self._applied = 0  # every change up to this one is on the node
        self._progress = asyncio.Condition()
        self._wake = asyncio.Event()
        self._rescan: str | None = None
        self._paused = False
        self._halt: safety.SyncHalted | None = None
        self._halt_full = False  # the halt came from a full comparison: checking again means a rescan
        self._allow_once = False
        self._link_up = True
        self._ever_up = target.is_up()  # before the node was first reached, "link lost" would be untrue
        self.state = SyncState.SCANNING
        self.status = SyncStatus(workspace.name, SyncState.SCANNING)
        self.conflicts: list[SyncConflict] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        target.add_listener(self._on_link)

    # -- public API ----------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._dirty.keys() | self._inflight)

    @property
    def applied_seq(self) -> int:
        return self._applied

    def current_seq(self) -> int:
        """The sequence number of the last change seen, after reading every queued file event."""
        if self.watcher is not None:
            self.watcher.drain()
        return self._seq

    async def wait_synced(self, seq: int | None = None, timeout: float | None = None) -> None:
        """Return once every change up to ``seq`` (default: every change made before now) is on the node."""
        wanted = self.current_seq() if seq is None else seq
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self._applied >= wanted), timeout)

    async def wait_applied_after(self, seq: int) -> int:
        """Wait until changes beyond ``seq`` are on the node; returns the new applied number."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._applied > seq)
            return self._applied

    async def sync_once(self) -> PushResult:
        """Headless one-shot: open the root and make the node's tree equal to the local one."""
        await self.target.start()
        return await self._full_sync(first=True)

    async def start(self) -> None:
        """First sync, then watch and push in the background until ``close``."""
        await self.target.start()
        self.watcher = make_watcher(self.root, self.rules, self._changed, self._request_rescan)
        self.watcher.start()
        self._seq += 1  # the first sync covers everything up to here
        while True:
            try:
                await self._full_sync(first=True)
                break
            except LinkFailure:
                await asyncio.sleep(0.2)
                await self.target.wait_up()
            except safety.SyncRefused:
                raise
            except safety.SyncHalted as exc:  # the console asks; the loop goes on once it is released
                self._halted(exc, full=True)
                break
        self._loop_task = asyncio.create_task(self._push_loop())

    async def close(self) -> None:
        self._closed = True  # no more events: the link going down after this is not sync's news
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self.watcher is not None:
            self.watcher.close()
        await self.target.close()

    def pause(self) -> None:
        self._paused = True
        self._emit()

    def resume(self) -> None:
        self._paused = False
        self._wake.set()
        self._emit()

    @property
    def halt(self) -> safety.SyncHalted | None:
        """The safety halt sync waits on, if any."""
        return self._halt

    def allow_deletes_once(self) -> None:
        """The user looked at the halt and wants what it held back: the deletes, or the node's
        own files deleted or replaced ("delete them")."""
        full = self._halt_full
        self._halt = None
        self._allow_once = True
        if full:
            self._rescan = self._rescan or "the deletes were allowed"
            self._seq += 1
        self._wake.set()
        self._emit()

    def rescan(self) -> None:
        """Compare both trees again and go on if no safety rule holds any more (the cause is gone)."""
        self._halt = None
        self._request_rescan("a rescan was asked for")
        self._emit()

    async def keep_theirs(self) -> str:
        """The node's own files that the halt named are moved to the root's backup folder
        (BACKUP_DIR/<date>/, ignored by sync); then sync goes on. Returns that folder."""
        halt = self._halt
        if not isinstance(halt, safety.ForeignFiles):
            return ""
        folder = await self.back_up(halt.paths)
        if self._halt is halt:
            self.rescan()
        return folder

    async def back_up(self, paths: list[str]) -> str:
        await self.target.wait_up()
        await self._ensure_open()
        reply = await self.node.backup(self.target.agent, paths)
        for error in reply.get("errors", []):
            self._sink(Notice(f"sync: could not back up {error.get('path')}: {error.get('error')}", "warning"))
        folder = f"{self.workspace.remote_root}/{reply['folder']}"
        if reply.get("moved"):
            self._sink(Notice(f"sync: kept {len(reply['moved'])} of the node's own files in {folder}", "info"))
        return folder

    async def pull(self, rel: str) -> None:
        """Bring ``rel`` (relative to the workspace) back from the node."""
        rel = safety.workspace_path(self.root, rel)
        await self.target.wait_up()
        await self.node.ensure_readable(self.target.agent)
        await self.pusher.pull(self.target.master, rel)

    # -- changes -------------------------------------------------------------------------------
    def _changed(self, paths: object) -> None:
        self._seq += 1  # one number per batch of events: they arrived together
        dirty, seq = self._dirty, self._seq
        for path in paths:  # type: ignore[attr-defined]
            dirty[path] = seq
        if self._first_dirty_at is None:
            self._first_dirty_at = time.perf_counter()
        self._wake.set()
        if self.state in (SyncState.UP_TO_DATE, SyncState.LINK_LOST, SyncState.PAUSED, SyncState.HALTED):
            self._emit()

    def _request_rescan(self, reason: str) -> None:
        self._rescan = reason
        self._seq += 1
        self._wake.set()

    def _on_link(self, up: bool, why: str) -> None:
        self._link_up = up
        if up:
            self._ever_up = True
            self._wake.set()
        self._emit(detail="" if up else why)

    # -- state ---------------------------------------------------------------------------------
    def _halted(self, exc: safety.SyncHalted, *, full: bool) -> None:
        same = self._halt is not None and self._halt.message == exc.message
        self._halt, self._halt_full = exc, full
        if not same:
            self._sink(Notice(exc.message, "error"))
            if isinstance(exc, safety.ForeignFiles):
                report = SyncHaltReport(
                    self.workspace.name, HALT_FOREIGN, exc.message, exc.fix, tuple(exc.paths), len(exc.paths)
                )
            else:
                report = SyncHaltReport(
                    self.workspace.name, HALT_DELETES, exc.message, exc.fix, (), getattr(exc, "deleted", 0)
                )
            self._sink(report)
        self._emit()

    def _state_now(self) -> SyncState:
        if self._halt is not None:
            return SyncState.HALTED
        if not self._link_up:
            return SyncState.LINK_LOST if self._ever_up else SyncState.WAITING
        if self._paused:
            return SyncState.PAUSED
        return self.state

    def _emit(self, *, detail: str = "", result: PushResult | None = None, latency_ms: float | None = None) -> None:
        if self._closed:
            return
        state = self._state_now()
        if state is SyncState.HALTED and self._halt is not None:
            detail = self._halt.message
        if state is SyncState.UP_TO_DATE and self.pending:
            state = SyncState.PENDING
        previous = self.status
        status = SyncStatus(
            self.workspace.name,
            state,
            self.pending,
            detail,
            latency_ms if latency_ms is not None else previous.last_push_ms,
            result.bytes if result is not None else previous.last_push_bytes,
            result.files if result is not None else previous.last_push_files,
            len(self.conflicts),
        )
        if status == previous:
            return
        self.status = status
        self._sink(status)
        if self._ws_id is not None and (status.state is not previous.state or result is not None):
            with contextlib.suppress(OSError):
                write_status(self._ws_id, status)

    async def _mark_applied(self, seq: int) -> None:
        async with self._progress:
            self._applied = max(self._applied, seq)
            self._progress.notify_all()

    # -- pushing -------------------------------------------------------------------------------
    async def _ensure_open(self) -> None:
        await self.node.ensure_open(self.target.agent, self._node_protect)

    def _check_safe(self, plan: Plan, remote_files: int, foreign: list[str] = ()) -> bool:  # type: ignore[assignment]
        """Raise the halt that holds ``plan`` back; True when the user allowed its deletes."""
        safety.local_root_missing(self.root.is_dir())
        if self.allow_deletes or self._allow_once:
            self._allow_once = False
            self._halt = None
            return True
        if foreign:
            raise safety.ForeignFiles(self.workspace.remote_root, list(foreign))
        elif deletes_exceed(plan.deleted_files, remote_files, self.workspace.sync.delete_threshold):
            raise safety.RootEmptied(plan.deleted_files, remote_files, self.workspace.sync.delete_threshold)
        self._halt = None  # nothing holds this push back (any more): a halt clears itself
        return False

    async def _full_sync(self, *, first: bool = False) -> PushResult:
        reason, self._rescan = self._rescan, None
        try:
            return await self._compare_and_push(first)
        except BaseException:
            self._rescan = self._rescan or reason or "the last full comparison did not finish"
            raise

    async def _compare_and_push(self, first: bool) -> PushResult:
        self.state = SyncState.SCANNING
        self._emit()
        seq = self._seq
        await self.target.wait_up()
        await self._ensure_open()
        skipped: list[str] = []
        # Both sides at once: the local scan in a thread while the node walks its tree.
        local, reply = await asyncio.gather(
            asyncio.to_thread(scan_local, self.root, self.rules, "", skipped),
            self.node.manifest(self.target.agent, self._node_exclude),
        )
        remote = entries_from_wire(reply["entries"])
        plan = reconcile(local, remote, self.rules.excluded, skipped)
        unknown = set(reply.get("unknown", ()))
        foreign = await self._foreign(plan, local, remote, unknown)
        allowed = self._check_safe(plan, count_files(remote), foreign)
        self.index = RemoteIndex.of_tree(remote)
        self._dirty = {p: s for p, s in self._dirty.items() if s > seq}
        result = await self._apply(plan, seq, progress=first, delete_theirs=allowed)
        # The node's own files that equal the laptop's are Tether's from now on.
        adopt = sorted(
            p
            for p in unknown
            if p in local
            and local[p].kind == FILE
            and p not in plan.known_absent
            and p not in {path for path, _ in plan.files}
        )
        if adopt:
            await self.node.record(self.target.agent, adopt, timeout=60 + len(adopt) / 1000)
        return result

    async def _foreign(self, plan: Plan, local: Tree, remote: Tree, unknown: set[str]) -> list[str]:
        """The node's files Tether did not write that ``plan`` would delete, or replace by different bytes."""
        if not unknown:
            return []
        deleted = set(plan.deletes)
        gone = {p for p in unknown if p in deleted or any(parent in deleted for parent in parents(p))}
        replaced = [
            p
            for p, _ in plan.files
            if p in unknown and p not in gone and remote.get(p) is not None and remote[p].kind == FILE
        ]
        if replaced:  # same bytes, other mtime (a copy made by hand before): nothing is lost
            theirs = await self.node.hashes(self.target.agent, replaced)
            ours = await asyncio.to_thread(file_hashes, self.root, replaced)
            replaced = [p for p in replaced if theirs.get(p) is None or theirs.get(p) != ours.get(p)]
        return sorted(gone | set(replaced))

    async def _apply(self, plan: Plan, seq: int, *, progress: bool = False, delete_theirs: bool = False) -> PushResult:
        self.state = SyncState.PUSHING
        self._inflight = set(plan.paths())
        self._emit()
        started = self._first_dirty_at or time.perf_counter()
        self._first_dirty_at = None
        total_files, total_bytes = len(plan.files), plan.bytes_to_send

        def on_progress(files: int, nbytes: int, rsync: RsyncProgress | None) -> None:
            self._sink(
                SyncProgress(
                    self.workspace.name,
                    min(files, total_files),
                    total_files,
                    min(nbytes, total_bytes),
                    total_bytes,
                    rsync.rate if rsync else "",
                    rsync.eta if rsync else "",
                )
            )

        try:
            result = await self.pusher.apply(
                plan,
                self.target.agent,
                self.target.master,
                on_progress=on_progress if progress else None,
                delete_theirs=delete_theirs,
            )
        except BaseException:
            for path in self._inflight:  # back in the queue, unless changed again meanwhile
                self._dirty.setdefault(path, seq)
            raise
        finally:
            self._inflight = set()
        self.index.apply(plan)
        for path in result.retry:
            self._seq += 1
            self._dirty[path] = self._seq
        for error in result.errors:
            self._sink(Notice(f"sync: {error.get('path') or 'rsync'}: {error.get('error')}", "warning"))
        for conflict in result.conflicts:
            await self._conflict(conflict["path"], conflict["copy"])
        if result.kept:  # the node's own files were in what the laptop deleted: ask, as a first sync does
            raise safety.ForeignFiles(self.workspace.remote_root, result.kept)
        await self._mark_applied(seq)
        self.state = SyncState.UP_TO_DATE
        self._emit(result=result, latency_ms=(time.perf_counter() - started) * 1000)
        return result

    async def _conflict(self, path: str, copy: str) -> None:
        event = SyncConflict(self.workspace.name, path, copy)
        self.conflicts.append(event)
        self._sink(event)
        self._sink(Notice(event.message, "warning"))
        with contextlib.suppress(LinkFailure, OSError, Exception):
            await self.pusher.fetch_copy(self.target.agent, self.target.master, copy)
            # Both sides hold the same copy now: it is Tether's to sync like any file (else the
            # push of the laptop's copy would move the node's aside once more).
            await self.node.record(self.target.agent, [copy], timeout=30)

    async def _push_changes(self) -> None:
        await self._ensure_open()
        seq, batch = self._seq, self._dirty
        self._dirty = {}
        changed = {path: stat_local(self.root, path) for path in batch}
        for path in vanished_children(changed, self.index, lambda rel: stat_local(self.root, rel) is not None):
            changed[path] = None
            batch[path] = seq  # back in the queue with the rest if this push fails
        plan = plan_changes(changed, self.rules.excluded, self.index)
        try:
            allowed = self._check_safe(plan, self.index.total)
        except safety.SyncHalted:
            self._dirty.update(batch)
            raise
        await self._apply(plan, seq, delete_theirs=allowed)

    async def _settled(self) -> None:
        deadline = time.perf_counter() + SETTLE_MAX
        while True:
            seen = self._seq
            await asyncio.sleep(self._settle)
            if self.watcher is not None:
                self.watcher.drain()
            if self._seq == seen or time.perf_counter() > deadline:
                return

    async def _push_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._paused:
                self._emit()
                continue
            if not self._dirty and self._rescan is None:
                self._emit()
                continue
            if self._halt is not None and self._halt_full:
                self._rescan = self._rescan or "checking the halt again"  # its cause may be gone now
            if not self.target.is_up():
                self._link_up = False
                self._emit()
                await self.target.wait_up()
                self._link_up = True
            self._ever_up = True
            await self._settled()
            full = self._rescan is not None
            try:
                if full:
                    await self._full_sync()
                else:
                    await self._push_changes()
            except LinkFailure as exc:
                self._link_up = self.target.is_up()
                self._emit(detail=str(exc))
                await asyncio.sleep(0.2)  # the supervisor notices the drop; then wait_up above
            except safety.SyncHalted as exc:
                # The node's own files are checked again by a full comparison (they may be gone).
                self._halted(exc, full=full or isinstance(exc, safety.ForeignFiles))
                continue
            except Exception as exc:  # an agent error: say it, open the root again, retry later
                self.node.opened_on = None
                self._sink(Notice(f"sync: {exc}", "error"))
                await asyncio.sleep(1.0)
            if self._dirty or self._rescan is not None:
                self._wake.set()

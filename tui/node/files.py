"""The sync capability of the node agent: file pushes over the agent's open channel.

Stdlib only (it runs on the node). Ops, all scoped to a remote root opened first:
  files.open     {root, protect}            -> {root (real path), home, created}; refuses /, $HOME
                                               and its parents (checked against the node's real $HOME)
  files.manifest {root, exclude}            -> {entries: [[path, kind, size, mtime_ns, mode, target]]}
  files.apply    {root, ops, delete_theirs} -> {done, conflicts, skipped, errors, kept}: ``kept``, the
                                               node's own files a delete left (unless delete_theirs)
  files.prepare  {root, paths, expect, theirs_aside} -> {conflicts}: node-edited files (and with
                                               theirs_aside the node's own) moved aside before rsync;
                                               ``expect`` [[path, size, mtime_ns]]: what rsync will write
  files.record   {root, paths}              -> {}: remember what Tether just wrote (after rsync)
  files.read     {root, path}               -> {data (base64), mode, mtime_ns}
  files.hash     {root, paths}              -> {hashes: {path: sha256}} of regular files
  files.backup   {root, paths}              -> {folder, moved, errors}: files moved (not copied) to
                                               BACKUP_DIR/<date>/ inside the root, which sync ignores
The manifest also names ``unknown``: the regular files Tether has no record of writing (the journal
below), so the laptop can ask before a sync deletes or replaces them.

Apply ops (in order): ``{"k": "del", "p"}``, ``{"k": "mkdir", "p", "m"}``,
``{"k": "put", "p", "d" (base64), "m", "t" (mtime_ns)}``, ``{"k": "link", "p", "l"}``.
Files are written to a temporary file in the same folder and renamed into place, so a half
written file is never visible. Protected paths are never deleted or overwritten, and no path ever
resolves outside the root (no "..", no absolute paths, no writing through a symlinked folder).

Each ``files.open`` takes the root over (an owner file under a lock): a request an older agent
still works through after a link cut is dropped, so it cannot undo a newer push.
What Tether last wrote is kept in a journal (``tui.node.journal``); a file that differs from its
record was edited on the node, and is kept beside the new version as
``NAME.conflict-node-TIMESTAMP.EXT`` instead of being overwritten. The messages' types, and which
roots are refused: ``tui.node.protocol_files``.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING

from tui.node import protocol_files as wire
from tui.node.journal import Journal

if TYPE_CHECKING:
    from tui.node.agent import Agent

TMP_PREFIX = ".tether-tmp-"


def clean_relpath(path: str) -> str:
    """A normalised relative path, or ValueError for anything that could leave the root."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\0" in path:
        raise ValueError(f"bad path {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"bad path {path!r}")
    return "/".join(parts)


class Matcher:
    """Root-level patterns compiled on the laptop (tui/sync/ignore.py): [regex, negate, dir_only]."""

    def __init__(self, patterns: list[wire.PatternRow]) -> None:
        self.patterns = [(re.compile(rx, re.DOTALL), bool(neg), bool(d)) for rx, neg, d in patterns or []]

    def _self(self, path: str, is_dir: bool) -> bool:
        verdict = False
        for rx, negate, dir_only in self.patterns:
            if (is_dir or not dir_only) and rx.fullmatch(path):
                verdict = not negate
        return verdict

    def __call__(self, path: str, is_dir: bool) -> bool:
        parts = path.split("/")
        if any(self._self("/".join(parts[:i]), True) for i in range(1, len(parts))):
            return True
        return self._self(path, is_dir)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


class Root:
    """One opened remote root: its real path, protect rules and the journal of our writes."""

    def __init__(self, path: str, protect: Matcher) -> None:
        self.path = path
        self.protect = protect
        self.journal = Journal(path)
        self.lock_path = self.journal.owner_path
        self.token = f"{os.getpid()}-{time.time_ns()}"
        self._verified: set[str] = set()  # folders checked free of symlinks during one request
        # Per request: the node's own files (no record that Tether wrote them) a delete left in
        # place, and whether the user allowed them to go.
        self.kept: list[str] = []
        self.delete_theirs = False
        with self._locked() as owner:  # this agent owns the root now; an older one is fenced off
            owner.seek(0)
            owner.truncate()
            owner.write(self.token)
            owner.flush()
            self.journal.load()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        with open(self.lock_path, "a+", encoding="utf-8") as owner:
            fcntl.flock(owner, fcntl.LOCK_EX)
            yield owner

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the root for one request, if this agent still owns it.

        After a link cut the old agent may still be working through requests it had read; a new
        agent's ``files.open`` takes the root over, so those late requests cannot undo newer ones.
        """
        with self._locked() as owner:
            owner.seek(0)
            if owner.read().strip() != self.token:
                raise ValueError("a newer sync took this remote root over; request dropped")
            self.journal.begin()
            self._verified = set()
            try:
                yield
            finally:
                self._verified = set()
                self.journal.end()

    # -- the journal of what Tether wrote -----------------------------------------------------
    def remember(self, paths: list[str]) -> None:
        self.journal.remember((rel, _lstat(self.abs(rel))) for rel in paths)

    def expect(self, expected: list[wire.Expected]) -> None:
        self.journal.expect((clean_relpath(rel), int(size), int(mtime_ns)) for rel, size, mtime_ns in expected)

    # -- paths ---------------------------------------------------------------------------------
    def abs(self, rel: str) -> str:
        return os.path.join(self.path, clean_relpath(rel))

    def safe_parent(self, rel: str, create: bool) -> str:
        """The absolute path for ``rel`` after checking its folder resolves inside the root."""
        target = self.abs(rel)
        parent = os.path.dirname(target)
        if parent in self._verified:
            return target
        if create:
            self._makedirs(parent)
        if os.path.realpath(parent) != parent:  # through a symlinked folder: maybe outside the root
            raise ValueError(f"{rel!r} lies below a symlink on the node; not followed")
        if self.journal.in_request:
            self._verified.add(parent)
        return target

    def _makedirs(self, folder: str) -> None:
        if folder == self.path or (os.path.isdir(folder) and not os.path.islink(folder)):
            return
        self._makedirs(os.path.dirname(folder))
        if os.path.lexists(folder):  # a file or link where a folder must go
            self.delete(os.path.relpath(folder, self.path), [])
        os.mkdir(folder)

    def hashes(self, paths: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for rel in paths:
            target = self.safe_parent(clean_relpath(rel), create=False)
            if os.path.isfile(target) and not os.path.islink(target):
                digest = hashlib.sha256()
                with open(target, "rb") as source:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        digest.update(block)
                found[rel] = digest.hexdigest()
        return found

    def backup(self, paths: list[str]) -> wire.BackupResult:
        """Move ``paths`` (the node's own files) to BACKUP_DIR/<date>/ inside the root, keeping their folders."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder, n = f"{wire.BACKUP_DIR}/{stamp}", 1
        while os.path.lexists(os.path.join(self.path, folder)):
            n += 1
            folder = f"{wire.BACKUP_DIR}/{stamp}-{n}"
        moved: list[str] = []
        errors: list[wire.FileError] = []
        for rel in paths:
            try:
                rel = clean_relpath(rel)
                source = self.safe_parent(rel, create=False)
                if not os.path.lexists(source):
                    continue
                target = self.safe_parent(f"{folder}/{rel}", create=True)
                os.rename(source, target)
                self.journal.forget([rel])
                moved.append(rel)
            except (OSError, ValueError) as exc:
                errors.append({"path": str(rel), "error": str(exc)})
        return {"folder": folder, "moved": moved, "errors": errors}

    def conflict_copy(self, rel: str, conflicts: list[wire.Conflict]) -> None:
        folder, name = os.path.split(rel)
        stem, dot, ext = name.rpartition(".")
        if not stem:  # ".bashrc" or "Makefile": no extension to keep
            stem, dot, ext = name, "", ""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        copy = os.path.join(folder, f"{stem}.conflict-node-{stamp}{dot}{ext}")
        n = 1
        while os.path.lexists(self.abs(copy)):
            n += 1
            copy = os.path.join(folder, f"{stem}.conflict-node-{stamp}-{n}{dot}{ext}")
        os.rename(self.abs(rel), self.abs(copy))
        self.journal.forget([rel])
        conflicts.append({"path": rel, "copy": copy})

    # -- operations ----------------------------------------------------------------------------
    def delete(self, rel: str, conflicts: list[wire.Conflict]) -> bool:
        """Remove ``rel`` (a folder with everything in it) except protected paths; True if gone."""
        self._verified.clear()
        target = self.abs(rel)
        if self.protect(rel, os.path.isdir(target) and not os.path.islink(target)):
            return False
        if os.path.realpath(os.path.dirname(target)) != os.path.dirname(target):
            return True  # below a symlink: no such path in the tree
        try:
            st = os.lstat(target)
        except OSError as exc:
            # Gone, its folder a file now, or below a symlink loop (realpath above cannot tell).
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return True
            raise
        if not stat.S_ISDIR(st.st_mode):
            if self.journal.modified_on_node(rel, st):
                self.conflict_copy(rel, conflicts)
                return True
            if stat.S_ISREG(st.st_mode) and not self.delete_theirs and not self.journal.written_by_tether(rel, st):
                self.kept.append(rel)  # the run's output, say: the laptop asks before it goes
                return False
            os.unlink(target)
            self.journal.forget([rel])
            return True
        empty = True
        for entry in os.scandir(target):
            if not self.delete(f"{rel}/{entry.name}", conflicts):
                empty = False
        if empty:
            os.rmdir(target)
        return empty

    def put(self, op: wire.FileOp, conflicts: list[wire.Conflict]) -> None:
        rel = clean_relpath(op["p"])
        target = self.safe_parent(rel, create=True)
        data = base64.b64decode(op.get("d", ""))
        try:
            st: os.stat_result | None = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            if not self.delete(rel, conflicts):
                raise ValueError(f"{rel!r}: a folder with protected files or the node's own files is in the way")
        elif (
            st is not None
            and stat.S_ISREG(st.st_mode)
            and (
                self.journal.modified_on_node(rel, st)
                or not (self.delete_theirs or self.journal.written_by_tether(rel, st))
            )
        ):
            with open(target, "rb") as current:
                same = st.st_size == len(data) and current.read() == data
            if not same:
                self.conflict_copy(rel, conflicts)
        tmp = os.path.join(os.path.dirname(target), f"{TMP_PREFIX}{os.getpid()}-{os.path.basename(target)[:40]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, int(op.get("m", 0o644)) & 0o7777)
            if op.get("t") is not None:
                os.utime(tmp, ns=(int(op["t"]), int(op["t"])))
                # On disk before the rename: a cut that kills the agent after it (the request's own
                # journal lines come at its end) must not make this write look like a node-side edit.
                self.journal.expect_now(rel, len(data), int(op["t"]))
            os.replace(tmp, target)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        self.remember([rel])

    def mkdir(self, op: wire.FileOp, conflicts: list[wire.Conflict]) -> None:
        rel = clean_relpath(op["p"])
        target = self.safe_parent(rel, create=True)
        if os.path.lexists(target) and not (os.path.isdir(target) and not os.path.islink(target)):
            self.delete(rel, conflicts)
        if not os.path.isdir(target):
            os.mkdir(target)
        if op.get("m") is not None:
            os.chmod(target, int(op["m"]) & 0o7777)

    def link(self, op: wire.FileOp, conflicts: list[wire.Conflict]) -> None:
        rel = clean_relpath(op["p"])
        target = self.safe_parent(rel, create=True)
        if os.path.islink(target) and os.readlink(target) == op["l"]:
            return
        self._verified.clear()
        if os.path.lexists(target):
            if not self.delete(rel, conflicts):
                raise ValueError(f"{rel!r}: a folder with protected files or the node's own files is in the way")
        tmp = os.path.join(os.path.dirname(target), f"{TMP_PREFIX}{os.getpid()}-link")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(op["l"], tmp)
        os.replace(tmp, target)

    def apply(self, ops: list[wire.FileOp], delete_theirs: bool = False) -> wire.ApplyResult:
        conflicts: list[wire.Conflict] = []
        self.kept, self.delete_theirs = [], delete_theirs
        skipped: list[str] = []
        errors: list[wire.FileError] = []
        done = 0
        for op in ops:
            kind, rel = op.get("k"), op.get("p", "")
            try:
                rel = clean_relpath(rel)
                if self.protect(rel, kind == "mkdir"):
                    skipped.append(rel)
                    continue
                if kind == "del":
                    self.delete(rel, conflicts)
                elif kind == "put":
                    self.put(op, conflicts)
                elif kind == "mkdir":
                    self.mkdir(op, conflicts)
                elif kind == "link":
                    self.link(op, conflicts)
                else:
                    raise ValueError(f"unknown file op {kind!r}")
                done += 1
            except (OSError, ValueError) as exc:
                errors.append({"path": str(rel), "error": str(exc)})
        kept, self.kept, self.delete_theirs = self.kept, [], False
        return {"done": done, "conflicts": conflicts, "skipped": skipped, "errors": errors, "kept": kept}

    def manifest(self, exclude: Matcher, unknown: list[str] | None = None) -> list[wire.ManifestRow]:
        entries: list[wire.ManifestRow] = []
        stack = [""]
        while stack:
            folder = stack.pop()
            try:
                scan = list(os.scandir(os.path.join(self.path, folder) if folder else self.path))
            except OSError:
                continue
            for entry in scan:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if entry.name.startswith(TMP_PREFIX):
                    if time.time() - st.st_mtime > 60:  # left by an agent killed mid-write
                        os.unlink(entry.path)
                    continue
                if exclude(rel, is_dir) or self.protect(rel, is_dir):
                    continue
                if is_dir:
                    entries.append((rel, "d", 0, 0, st.st_mode & 0o7777, None))
                    stack.append(rel)
                elif stat.S_ISLNK(st.st_mode):
                    entries.append((rel, "l", 0, 0, 0, os.readlink(entry.path)))
                elif stat.S_ISREG(st.st_mode):
                    entries.append((rel, "f", st.st_size, st.st_mtime_ns, st.st_mode & 0o7777, None))
                    if unknown is not None and not self.journal.written_by_tether(rel, st):
                        unknown.append(rel)
        return entries

    def prepare(
        self, paths: list[str], expected: list[wire.Expected], theirs_aside: bool = False
    ) -> list[wire.Conflict]:
        """Move node-edited files aside before rsync overwrites them (and, with ``theirs_aside``, the
        node's own files too); note what rsync will write."""
        conflicts: list[wire.Conflict] = []
        for rel in paths:
            rel = clean_relpath(rel)
            try:
                st = os.lstat(self.abs(rel))
            except OSError:
                continue
            theirs = theirs_aside and stat.S_ISREG(st.st_mode) and not self.journal.written_by_tether(rel, st)
            if theirs or self.journal.modified_on_node(rel, st):
                self.conflict_copy(rel, conflicts)
        self.expect(expected)
        return conflicts


class Files:
    """The handlers; roots stay open for the agent's life (a new agent reopens them)."""

    def __init__(self) -> None:
        self.roots: dict[str, Root] = {}

    def root(self, message: Mapping[str, object]) -> Root:
        found = self.roots.get(str(message.get("root", "")))
        if found is None:
            raise ValueError("remote root not opened: send files.open first")
        return found

    def open(self, message: wire.OpenRequest) -> wire.OpenReply:
        home = os.path.realpath(os.path.expanduser("~"))
        wanted = os.path.expanduser(message["root"])
        real = os.path.realpath(wanted)
        refusal = wire.root_refusal(real, home)
        if refusal is not None:
            return {"op": wire.REFUSED, "root": real, "home": home, "reason": refusal}
        if not message.get("claim", True):
            # A reader (`tether pull`) needs the real path only: taking the root over would fence
            # off the sync that runs beside it (its next push "dropped"), and reading creates nothing.
            return {
                "op": wire.OPEN.name,
                "root": real,
                "home": home,
                "created": False,
                "missing": not os.path.isdir(real),
            }
        created = not os.path.isdir(real)
        if created and not message.get("create", True):
            return {"op": wire.OPEN.name, "root": real, "home": home, "created": False, "missing": True}
        os.makedirs(real, exist_ok=True)
        self.roots[message["root"]] = Root(real, Matcher(message.get("protect", [])))
        return {"op": wire.OPEN.name, "root": real, "home": home, "created": created}

    def manifest(self, message: wire.ManifestRequest) -> wire.ManifestReply:
        root = self.root(message)
        unknown: list[str] = []
        entries = root.manifest(Matcher(message.get("exclude", [])), unknown)
        return {"op": wire.MANIFEST.name, "entries": entries, "unknown": unknown}

    def apply(self, message: wire.ApplyRequest) -> wire.ApplyReply:
        root = self.root(message)
        with root.writing():
            return {"op": wire.APPLY.name, **root.apply(message.get("ops", []), bool(message.get("delete_theirs")))}

    def prepare(self, message: wire.PrepareRequest) -> wire.PrepareReply:
        root = self.root(message)
        with root.writing():
            return {
                "op": wire.PREPARE.name,
                "conflicts": root.prepare(
                    message.get("paths", []), message.get("expect", []), bool(message.get("theirs_aside"))
                ),
            }

    def record(self, message: wire.PathsRequest) -> wire.RecordReply:
        root = self.root(message)
        with root.writing():
            root.remember([clean_relpath(p) for p in message.get("paths", [])])
        return {"op": wire.RECORD.name}

    def read(self, message: wire.ReadRequest) -> wire.ReadReply:
        root = self.root(message)
        target = root.safe_parent(clean_relpath(message["path"]), create=False)
        st = os.lstat(target)
        with open(target, "rb") as source:
            data = source.read()
        return {
            "op": wire.READ.name,
            "data": base64.b64encode(data).decode(),
            "mode": st.st_mode & 0o7777,
            "mtime_ns": st.st_mtime_ns,
        }

    def hash(self, message: wire.PathsRequest) -> wire.HashReply:
        return {"op": wire.HASH.name, "hashes": self.root(message).hashes(message.get("paths", []))}

    def backup(self, message: wire.PathsRequest) -> wire.BackupReply:
        root = self.root(message)
        with root.writing():
            return {"op": wire.BACKUP.name, **root.backup(message.get("paths", []))}


def register(agent: Agent) -> None:
    files = Files()
    agent.register(wire.OPEN.name, files.open)
    agent.register(wire.MANIFEST.name, files.manifest)
    agent.register(wire.APPLY.name, files.apply)
    agent.register(wire.PREPARE.name, files.prepare)
    agent.register(wire.RECORD.name, files.record)
    agent.register(wire.READ.name, files.read)
    agent.register(wire.HASH.name, files.hash)
    agent.register(wire.BACKUP.name, files.backup)

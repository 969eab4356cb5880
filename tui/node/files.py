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
What Tether last wrote (size, mtime, inode per path) is kept in an append-only journal under
``~/.cache/tether/sync/``; a file that differs from its record was edited on the node, and is
kept beside the new version as ``NAME.conflict-node-TIMESTAMP.EXT`` instead of being overwritten.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from typing import IO, Any

STATE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "tether", "sync")
TMP_PREFIX = ".tether-tmp-"
BACKUP_DIR = ".tether-backup"  # in the remote root; "keep theirs" moves the node's own files here


# System folders: never a remote root themselves (a project below most of them is fine: /tmp/me/p).
SYSTEM_FOLDERS = frozenset(
    (
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/snap",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/Users",
        "/Volumes",
        "/Applications",
        "/Library",
        "/System",
        "/private",
        "/private/tmp",
        "/private/var",
        "/private/etc",
        "/usr/local",
        "/var/tmp",
        "/var/lib",
        "/var/log",
        "/var/cache",
        "/var/spool",
        "/var/mail",
        "/var/opt",
        "/var/run",
        "/run/user",
        "/dev/shm",
        "/nix",
        "/nix/store",
    )
)
# System trees: nothing inside them either.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/System",
    "/private/etc",
    "/nix/store",
)
# Dot-folders of the home whose insides are never a project either (keys, Tether's own journal).
HOME_TREES = (".ssh", ".gnupg", ".cache/tether")


def root_refusal(root: str, home: str) -> str | None:
    """Why ``root`` (an absolute path, or one under ``home`` written "~/...") must not be synced
    into, or None when it is fine. Sync deletes what the laptop does not have inside the root, so:
    not /, not a system folder, not the home or anything holding it, not one of its dot-folders."""
    root = root.rstrip("/") or "/"
    home = home.rstrip("/") or "/"
    if root == "/":
        return "is the whole filesystem '/'"
    if root == home:
        return f"is your home directory on the node ({home})"
    if home.startswith(root + "/"):
        return f"holds your home directory on the node ({home})"
    if root.startswith(home + "/"):  # inside the home: only its dot-folders are off limits
        rel = root[len(home) + 1 :]
        shown = "~/" + rel if home == "~" else f"{home}/{rel}"
        if rel.startswith(".") and "/" not in rel:
            return f"is a dot-folder of your home ({shown}), where programs keep their settings"
        for tree in HOME_TREES:
            if rel.startswith(tree + "/"):
                return f"lies inside {'~' if home == '~' else home}/{tree}"
        return None
    if root in SYSTEM_FOLDERS:
        return f"is the system folder {root}"
    for tree in SYSTEM_TREES:
        if root.startswith(tree + "/"):
            return f"lies inside the system folder {tree}"
    return None


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

    def __init__(self, patterns: list[list[Any]]) -> None:
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


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class Root:
    """One opened remote root: its real path, protect rules and the journal of our writes."""

    def __init__(self, path: str, protect: Matcher) -> None:
        self.path = path
        self.protect = protect
        os.makedirs(STATE_DIR, exist_ok=True)
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        self.journal_path = os.path.join(STATE_DIR, f"{digest}.jsonl")
        self.lock_path = os.path.join(STATE_DIR, f"{digest}.owner")
        self.token = f"{os.getpid()}-{time.time_ns()}"
        self._pending: list[list[Any]] | None = None
        self._verified: set[str] = set()  # folders checked free of symlinks during one request
        self.records: dict[str, list[int]] = {}
        # (size, mtime) rsync is about to write, so a cut between rsync and files.record does not
        # make Tether's own write look like a node-side edit.
        self.expected: dict[str, list[int]] = {}
        # Per request: the node's own files (no record that Tether wrote them) a delete left in
        # place, and whether the user allowed them to go.
        self.kept: list[str] = []
        self.delete_theirs = False
        with self._locked() as owner:  # this agent owns the root now; an older one is fenced off
            owner.seek(0)
            owner.truncate()
            owner.write(self.token)
            owner.flush()
            self._load()

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
            self._pending, self._verified = [], set()
            try:
                yield
            finally:
                entries, self._pending = self._pending, None
                self._verified = set()
                self._journal(entries)

    # -- the journal of what Tether wrote -----------------------------------------------------
    def _load(self) -> None:
        lines = 0
        try:
            with open(self.journal_path, encoding="utf-8") as journal:
                for line in journal:
                    lines += 1
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a torn last line after a crash
                    if len(entry) == 4:
                        self.records[entry[0]] = entry[1:]
                        self.expected.pop(entry[0], None)
                    elif len(entry) == 3:
                        self.expected[entry[0]] = entry[1:]
                    elif entry:
                        self.records.pop(entry[0], None)
                        self.expected.pop(entry[0], None)
        except FileNotFoundError:
            pass
        if lines > 2 * len(self.records) + 1000:
            tmp = self.journal_path + ".new"
            with open(tmp, "w", encoding="utf-8") as out:
                out.writelines(json.dumps([path, *key]) + "\n" for path, key in self.records.items())
                out.writelines(json.dumps([path, *key]) + "\n" for path, key in self.expected.items())
            os.replace(tmp, self.journal_path)

    def _journal(self, entries: list[list[Any]]) -> None:
        if self._pending is not None:  # inside one request: written once at its end
            self._pending.extend(entries)
            return
        if entries:
            self._journal_now(entries)

    def _journal_now(self, entries: list[list[Any]]) -> None:
        """Write ``entries`` at once, even inside a request (whose lines wait for its end)."""
        with open(self.journal_path, "a", encoding="utf-8") as journal:
            journal.write("".join(json.dumps(e) + "\n" for e in entries))

    def remember(self, paths: list[str]) -> None:
        entries: list[list[Any]] = []
        for rel in paths:
            try:
                st = os.lstat(self.abs(rel))
            except OSError:
                if self.records.pop(rel, None) is not None:
                    entries.append([rel])
                continue
            if stat.S_ISREG(st.st_mode):
                self.records[rel] = _key(st)
                self.expected.pop(rel, None)
                entries.append([rel, *_key(st)])
        self._journal(entries)

    def expect(self, expected: list[list[Any]]) -> None:
        for rel, size, mtime_ns in expected:
            self.expected[clean_relpath(rel)] = [int(size), int(mtime_ns)]
        self._journal([[clean_relpath(rel), int(size), int(mtime_ns)] for rel, size, mtime_ns in expected])

    def forget(self, rels: list[str]) -> None:
        gone = []
        for rel in rels:
            had_expectation = self.expected.pop(rel, None) is not None
            if self.records.pop(rel, None) is not None or had_expectation:
                gone.append(rel)
        self._journal([[rel] for rel in gone])

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
        if self._pending is not None:
            self._verified.add(parent)
        return target

    def _makedirs(self, folder: str) -> None:
        if folder == self.path or (os.path.isdir(folder) and not os.path.islink(folder)):
            return
        self._makedirs(os.path.dirname(folder))
        if os.path.lexists(folder):  # a file or link where a folder must go
            self.delete(os.path.relpath(folder, self.path), [])
        os.mkdir(folder)

    def written_by_tether(self, rel: str, st: os.stat_result) -> bool:
        """Whether the journal knows this file: Tether wrote it (maybe edited on the node since),
        or rsync was about to write exactly this (a cut before files.record)."""
        if rel in self.records:
            return True
        expected = self.expected.get(rel)
        return bool(expected and expected[0] == st.st_size and expected[1] // 1000 == st.st_mtime_ns // 1000)

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

    def backup(self, paths: list[str]) -> dict[str, Any]:
        """Move ``paths`` (the node's own files) to BACKUP_DIR/<date>/ inside the root, keeping their folders."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder, n = f"{BACKUP_DIR}/{stamp}", 1
        while os.path.lexists(os.path.join(self.path, folder)):
            n += 1
            folder = f"{BACKUP_DIR}/{stamp}-{n}"
        moved: list[str] = []
        errors: list[dict[str, str]] = []
        for rel in paths:
            try:
                rel = clean_relpath(rel)
                source = self.safe_parent(rel, create=False)
                if not os.path.lexists(source):
                    continue
                target = self.safe_parent(f"{folder}/{rel}", create=True)
                os.rename(source, target)
                self.forget([rel])
                moved.append(rel)
            except (OSError, ValueError) as exc:
                errors.append({"path": str(rel), "error": str(exc)})
        return {"folder": folder, "moved": moved, "errors": errors}

    def modified_on_node(self, rel: str, st: os.stat_result) -> bool:
        record = self.records.get(rel)
        if record is None or not stat.S_ISREG(st.st_mode) or _key(st) == record:
            return False
        expected = self.expected.get(rel)
        # rsync keeps mtimes to the microsecond at least.
        return not (expected and expected[0] == st.st_size and expected[1] // 1000 == st.st_mtime_ns // 1000)

    def conflict_copy(self, rel: str, conflicts: list[dict[str, str]]) -> None:
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
        self.forget([rel])
        conflicts.append({"path": rel, "copy": copy})

    # -- operations ----------------------------------------------------------------------------
    def delete(self, rel: str, conflicts: list[dict[str, str]]) -> bool:
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
            if self.modified_on_node(rel, st):
                self.conflict_copy(rel, conflicts)
                return True
            if stat.S_ISREG(st.st_mode) and not self.delete_theirs and not self.written_by_tether(rel, st):
                self.kept.append(rel)  # the run's output, say: the laptop asks before it goes
                return False
            os.unlink(target)
            self.forget([rel])
            return True
        empty = True
        for entry in os.scandir(target):
            if not self.delete(f"{rel}/{entry.name}", conflicts):
                empty = False
        if empty:
            os.rmdir(target)
        return empty

    def put(self, op: dict[str, Any], conflicts: list[dict[str, str]]) -> None:
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
            and (self.modified_on_node(rel, st) or not (self.delete_theirs or self.written_by_tether(rel, st)))
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
                self.expected[rel] = [len(data), int(op["t"])]
                self._journal_now([[rel, len(data), int(op["t"])]])
            os.replace(tmp, target)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        self.remember([rel])

    def mkdir(self, op: dict[str, Any], conflicts: list[dict[str, str]]) -> None:
        rel = clean_relpath(op["p"])
        target = self.safe_parent(rel, create=True)
        if os.path.lexists(target) and not (os.path.isdir(target) and not os.path.islink(target)):
            self.delete(rel, conflicts)
        if not os.path.isdir(target):
            os.mkdir(target)
        if op.get("m") is not None:
            os.chmod(target, int(op["m"]) & 0o7777)

    def link(self, op: dict[str, Any], conflicts: list[dict[str, str]]) -> None:
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

    def apply(self, ops: list[dict[str, Any]], delete_theirs: bool = False) -> dict[str, Any]:
        conflicts: list[dict[str, str]] = []
        self.kept, self.delete_theirs = [], delete_theirs
        skipped: list[str] = []
        errors: list[dict[str, str]] = []
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

    def manifest(self, exclude: Matcher, unknown: list[str] | None = None) -> list[list[Any]]:
        entries: list[list[Any]] = []
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
                    entries.append([rel, "d", 0, 0, st.st_mode & 0o7777, None])
                    stack.append(rel)
                elif stat.S_ISLNK(st.st_mode):
                    entries.append([rel, "l", 0, 0, 0, os.readlink(entry.path)])
                elif stat.S_ISREG(st.st_mode):
                    entries.append([rel, "f", st.st_size, st.st_mtime_ns, st.st_mode & 0o7777, None])
                    if unknown is not None and not self.written_by_tether(rel, st):
                        unknown.append(rel)
        return entries

    def prepare(self, paths: list[str], expected: list[list[Any]], theirs_aside: bool = False) -> list[dict[str, str]]:
        """Move node-edited files aside before rsync overwrites them (and, with ``theirs_aside``, the
        node's own files too); note what rsync will write."""
        conflicts: list[dict[str, str]] = []
        for rel in paths:
            rel = clean_relpath(rel)
            try:
                st = os.lstat(self.abs(rel))
            except OSError:
                continue
            theirs = theirs_aside and stat.S_ISREG(st.st_mode) and not self.written_by_tether(rel, st)
            if theirs or self.modified_on_node(rel, st):
                self.conflict_copy(rel, conflicts)
        self.expect(expected)
        return conflicts


class Files:
    """The handlers; roots stay open for the agent's life (a new agent reopens them)."""

    def __init__(self) -> None:
        self.roots: dict[str, Root] = {}

    def root(self, message: dict[str, Any]) -> Root:
        found = self.roots.get(message.get("root", ""))
        if found is None:
            raise ValueError("remote root not opened: send files.open first")
        return found

    def open(self, message: dict[str, Any]) -> dict[str, Any]:
        home = os.path.realpath(os.path.expanduser("~"))
        wanted = os.path.expanduser(message["root"])
        real = os.path.realpath(wanted)
        refusal = root_refusal(real, home)
        if refusal is not None:
            return {"op": "files.refused", "root": real, "home": home, "reason": refusal}
        if not message.get("claim", True):
            # A reader (`tether pull`) needs the real path only: taking the root over would fence
            # off the sync that runs beside it (its next push "dropped"), and reading creates nothing.
            return {
                "op": "files.open",
                "root": real,
                "home": home,
                "created": False,
                "missing": not os.path.isdir(real),
            }
        created = not os.path.isdir(real)
        if created and not message.get("create", True):
            return {"op": "files.open", "root": real, "home": home, "created": False, "missing": True}
        os.makedirs(real, exist_ok=True)
        self.roots[message["root"]] = Root(real, Matcher(message.get("protect", [])))
        return {"op": "files.open", "root": real, "home": home, "created": created}

    def manifest(self, message: dict[str, Any]) -> dict[str, Any]:
        root = self.root(message)
        unknown: list[str] = []
        entries = root.manifest(Matcher(message.get("exclude", [])), unknown)
        return {"op": "files.manifest", "entries": entries, "unknown": unknown}

    def apply(self, message: dict[str, Any]) -> dict[str, Any]:
        root = self.root(message)
        with root.writing():
            return {"op": "files.apply", **root.apply(message.get("ops", []), bool(message.get("delete_theirs")))}

    def prepare(self, message: dict[str, Any]) -> dict[str, Any]:
        root = self.root(message)
        with root.writing():
            return {
                "op": "files.prepare",
                "conflicts": root.prepare(
                    message.get("paths", []), message.get("expect", []), bool(message.get("theirs_aside"))
                ),
            }

    def record(self, message: dict[str, Any]) -> dict[str, Any]:
        root = self.root(message)
        with root.writing():
            root.remember([clean_relpath(p) for p in message.get("paths", [])])
        return {"op": "files.record"}

    def read(self, message: dict[str, Any]) -> dict[str, Any]:
        root = self.root(message)
        target = root.safe_parent(clean_relpath(message["path"]), create=False)
        st = os.lstat(target)
        with open(target, "rb") as source:
            data = source.read()
        return {
            "op": "files.read",
            "data": base64.b64encode(data).decode(),
            "mode": st.st_mode & 0o7777,
            "mtime_ns": st.st_mtime_ns,
        }

    def hash(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"op": "files.hash", "hashes": self.root(message).hashes(message.get("paths", []))}

    def backup(self, message: dict[str, Any]) -> dict[str, Any]:
        root = self.root(message)
        with root.writing():
            return {"op": "files.backup", **root.backup(message.get("paths", []))}


def register(agent: Any) -> None:
    files = Files()
    for name in ("open", "manifest", "apply", "prepare", "record", "read", "hash", "backup"):
        agent.register(f"files.{name}", getattr(files, name))

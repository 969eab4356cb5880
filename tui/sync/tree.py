"""What a tree holds: entries (file, folder, symlink) keyed by path relative to the root.

``scan_local`` walks the workspace without descending into excluded folders; the node's side
comes from the agent's ``files.manifest`` in the same shape (``entries_from_wire``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tui.node.protocol_files import ManifestRow
from tui.sync.ignore import Rules

FILE, DIR, LINK = "f", "d", "l"


@dataclass(frozen=True)
class Entry:
    kind: str  # FILE, DIR or LINK
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0  # permission bits (files and folders)
    target: str | None = None  # a symlink's target, as written

    def same_as(self, other: Entry | None) -> bool:
        """Whether the node needs nothing for this path (folder modes are not compared)."""
        if other is None or other.kind != self.kind:
            return False
        if self.kind == FILE:
            # Whole microseconds: some filesystems keep no nanoseconds, and rsync sends microseconds.
            return (
                self.size == other.size
                and self.mtime_ns // 1000 == other.mtime_ns // 1000
                and self.mode & 0o777 == other.mode & 0o777
            )
        if self.kind == LINK:
            return self.target == other.target
        return True


Tree = dict[str, Entry]


def entry_of(st: os.stat_result, path: str | os.PathLike[str]) -> Entry | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Entry(FILE, st.st_size, st.st_mtime_ns, mode & 0o7777)
    if stat.S_ISDIR(mode):
        return Entry(DIR, mode=mode & 0o7777)
    if stat.S_ISLNK(mode):
        return Entry(LINK, target=os.readlink(path))
    return None  # sockets, fifos, devices are not synced


def stat_local(root: Path, rel: str) -> Entry | None:
    """The local entry at ``rel`` now, or None when it is gone (or not a syncable kind)."""
    path = os.path.join(root, rel)
    folder = os.path.dirname(path)
    if os.path.realpath(folder) != os.path.join(os.path.realpath(root), os.path.dirname(rel)).rstrip("/"):
        return None  # below a symlink (or a file): that path does not exist in the synced tree
    try:
        return entry_of(os.lstat(path), path)
    except OSError:  # gone, or below a symlink loop
        return None


def scan_local(root: Path, rules: Rules, under: str = "", skipped: list[str] | None = None) -> Tree:
    """Every entry below ``under`` (the whole root by default) that is not excluded.

    ``skipped`` collects the excluded paths met on the way (excluded folders are not entered).
    """
    tree: Tree = {}
    stack = [under]
    while stack:
        folder = stack.pop()
        try:
            scan = list(os.scandir(os.path.join(root, folder) if folder else root))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for item in scan:
            rel = f"{folder}/{item.name}" if folder else item.name
            try:
                entry = entry_of(item.stat(follow_symlinks=False), item.path)
            except OSError:
                continue
            if entry is None or rules.excluded_child(rel, entry.kind == DIR):
                if skipped is not None:
                    skipped.append(rel)
                continue
            tree[rel] = entry
            if entry.kind == DIR:
                stack.append(rel)
    return tree


def entries_from_wire(rows: Iterable[ManifestRow]) -> Tree:
    """The agent's ``files.manifest`` rows -> a Tree."""
    return {row[0]: Entry(row[1], row[2], row[3], row[4], row[5]) for row in rows}


def count_files(tree: Tree) -> int:
    return sum(1 for entry in tree.values() if entry.kind != DIR)


def file_hashes(root: Path, paths: Iterable[str]) -> dict[str, str]:
    """sha256 of each regular file in ``paths`` (as the agent's ``files.hash`` gives them)."""
    found: dict[str, str] = {}
    for rel in paths:
        path = os.path.join(root, rel)
        if stat_local(root, rel) is None or not os.path.isfile(path) or os.path.islink(path):
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
        found[rel] = digest.hexdigest()
    return found

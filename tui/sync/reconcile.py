"""Reconcile: what the node needs so that its tree equals the local one. Pure functions.

Two inputs give the same kind of ``Plan``: a full comparison of both trees (first sync, after a
watcher overflow or a changed .gitignore) and a set of changed paths with their local entries
now (every push while watching). Remote paths the local rules exclude are never in a plan, so
ignored and protected files on the node are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tui.sync.tree import DIR, FILE, LINK, Entry, Tree

Excluded = Callable[[str, bool], bool]
# Below this many deleted files a push never halts: deleting 3 of 4 files is an ordinary edit.
MIN_DELETES_TO_HALT = 10


@dataclass
class Plan:
    deletes: list[str] = field(default_factory=list)  # top-most remote paths to remove
    mkdirs: list[tuple[str, int]] = field(default_factory=list)  # (path, mode), parents first
    links: list[tuple[str, str]] = field(default_factory=list)  # (path, target)
    files: list[tuple[str, Entry]] = field(default_factory=list)  # to send
    deleted_files: int = 0  # files and links removed, counting those inside deleted folders
    # Full comparisons only: the whole local tree was compared, so rsync may send the root
    # recursively, leaving out ``skipped`` (the excluded paths the scan met, not entered).
    full: bool = False
    skipped: list[str] = field(default_factory=list)
    known_absent: set[str] = field(default_factory=set)  # files the node does not have

    @property
    def empty(self) -> bool:
        return not (self.deletes or self.mkdirs or self.links or self.files)

    @property
    def bytes_to_send(self) -> int:
        return sum(entry.size for _, entry in self.files)

    def paths(self) -> list[str]:
        """Every path the plan touches (for pending counts and conflict checks)."""
        return self.deletes + [p for p, _ in self.mkdirs] + [p for p, _ in self.links] + [p for p, _ in self.files]


def _depth(path: str) -> int:
    return path.count("/")


def _add_present(plan: Plan, path: str, entry: Entry, remote: Entry | None) -> None:
    if entry.same_as(remote):
        return
    if entry.kind == DIR:
        plan.mkdirs.append((path, entry.mode))
    elif entry.kind == LINK:
        plan.links.append((path, entry.target or ""))
    elif entry.kind == FILE:
        plan.files.append((path, entry))


def _finish(plan: Plan) -> Plan:
    plan.deletes.sort()
    # Only the top-most of nested deletes: the node removes a folder with what is in it.
    top: list[str] = []
    for path in plan.deletes:
        if not top or not path.startswith(top[-1] + "/"):
            top.append(path)
    plan.deletes = top
    plan.mkdirs.sort(key=lambda item: (_depth(item[0]), item[0]))
    plan.files.sort()
    plan.links.sort()
    return plan


def reconcile(local: Tree, remote: Tree, excluded: Excluded, skipped: Iterable[str] = ()) -> Plan:
    """Compare whole trees: send what differs, delete what the laptop no longer has."""
    plan = Plan()
    for path, entry in local.items():
        theirs = remote.get(path)
        _add_present(plan, path, entry, theirs)
        if theirs is not None and theirs.kind != entry.kind and not excluded(path, theirs.kind == DIR):
            plan.deletes.append(path)  # a folder became a file (or back): rsync will not replace it
        if theirs is None and entry.kind == FILE:
            plan.known_absent.add(path)
    plan.full = True
    plan.skipped = list(skipped)
    for path, entry in remote.items():
        if path in local or excluded(path, entry.kind == DIR):
            continue
        plan.deletes.append(path)
        if entry.kind != DIR:
            plan.deleted_files += 1
    return _finish(plan)


def plan_changes(changed: Mapping[str, Entry | None], excluded: Excluded, index: RemoteIndex | None = None) -> Plan:
    """Changed paths and what each is locally now (None: gone) -> the ops for the node.

    Without knowing the node's state each present path is sent (the node skips nothing that
    differs); ``index``, when given, counts the files a delete removes for the safety check.
    """
    plan = Plan()
    for path, entry in changed.items():
        if excluded(path, entry is not None and entry.kind == DIR):
            continue
        if entry is None:
            plan.deletes.append(path)
        else:
            _add_present(plan, path, entry, None)
    _finish(plan)
    # Counted once the deletes are top-most only: a removed folder and the files in it all arrive
    # as changed paths, and counting each of them said "166 of the 61 files".
    plan.deleted_files = (
        sum(index.files_under(path) for path in plan.deletes) if index is not None else len(plan.deletes)
    )
    return plan


def deletes_exceed(deleted_files: int, remote_files: int, threshold: float) -> bool:
    """The root-emptied rule: a push that would delete more than ``threshold`` of the node's files."""
    if deleted_files < MIN_DELETES_TO_HALT or remote_files <= 0:
        return False
    return deleted_files > threshold * remote_files


class RemoteIndex:
    """What the node holds as far as Tether knows: every path (folders too), kept up to date by
    pushes, and how many files (and links) lie below each folder."""

    def __init__(self, paths: Iterable[str] = (), folders: Iterable[str] = ()) -> None:
        self._files: set[str] = set()
        self._under: dict[str, int] = {}
        self._children: dict[str, set[str]] = {}  # folder -> the paths directly in it ("" = root)
        for folder in folders:
            self.add_folder(folder)
        for path in paths:
            self.add(path)

    @staticmethod
    def _folders(path: str) -> list[str]:
        parts = path.split("/")
        return ["/".join(parts[:i]) for i in range(len(parts))]

    @classmethod
    def of_tree(cls, tree: Tree) -> RemoteIndex:
        return cls(
            (path for path, entry in tree.items() if entry.kind != DIR),
            (path for path, entry in tree.items() if entry.kind == DIR),
        )

    @property
    def total(self) -> int:
        return len(self._files)

    def _place(self, path: str) -> None:
        parent = ""
        for part in path.split("/"):
            child = f"{parent}/{part}" if parent else part
            self._children.setdefault(parent, set()).add(child)
            parent = child

    def add(self, path: str) -> None:
        """A file or link at ``path`` (a folder there is replaced)."""
        if path in self._files:
            return
        if path in self._children:
            self.remove(path)
        self._place(path)
        self._files.add(path)
        for folder in self._folders(path):
            self._under[folder] = self._under.get(folder, 0) + 1

    def add_folder(self, path: str) -> None:
        if path in self._files:
            self.remove(path)
        self._place(path)
        self._children.setdefault(path, set())

    def children(self, folder: str) -> set[str]:
        """The paths directly in ``folder`` on the node, as far as the index knows."""
        return set(self._children.get(folder, ()))

    def remove(self, path: str) -> None:
        """Remove a file, or a folder with everything below it."""
        parent = path.rpartition("/")[0]
        siblings = self._children.get(parent)
        if siblings is not None:
            siblings.discard(path)
        stack = [path]
        while stack:
            item = stack.pop()
            stack.extend(self._children.pop(item, ()))
            if item in self._files:
                self._files.discard(item)
                for folder in self._folders(item):
                    self._under[folder] -= 1
                    if not self._under[folder]:
                        del self._under[folder]

    def files_under(self, path: str) -> int:
        return 1 if path in self._files else self._under.get(path, 0)

    def apply(self, plan: Plan) -> None:
        for path in plan.deletes:
            self.remove(path)
        for path, _ in plan.mkdirs:
            self.add_folder(path)
        for path in [p for p, _ in plan.files] + [p for p, _ in plan.links]:
            self.add(path)


def vanished_children(
    changed: Mapping[str, Entry | None], index: RemoteIndex, exists: Callable[[str], bool]
) -> list[str]:
    """Paths on the node inside a changed folder that the laptop no longer has.

    A folder moved away is reported alone, without what was in it; when a folder of that name is
    back by the next push, only this finds the old contents the node still holds.
    """
    return sorted(
        child
        for path, entry in changed.items()
        if entry is not None and entry.kind == DIR
        for child in index.children(path)
        if child not in changed and not exists(child)
    )

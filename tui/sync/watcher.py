"""File events -> changed paths, with the ignore rules applied before anything is watched.

On Linux the watcher uses inotify directly (tui/sync/inotify.py), read in the asyncio loop:
one watch per synced folder, none in ignored ones. Elsewhere it uses watchdog's observer (FSEvents
on macOS watches a whole tree at once, so there is no per-folder cost to avoid) and drops events
for excluded paths. Either way it reports relative paths through ``on_change``; coalescing them
into change sets is the engine's job. ``on_rescan`` asks for a full comparison: the kernel
dropped events, or a .gitignore changed so what is excluded may have changed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tui.sync import inotify
from tui.sync.ignore import Rules

if TYPE_CHECKING:  # watchdog is imported only where inotify is missing
    from watchdog.observers.api import BaseObserver

OnChange = Callable[[Iterable[str]], None]
OnRescan = Callable[[str], None]


class InotifyWatcher:
    def __init__(self, root: Path, rules: Rules, on_change: OnChange, on_rescan: OnRescan) -> None:
        self.root = str(root)
        self.rules = rules
        self._on_change = on_change
        self._on_rescan = on_rescan
        self._ino: inotify.Inotify | None = None
        self._path_of: dict[int, str] = {}  # wd -> folder relative to the root ("" = root)
        self._wd_of: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def watch_count(self) -> int:
        return len(self._path_of)

    def start(self) -> None:
        self._ino = inotify.Inotify()
        self._loop = asyncio.get_running_loop()
        self._watch_tree("")
        self._loop.add_reader(self._ino.fd, self.drain)

    def close(self) -> None:
        if self._ino is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._ino.fd)
            self._ino.close()
            self._ino = None

    def _watch_tree(self, top: str) -> list[str]:
        """Watch ``top`` and every synced folder below it; returns the paths found below it."""
        found: list[str] = []
        stack = [top]
        while stack:
            folder = stack.pop()
            absolute = os.path.join(self.root, folder) if folder else self.root
            try:
                self._add(folder, absolute)
                entries = list(os.scandir(absolute))
            except OSError as exc:
                if exc.errno == 28:  # ENOSPC: out of inotify watches
                    self._on_rescan(f"out of inotify watches at {folder or '.'} (raise fs.inotify.max_user_watches)")
                continue
            for entry in entries:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if self.rules.excluded_child(rel, is_dir):
                    continue
                found.append(rel)
                if is_dir:
                    stack.append(rel)
        return found

    def _add(self, folder: str, absolute: str) -> None:
        assert self._ino is not None
        wd = self._ino.add(absolute)
        old = self._path_of.get(wd)
        if old is not None and old != folder:
            self._wd_of.pop(old, None)
        self._path_of[wd] = folder
        self._wd_of[folder] = wd

    def _unwatch_tree(self, top: str) -> None:
        assert self._ino is not None
        prefix = top + "/"
        for folder in [f for f in self._wd_of if f == top or f.startswith(prefix)]:
            wd = self._wd_of.pop(folder)
            self._path_of.pop(wd, None)
            self._ino.remove(wd)

    def drain(self) -> None:
        """Handle every event the kernel has queued (also called to make a barrier exact)."""
        if self._ino is None:
            return
        changed: list[str] = []
        verdicts: dict[tuple[str, bool], bool] = {}  # an editor's save is several events per path
        for event in self._ino.read():
            if event.mask & inotify.IN_Q_OVERFLOW:
                self._on_rescan("the kernel dropped file events (queue overflow)")
                continue
            folder = self._path_of.get(event.wd)
            if folder is None:
                continue
            if event.mask & inotify.IN_IGNORED:
                self._path_of.pop(event.wd, None)
                if self._wd_of.get(folder) == event.wd:
                    del self._wd_of[folder]
                continue
            if not event.name:  # the folder itself (deleted or moved): its parent reports it
                continue
            rel = f"{folder}/{event.name}" if folder else event.name
            is_dir = bool(event.mask & inotify.IN_ISDIR)
            if event.name == ".gitignore":
                self.rules.forget(folder)
                self._on_rescan(f"{rel} changed")
            excluded = verdicts.get((rel, is_dir))
            if excluded is None:
                excluded = verdicts[(rel, is_dir)] = self.rules.excluded(rel, is_dir)
            if excluded:
                continue
            changed.append(rel)
            if is_dir and event.mask & (inotify.IN_MOVED_FROM | inotify.IN_DELETE):
                self._unwatch_tree(rel)
            if is_dir and event.mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO):
                # Files written into a new folder before its watch existed: found by the walk.
                changed.extend(self._watch_tree(rel))
        if changed:
            self._on_change(changed)


class WatchdogWatcher:
    """Portable fallback: watchdog's recursive observer, excluded paths dropped."""

    def __init__(self, root: Path, rules: Rules, on_change: OnChange, on_rescan: OnRescan) -> None:
        self.root = str(root)
        self.rules = rules
        self._on_change = on_change
        self._on_rescan = on_rescan
        self._observer: BaseObserver | None = None
        self.watch_count = 0

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        loop = asyncio.get_running_loop()
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:  # type: ignore[no-untyped-def]
                paths = [event.src_path, getattr(event, "dest_path", "")]
                loop.call_soon_threadsafe(watcher._handle, [os.fsdecode(p) for p in paths if p], event.is_directory)

        self._observer = Observer()
        self._observer.schedule(Handler(), self.root, recursive=True)
        self._observer.start()
        self.watch_count = 1

    def _handle(self, paths: list[str], is_dir: bool) -> None:
        changed = []
        for absolute in paths:
            rel = os.path.relpath(absolute, self.root).replace(os.sep, "/")
            if rel == "." or rel.startswith("../"):
                continue
            if os.path.basename(rel) == ".gitignore":
                self.rules.forget(os.path.dirname(rel))
                self._on_rescan(f"{rel} changed")
            if not self.rules.excluded(rel, is_dir):
                changed.append(rel)
                if is_dir and os.path.isdir(absolute):
                    changed.extend(_walk(absolute, rel, self.rules))
        if changed:
            self._on_change(changed)

    def drain(self) -> None:
        """watchdog delivers from its own thread: nothing to read here."""

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None


def _walk(absolute: str, rel: str, rules: Rules) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(absolute):
        base = os.path.relpath(folder, absolute).replace(os.sep, "/")
        prefix = rel if base == "." else f"{rel}/{base}"
        dirs[:] = [d for d in dirs if not rules.excluded_child(f"{prefix}/{d}", True)]
        found += [f"{prefix}/{name}" for name in dirs + files if not rules.excluded_child(f"{prefix}/{name}", False)]
    return found


Watcher = InotifyWatcher | WatchdogWatcher


def make_watcher(root: Path, rules: Rules, on_change: OnChange, on_rescan: OnRescan) -> Watcher:
    if inotify.available():
        return InotifyWatcher(root, rules, on_change, on_rescan)
    return WatchdogWatcher(root, rules, on_change, on_rescan)

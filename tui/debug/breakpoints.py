"""The user's breakpoints, watches and exception filters for one workspace, kept across runs.

They are the user's, not the debuggee's: a restart, a crash or a new console must not lose them, so
every change is written at once (atomically, in Tether's state folder, one file per workspace) and
read back by the next console. Paths are kept relative to the workspace's local root, which is
what the user edits; ``PathMap`` turns them into the node's paths for the adapter and back, with
the same roots as launch.json's pathMappings.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

from tui.dap_model import SourceBreakpoint
from tui.state import write_json_atomic

# debugpy's exception filters: "raised" stops on every raise (noisy), "uncaught" on what would end
# the run, "userUnhandled" on what leaves the user's own code.
DEFAULT_EXCEPTION_FILTERS = ("uncaught",)


@dataclass(frozen=True)
class PathMap:
    """Local root <-> remote root, as launch.json's pathMappings say it."""

    local_root: Path
    remote_root: str  # absolute on the node (``~`` already expanded by the caller)

    def to_remote(self, local: Path) -> str:
        relative = local.resolve().relative_to(self.local_root)
        return posixpath.join(self.remote_root, *relative.parts)

    def to_local(self, remote: str) -> Path | None:
        """The laptop's copy of a node path, or None when it lies outside the synced root (a
        library on the node, say): then only the node has it."""
        root = self.remote_root.rstrip("/") + "/"
        if not remote.startswith(root):
            return None
        return self.local_root.joinpath(*remote[len(root) :].split("/"))


class DebugMemory:
    """Breakpoints (by file relative to the local root, by line), watch expressions and exception
    filters; saved on every change to ``path``. An unreadable file reads as empty and is replaced
    at the next change: a lost breakpoint is a nuisance, a console that will not open is worse."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._breakpoints: dict[str, dict[int, SourceBreakpoint]] = {}
        self.watches: list[str] = []
        self.exception_filters: tuple[str, ...] = DEFAULT_EXCEPTION_FILTERS
        # Every process being debugged shares these breakpoints: each listens, and sends a file's
        # breakpoints (or the filters: "") again when another process's debugger changed them.
        self._listeners: list[Callable[[str], None]] = []
        if path is not None:
            self._load(path)

    def listen(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[str], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def tell_others(self, what: str, source: Callable[[str], None] | None) -> None:
        """A file's breakpoints (``what``: its relative path) or the exception filters (``""``)
        changed: every listener but ``source`` hears it."""
        for listener in list(self._listeners):
            if listener != source:
                listener(what)

    # -- reading ----------------------------------------------------------------------------

    def files(self) -> list[str]:
        return sorted(self._breakpoints)

    def breakpoints(self, relative: str) -> list[SourceBreakpoint]:
        return [self._breakpoints[relative][line] for line in sorted(self._breakpoints.get(relative, {}))]

    def at(self, relative: str, line: int) -> SourceBreakpoint | None:
        return self._breakpoints.get(relative, {}).get(line)

    def all(self) -> dict[str, list[SourceBreakpoint]]:
        return {relative: self.breakpoints(relative) for relative in self.files()}

    # -- changing ---------------------------------------------------------------------------

    def toggle(self, relative: str, line: int) -> SourceBreakpoint | None:
        """Add a plain breakpoint at ``line``, or remove the one there; returns the new one."""
        lines = self._breakpoints.setdefault(relative, {})
        if line in lines:
            del lines[line]
            added = None
        else:
            added = lines[line] = SourceBreakpoint(line)
        self._tidy(relative)
        self._save()
        return added

    def put(self, relative: str, breakpoint: SourceBreakpoint) -> None:
        """Set (or replace) the breakpoint at its line: a condition, a hit count, a log message."""
        self._breakpoints.setdefault(relative, {})[breakpoint.line] = breakpoint
        self._save()

    def move(self, relative: str, line: int, to_line: int) -> None:
        """The adapter put a breakpoint on another line (the next one with code): keep that one."""
        lines = self._breakpoints.get(relative, {})
        if line in lines and to_line not in lines and line != to_line:
            lines[to_line] = replace(lines.pop(line), line=to_line)
            self._save()

    def add_watch(self, expression: str) -> None:
        if expression and expression not in self.watches:
            self.watches.append(expression)
            self._save()

    def remove_watch(self, expression: str) -> None:
        if expression in self.watches:
            self.watches.remove(expression)
            self._save()

    def set_exception_filters(self, filters: Iterable[str]) -> None:
        self.exception_filters = tuple(dict.fromkeys(filters))
        self._save()

    # -- the file ---------------------------------------------------------------------------

    def _tidy(self, relative: str) -> None:
        if not self._breakpoints.get(relative):
            self._breakpoints.pop(relative, None)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "breakpoints": {relative: [_to_json(bp) for bp in self.breakpoints(relative)] for relative in self.files()},
            "watches": self.watches,
            "exception_filters": list(self.exception_filters),
        }
        write_json_atomic(self.path, data)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict):
            return
        for relative, items in (data.get("breakpoints") or {}).items():
            if isinstance(relative, str) and isinstance(items, list):
                for item in items:
                    bp = _from_json(item)
                    if bp is not None:
                        self._breakpoints.setdefault(relative, {})[bp.line] = bp
        self.watches = [w for w in data.get("watches") or [] if isinstance(w, str)]
        filters = data.get("exception_filters")
        if isinstance(filters, list):
            self.exception_filters = tuple(f for f in filters if isinstance(f, str))


class _SavedBreakpoint(TypedDict, total=False):
    """A breakpoint in the workspace's file (the empty texts left out)."""

    line: int
    condition: str
    hit_condition: str
    log_message: str


def _to_json(bp: SourceBreakpoint) -> _SavedBreakpoint:
    data: _SavedBreakpoint = {"line": bp.line}
    if bp.condition:
        data["condition"] = bp.condition
    if bp.hit_condition:
        data["hit_condition"] = bp.hit_condition
    if bp.log_message:
        data["log_message"] = bp.log_message
    return data


def _from_json(item: object) -> SourceBreakpoint | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("line"), int) or item["line"] < 1:
        return None
    texts = {key: item.get(key, "") for key in ("condition", "hit_condition", "log_message")}
    if not all(isinstance(text, str) for text in texts.values()):
        return None
    return SourceBreakpoint(int(item["line"]), **texts)

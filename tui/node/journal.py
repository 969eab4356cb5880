"""The journal: what Tether last wrote into one remote root, so a node-side edit can be told from
Tether's own write, and the node's own files from Tether's.

Stdlib only (it runs on the node). An append-only file of JSON lines under STATE_DIR, one per
root (named for its path's hash, beside the root's owner file), each line one of:
  [path, size, mtime_ns, inode]  Tether wrote this file (``records``)
  [path, size, mtime_ns]         rsync is about to write this (``expected``)
  [path]                         forgotten: deleted, moved aside or backed up
The last line for a path wins. A regular file that differs from its record was edited on the node
and is kept beside the new version; one with neither a record nor a matching expectation is the
node's own (the run's output, say), which the laptop asks about before it goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable

STATE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "tether", "sync")

Line = list[str | int]  # one journal line, as above


def stat_key(st: os.stat_result) -> list[int]:
    """What a record holds of a file: size, mtime_ns, inode."""
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _matches(expected: list[int] | None, st: os.stat_result) -> bool:
    # rsync keeps mtimes to the microsecond at least.
    return bool(expected and expected[0] == st.st_size and expected[1] // 1000 == st.st_mtime_ns // 1000)


class Journal:
    """One root's journal: its lines in memory, and the file they are appended to."""

    def __init__(self, root: str) -> None:
        os.makedirs(STATE_DIR, exist_ok=True)
        digest = hashlib.sha256(root.encode()).hexdigest()[:16]
        self.path = os.path.join(STATE_DIR, f"{digest}.jsonl")
        self.owner_path = os.path.join(STATE_DIR, f"{digest}.owner")  # the root's lock (tui/node/files.py)
        self.records: dict[str, list[int]] = {}  # path -> stat_key of what Tether wrote
        # (size, mtime) rsync is about to write, so a cut between rsync and files.record does not
        # make Tether's own write look like a node-side edit.
        self.expected: dict[str, list[int]] = {}
        self._pending: list[Line] | None = None

    @property
    def in_request(self) -> bool:
        """Whether a request is under way (its lines are written once, at its end)."""
        return self._pending is not None

    def load(self) -> None:
        """Read the file (under the root's lock); rewrite it when old lines far outnumber live ones."""
        lines = 0
        try:
            with open(self.path, encoding="utf-8") as journal:
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
            tmp = self.path + ".new"
            with open(tmp, "w", encoding="utf-8") as out:
                out.writelines(json.dumps([path, *key]) + "\n" for path, key in self.records.items())
                out.writelines(json.dumps([path, *key]) + "\n" for path, key in self.expected.items())
            os.replace(tmp, self.path)

    def begin(self) -> None:
        """A request starts: its lines wait, to be appended together by ``end`` however it ends."""
        self._pending = []

    def end(self) -> None:
        entries, self._pending = self._pending or [], None
        self.write(entries)

    def write(self, entries: list[Line]) -> None:
        if self._pending is not None:  # inside one request: written once at its end
            self._pending.extend(entries)
            return
        if entries:
            self.write_now(entries)

    def write_now(self, entries: list[Line]) -> None:
        """Write ``entries`` at once, even inside a request (whose lines wait for its end)."""
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write("".join(json.dumps(e) + "\n" for e in entries))

    # -- what changes it -----------------------------------------------------------------------
    def remember(self, found: Iterable[tuple[str, os.stat_result | None]]) -> None:
        """Tether just wrote these paths (their stat now; None: gone)."""
        entries: list[Line] = []
        for rel, st in found:
            if st is None:
                if self.records.pop(rel, None) is not None:
                    entries.append([rel])
                continue
            if stat.S_ISREG(st.st_mode):
                self.records[rel] = stat_key(st)
                self.expected.pop(rel, None)
                entries.append([rel, *stat_key(st)])
        self.write(entries)

    def expect(self, expected: Iterable[tuple[str, int, int]]) -> None:
        """rsync is about to write these (path, size, mtime_ns)."""
        expected = list(expected)
        for rel, size, mtime_ns in expected:
            self.expected[rel] = [size, mtime_ns]
        self.write([[rel, size, mtime_ns] for rel, size, mtime_ns in expected])

    def expect_now(self, rel: str, size: int, mtime_ns: int) -> None:
        """On disk before the write lands: a cut that kills the agent after it (the request's own
        lines come at its end) must not make this write look like a node-side edit."""
        self.expected[rel] = [size, mtime_ns]
        self.write_now([[rel, size, mtime_ns]])

    def forget(self, rels: list[str]) -> None:
        gone: list[Line] = []
        for rel in rels:
            had_expectation = self.expected.pop(rel, None) is not None
            if self.records.pop(rel, None) is not None or had_expectation:
                gone.append([rel])
        self.write(gone)

    # -- what it tells -------------------------------------------------------------------------
    def written_by_tether(self, rel: str, st: os.stat_result) -> bool:
        """Whether the journal knows this file: Tether wrote it (maybe edited on the node since),
        or rsync was about to write exactly this (a cut before files.record)."""
        return rel in self.records or _matches(self.expected.get(rel), st)

    def modified_on_node(self, rel: str, st: os.stat_result) -> bool:
        record = self.records.get(rel)
        if record is None or not stat.S_ISREG(st.st_mode) or stat_key(st) == record:
            return False
        return not _matches(self.expected.get(rel), st)

"""The run's output log on the node: a rotating writer, a tail that yields only new lines, a pager.

The run pane's output is piped (``tmux pipe-pane``) into ``python -m tui.node.runlog write LOG``,
so the whole output survives any disconnect and any agent. Files: ``run.log`` (newest), then
``run.log.1`` ... ``run.log.KEEP`` (oldest); the writer rotates when ``run.log`` grows past
``MAX_BYTES``. Agents only read: each keeps its own ``Tail``, so two consoles never fight.

Stdlib only: shipped to the node with the agent.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_BYTES = 8 * 1024 * 1024
KEEP = 3
HISTORY_LINES = 200
MAX_LINE_CHARS = 2000

# CSI (colours, cursor moves), OSC (titles, ended by BEL or ST) and two-byte escapes.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_line(raw: str) -> str:
    """One line of terminal output as plain text: escapes gone, a ``\\r`` rewrite keeps its last text."""
    text = _ESCAPES.sub("", raw).rstrip("\r")
    if "\r" in text:
        text = text.rsplit("\r", 1)[-1]
    return _CONTROL.sub("", text)[:MAX_LINE_CHARS]


def split_lines(data: bytes) -> tuple[list[str], bytes]:
    """Complete lines of ``data`` (cleaned) and the unfinished rest."""
    *complete, rest = data.split(b"\n")
    return [clean_line(line.decode("utf-8", "replace")) for line in complete], rest


def log_files(path: Path, keep: int = KEEP) -> list[Path]:
    """The existing log files, oldest first."""
    rotated = [path.with_name(f"{path.name}.{n}") for n in range(keep, 0, -1)]
    return [p for p in (*rotated, path) if p.exists()]


# -- writing (runs under tmux pipe-pane) ------------------------------------------------------
def rotate(path: Path, keep: int = KEEP) -> None:
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.1"))


def write_forever(path: Path, source: int = 0, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
    """Append everything read from fd ``source`` to ``path``, rotating at a line end past ``max_bytes``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = open(path, "ab", buffering=0)
    try:
        while chunk := os.read(source, 65536):
            while chunk:
                room = max_bytes - out.tell()
                cut = len(chunk) if len(chunk) <= room else chunk.rfind(b"\n", 0, max(room, 0)) + 1
                if cut <= 0:  # no line end fits: finish the current line first
                    cut = chunk.find(b"\n") + 1 or len(chunk)
                out.write(chunk[:cut])
                if out.tell() >= max_bytes and chunk[cut - 1 : cut] == b"\n":
                    out.close()
                    rotate(path, keep)
                    out = open(path, "ab", buffering=0)
                chunk = chunk[cut:]
    finally:
        out.close()


# -- reading ---------------------------------------------------------------------------------
class Tail:
    """New complete lines of a log that the writer may rotate underneath."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._inode: int | None = None
        self._rest = b""

    def start(self, history: int = HISTORY_LINES) -> list[str]:
        """Open at the current end; returns the last ``history`` lines before that point."""
        self._open(at_end=True)
        if self._file is None:
            return []
        end = self._file.tell()
        back = min(end, 64 * 1024)
        self._file.seek(end - back)
        data = self._file.read(back)
        newline = data.rfind(b"\n")
        if newline >= 0 or back == end:  # an unfinished last line is read again when it ends
            end = end - back + newline + 1
        self._file.seek(end)
        return last_lines(self.path, history, end)

    def _open(self, *, at_end: bool) -> None:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            self._file, self._inode = None, None
            return
        if self._file is not None:
            self._file.close()
        self._file = handle
        self._inode = os.fstat(handle.fileno()).st_ino
        if at_end:
            handle.seek(0, os.SEEK_END)

    def read_new(self) -> list[str]:
        """Lines completed since the last call (the old file's end first after a rotation)."""
        if self._file is None:
            self._open(at_end=False)
            if self._file is None:
                return []
        data = self._file.read()
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        if current is not None and current.st_ino != self._inode:
            self._open(at_end=False)  # rotated: the old file's tail is read, go on with the new one
            data += self._file.read() if self._file else b""
        elif current is not None and current.st_size < self._file.tell():
            self._file.seek(0)  # truncated by hand
            data += self._file.read()
        lines, self._rest = split_lines(self._rest + data)
        return lines

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class Page:
    lines: list[str]
    start: int  # offset of the first line in the concatenated logs (pass as ``before`` for older)
    total: int  # bytes in all log files


def _concatenated(path: Path) -> list[tuple[Path, int]]:
    out = []
    for file in log_files(path):
        try:
            out.append((file, file.stat().st_size))
        except FileNotFoundError:
            continue
    return out


def _read_span(files: list[tuple[Path, int]], start: int, end: int) -> bytes:
    chunks, offset = [], 0
    for file, size in files:
        lo, hi = max(start, offset), min(end, offset + size)
        if lo < hi:
            with open(file, "rb") as handle:
                handle.seek(lo - offset)
                chunks.append(handle.read(hi - lo))
        offset += size
    return b"".join(chunks)


def page(path: Path, before: int | None, count: int) -> Page:
    """Up to ``count`` complete lines ending at byte ``before`` (None: the end) of all the logs."""
    files = _concatenated(path)
    total = sum(size for _, size in files)
    end = total if before is None else max(0, min(before, total))
    start, block, data = end, 64 * 1024, b""
    while start > 0 and data.count(b"\n") <= count:
        start, block = max(0, start - block), block * 2
        data = _read_span(files, start, end)
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1  # an unfinished last line is not a line yet
        end -= len(data) - cut
        data = data[:cut]
    pieces = data.split(b"\n")[:-1]
    if start > 0:
        pieces = pieces[1:]  # may begin in the middle of a line
    pieces = pieces[-count:] if count > 0 else []
    first = end - sum(len(p) + 1 for p in pieces)
    return Page([clean_line(p.decode("utf-8", "replace")) for p in pieces], first, total)


def last_lines(path: Path, count: int, end: int | None = None) -> list[str]:
    """The last ``count`` complete lines of the current ``run.log`` up to byte ``end``."""
    if count <= 0 or not path.exists():
        return []
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END) if end is None else end
        start, data = size, b""
        while start > 0 and data.count(b"\n") <= count:
            start = max(0, start - 64 * 1024)
            handle.seek(start)
            data = handle.read(size - start)
    lines, _rest = split_lines(data)
    if start > 0:
        lines = lines[1:]
    return lines[-count:]


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "write":
        write_forever(Path(argv[1]).expanduser())
        return 0
    sys.stderr.write("usage: python -m tui.node.runlog write LOGFILE\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

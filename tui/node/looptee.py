"""The debug loop's output tee: what the run prints, and the loop's own ``tether:`` lines, go to the
pane, to output.log (moved to output.log.1 past 64 MiB at a start) and to output.tail (what a
terminal shows of the last lines: colours gone, a progress bar's ``\\r`` redraws as its last text).

Stdlib only (shipped to the node).
"""

from __future__ import annotations

import codecs
import collections
import os
import re
import time
from pathlib import Path

from tui.node import loopstate as ls

LOG_ROTATE_BYTES = 64 * 1024 * 1024
TAIL_EVERY_S = 1.0  # output.tail is rewritten at most this often while the state stays the same
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")  # colours, titles


class OutputTee:
    def __init__(self, directory: Path, out_fd: int = 1) -> None:
        self.dir = directory
        self.out_fd = out_fd
        self.pane_ok = True
        self.pane_at_line_start = True
        self.log = open(directory / ls.LOG_NAME, "ab", buffering=0)
        os.chmod(directory / ls.LOG_NAME, 0o600)
        self.tail: collections.deque[str] = collections.deque(ls.read_tail(directory), maxlen=ls.TAIL_LINES)
        self.partial = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tail_dirty = False
        self.tail_written = 0.0

    def _pane(self, data: bytes) -> None:
        if not self.pane_ok or not data:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.out_fd, view) :]
            self.pane_at_line_start = data.endswith(b"\n")
        except OSError:  # the pane is gone (SIGHUP follows); keep logging
            self.pane_ok = False

    def output(self, data: bytes) -> None:
        """Bytes the run wrote."""
        self._pane(data)
        self.log.write(data)
        text = self.partial + _ESCAPES.sub("", self.decoder.decode(data))
        *lines, self.partial = text.split("\n")
        for line in lines:
            self.tail.append(line.rstrip("\r").rsplit("\r", 1)[-1])  # what a terminal shows of it
        cut = self.partial.rfind("\r", 0, len(self.partial) - 1)  # progress bars redraw with \r only
        self.partial = self.partial[cut + 1 :][-4096:]
        self.tail_dirty = True

    def say(self, text: str) -> None:
        """A line of the loop's own in the pane, the log and the tail."""
        prefix = b"" if self.pane_at_line_start else b"\n"
        self._pane(prefix + f"tether: {text}\n".encode())
        log_prefix = "\n" if self.partial else ""
        self.log.write(f"{log_prefix}[{time.strftime('%Y-%m-%d %H:%M:%S')}] tether: {text}\n".encode())
        if self.partial:
            self.tail.append(self.partial.rsplit("\r", 1)[-1])
            self.partial = ""
        self.tail.append(f"tether: {text}")
        self.tail_dirty = True

    def recent(self, lines: int) -> list[str]:
        """The last ``lines`` whole lines of output."""
        return list(self.tail)[-lines:]

    def rotate_log(self) -> None:
        """Before a start: a log past LOG_ROTATE_BYTES becomes output.log.1 and a new one begins."""
        path = self.dir / ls.LOG_NAME
        if path.stat().st_size > LOG_ROTATE_BYTES:
            self.log.close()
            os.replace(path, self.dir / (ls.LOG_NAME + ".1"))
            self.log = open(path, "ab", buffering=0)
            os.chmod(path, 0o600)

    def write_tail(self, now: float, at_once: bool) -> None:
        """output.tail anew when lines came since, at most every TAIL_EVERY_S unless ``at_once``."""
        if self.tail_dirty and (now - self.tail_written >= TAIL_EVERY_S or at_once):
            lines = list(self.tail) + ([self.partial.rsplit("\r", 1)[-1]] if self.partial else [])
            ls.write_tail(self.dir, lines[-ls.TAIL_LINES :])
            self.tail_dirty, self.tail_written = False, now

"""Processes we started, identified by pid AND start time so a recycled pid is never signalled."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .wait import wait_until


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class ProcessRef:
    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        fields = _stat_fields(pid)
        if fields is None:
            raise ProcessLookupError(pid)
        return cls(pid, int(fields[19]))

    def is_alive(self) -> bool:
        fields = _stat_fields(self.pid)
        # A zombie has finished; it only waits for its parent to reap it.
        return fields is not None and int(fields[19]) == self.start_ticks and fields[0] != "Z"

    def signal(self, sig: int) -> None:
        if self.is_alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


def parent_pids() -> dict[int, int]:
    """pid -> ppid for every process visible in /proc."""
    result: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                result[int(entry)] = int(fields[1])
    return result


def descendants(pid: int) -> list[int]:
    """All live descendants of pid, collected before anything is killed (orphans get reparented)."""
    children: dict[int, list[int]] = {}
    for child, parent in parent_pids().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def refs_of(pids: Iterable[int]) -> list[ProcessRef]:
    refs: list[ProcessRef] = []
    for pid in pids:
        try:
            refs.append(ProcessRef.of(pid))
        except ProcessLookupError:
            pass
    return refs


def terminate(refs: Sequence[ProcessRef], grace: float = 2.0) -> None:
    """TERM, then KILL whatever is still alive after the grace period."""
    for ref in refs:
        ref.signal(signal.SIGTERM)
    try:
        wait_until(lambda: not any(r.is_alive() for r in refs), timeout=grace, what="processes to exit")
    except TimeoutError:
        for ref in refs:
            ref.signal(signal.SIGKILL)
        wait_until(lambda: not any(r.is_alive() for r in refs), timeout=5.0, what="killed processes")


def terminate_tree(ref: ProcessRef, grace: float = 2.0) -> None:
    """Stop a process we started together with everything it forked (e.g. sshd sessions)."""
    if not ref.is_alive():
        return
    terminate([ref, *refs_of(descendants(ref.pid))], grace)


def reap(popen: subprocess.Popen[bytes] | None) -> None:
    """Collect the exit status of a child we started, so it does not linger as a zombie."""
    if popen is not None:
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

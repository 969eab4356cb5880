"""Everything a testbed run creates, recorded before it is created, released in reverse.

The record is also written to /run/tether-testbed/<run id>.json (root runs only). A run killed
with SIGKILL cannot clean up after itself; the next run finds its record, sees that its owner
process is gone and releases what it left behind. Records of live runs are never touched, so
two runs side by side do not disturb each other.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .commands import run, run_quietly
from .procs import ProcessRef, refs_of, terminate, terminate_tree
from .wait import wait_until

REGISTRY_DIR = Path("/run/tether-testbed")


@dataclass
class Resources:
    run_id: str
    owner: ProcessRef
    testbed_dir: str | None = None
    user: str | None = None
    uid: int | None = None
    netns: str | None = None
    veth: str | None = None
    # Arguments after `ip rule add` / `ip route add`; the same words delete them again.
    rules: list[list[str]] = field(default_factory=list)
    routes: list[list[str]] = field(default_factory=list)
    processes: list[ProcessRef] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Resources:
        data = json.loads(text)
        data["owner"] = ProcessRef(**data["owner"])
        data["processes"] = [ProcessRef(**p) for p in data["processes"]]
        return cls(**data)


class Registry:
    """On-disk copy of a run's Resources, rewritten before each new resource is created."""

    def __init__(self, resources: Resources, enabled: bool) -> None:
        self.resources = resources
        self.enabled = enabled
        self.path = REGISTRY_DIR / f"{resources.run_id}.json"

    def save(self) -> None:
        if not self.enabled:
            return
        REGISTRY_DIR.mkdir(mode=0o700, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.resources.to_json())
        os.replace(tmp, self.path)

    def forget(self) -> None:
        if self.enabled:
            self.path.unlink(missing_ok=True)


@contextmanager
def registry_lock() -> Iterator[None]:
    """Serialises picking free uids, subnets, tables and rule prefs across concurrent runs."""
    REGISTRY_DIR.mkdir(mode=0o700, exist_ok=True)
    with open(REGISTRY_DIR / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_stale_runs() -> list[str]:
    """Release what earlier runs left behind when they died without tearing down (root only)."""
    released: list[str] = []
    if not REGISTRY_DIR.is_dir():
        return released
    for path in sorted(REGISTRY_DIR.glob("*.json")):
        try:
            stale = Resources.from_json(path.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if stale.owner.is_alive():
            continue
        release(stale)
        path.unlink(missing_ok=True)
        released.append(stale.run_id)
    return released


def _uids_of(pid: str) -> set[int]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return {int(u) for u in line.split()[1:]}
    return set()


def user_processes(uid: int) -> list[ProcessRef]:
    # /proc/<pid> of a non-dumpable process (sshd's session child) is owned by root, so the
    # owner of the directory is not enough: read the real, effective and saved uids instead.
    pids = [int(e) for e in os.listdir("/proc") if e.isdigit() and uid in _uids_of(e)]
    return refs_of(pids)


def kill_user_processes(uid: int) -> None:
    """Every process of the test user: the user is ours, so all its processes are ours too."""
    # New processes can appear while we kill (a dying session spawning a child): repeat.
    for _ in range(10):
        refs = [r for r in user_processes(uid) if r.is_alive()]
        if not refs:
            break
        for ref in refs:
            ref.signal(signal.SIGKILL)
        try:
            wait_until(lambda: not any(r.is_alive() for r in refs), timeout=2.0)
        except TimeoutError:
            pass
    # Killed sessions whose sshd parent died too are reparented to init as zombies; they hold
    # nothing, and init reaps them in its own time (here pid 1 takes ~1.5 s), so no waiting.


def netns_processes(netns: str) -> list[ProcessRef]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return refs_of(int(p) for p in proc.stdout.split() if p.isdigit())


def release(res: Resources) -> None:
    """Undo everything in res; each step tolerates a resource that is already gone."""
    for ref in reversed(res.processes):
        terminate_tree(ref, grace=1.0)
    if res.netns:
        # Anything still running in our namespace was started by this run (e.g. by a test).
        terminate(netns_processes(res.netns), grace=1.0)
    if res.uid is not None and res.user:
        kill_user_processes(res.uid)
    for rule in reversed(res.rules):
        run_quietly(["ip", "rule", "del", *rule])
    for route in reversed(res.routes):
        run_quietly(["ip", "route", "del", *route])
    if res.veth:
        run_quietly(["ip", "link", "del", res.veth])
    if res.netns:
        run_quietly(["ip", "netns", "del", res.netns])
    if res.user:
        run_quietly(["userdel", "--remove", "--force", res.user])
    if res.testbed_dir:
        shutil.rmtree(res.testbed_dir, ignore_errors=True)

"""Helpers for the sync tests (no tests here): a session with a running engine, tree dumps.

Trees on the node are read ON the node (``testbed.node_run_as_user``), whose home is private, so
a test proves the files reached the node and not the login host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from testbed import Testbed
from workspaces import write_workspace

from tui.config import load_workspace
from tui.session import Session
from tui.sync.engine import SyncEngine
from tui.sync.status import SyncStatus
from tui.sync.target import NodeTarget
from tui.sync_cli import sync_target

REMOTE = "work/tbws"  # the test workspace's remote root, relative to the home

# Prints {path: [kind, sha256 or link target, exec bit]} for every entry below argv[1].
TREE_SCRIPT = r"""
import hashlib, json, os, stat, sys
root = os.path.expanduser(sys.argv[1]); out = {}
skip = set(sys.argv[2].split(",")) if len(sys.argv) > 2 and sys.argv[2] else set()
for folder, dirs, files in os.walk(root):
    rel_folder = os.path.relpath(folder, root)
    dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_folder, d)) not in skip]
    for name in dirs + files:
        path = os.path.join(folder, name); rel = os.path.normpath(os.path.join(rel_folder, name))
        if rel in skip: continue
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode): out[rel] = ["l", os.readlink(path), False]
        elif stat.S_ISDIR(st.st_mode): out[rel] = ["d", "", False]
        else: out[rel] = ["f", hashlib.sha256(open(path, "rb").read()).hexdigest(), bool(st.st_mode & 0o100)]
print(json.dumps(out))
"""


def local_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, list]:
    result = subprocess.run(
        [sys.executable, "-c", TREE_SCRIPT, str(root), ",".join(skip)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def node_tree(testbed: Testbed, root: str = REMOTE, skip: tuple[str, ...] = ()) -> dict[str, list]:
    script = TREE_SCRIPT.replace("'", "'\"'\"'")
    result = testbed.node_run_as_user(f"{testbed.plain_python} -c '{script}' ~/{root} '{','.join(skip)}'", check=True)
    return json.loads(result.stdout)


def node_cat(testbed: Testbed, rel: str) -> str | None:
    result = testbed.node_run_as_user(f"cat ~/{REMOTE}/{rel}")
    return result.stdout if result.returncode == 0 else None


def node_exists(testbed: Testbed, rel: str) -> bool:
    return testbed.node_run_as_user(f"test -e ~/{REMOTE}/{rel} -o -L ~/{REMOTE}/{rel}").returncode == 0


async def until(condition, timeout: float = 20.0, interval: float = 0.02, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(interval)


def statuses(events: list) -> list[SyncStatus]:
    return [e for e in events if isinstance(e, SyncStatus)]


def fresh_remote(testbed: Testbed) -> None:
    testbed.node_run_as_user(f"rm -rf ~/{REMOTE} ~/.cache/tether/sync")


@contextlib.asynccontextmanager
async def running_engine(
    testbed: Testbed, folder: Path, *, extra: str = "", start: bool = True, **engine_kwargs
) -> AsyncIterator[tuple[NodeTarget, SyncEngine, list]]:
    """The link up on the testbed and an engine on it (started: first sync done, watching).

    The link is sync's own supervisor (as `tether sync` uses), so no run or tmux layout of a
    console session writes into the remote root meanwhile.
    """
    workspace = load_workspace(write_workspace(folder, testbed, extra=extra))
    session = Session(workspace)
    await session.prepare()
    events: list = []
    engine = None
    try:
        async with sync_target(session.route, events.append, ping_interval=0.5) as target:
            engine = SyncEngine(workspace, target, events.append, **engine_kwargs)
            try:
                if start:
                    await engine.start()
                yield target, engine, events
            finally:
                await engine.close()
    finally:
        await session.down()

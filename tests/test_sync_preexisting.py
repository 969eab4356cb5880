"""Randomized: a first sync into a remote root that already holds files (some Tether wrote, some
it did not) never deletes or replaces a file Tether did not write without a backup or the user's
word, and the trees end equal. On the testbed: one link, a fresh engine and remote root per example."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sync_link import cancel_leftovers
from test_sync_support import REMOTE, local_tree, node_tree
from workspaces import write_workspace

from tui.config import load_workspace
from tui.session import Session
from tui.sync import safety
from tui.sync.engine import SyncEngine
from tui.sync_cli import sync_target

pytestmark = pytest.mark.needs_netns

PATHS = ["a", "b", "a/x", "a/y", "b/x", "c.py", "d/e/f", "train.py", "outputs/m.pt"]  # outputs/: protected
CONTENTS = ["1", "2", "same", ""]
files = st.dictionaries(st.sampled_from(PATHS), st.sampled_from(CONTENTS), max_size=6)

# Resets the remote root and Tether's journal, then writes what argv[1] (JSON) holds, in one call.
SETUP = r"""
import json, os, shutil, sys
spec = json.loads(sys.stdin.read()); root = os.path.expanduser(spec["root"])
shutil.rmtree(root, ignore_errors=True); shutil.rmtree(os.path.expanduser("~/.cache/tether/sync"), ignore_errors=True)
os.makedirs(root)
for rel, text in spec["files"].items():
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    open(os.path.join(root, rel), "w").write(text)
"""


def plain(tree: dict[str, str]) -> dict[str, str]:
    """Drop paths that clash (a file where another needs a folder), first come first kept."""
    kept: dict[str, str] = {}
    for path, text in tree.items():
        if not any(p == path or p.startswith(path + "/") or path.startswith(p + "/") for p in kept):
            kept[path] = text
    return kept


def without_outputs(tree: dict[str, list]) -> dict[str, list]:
    return {p: v for p, v in tree.items() if p != "outputs" and not p.startswith("outputs/")}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_local(ws: Path, tree: dict[str, str]) -> None:
    for item in ws.iterdir():
        if item.name not in ("tether.toml", "train.py"):
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    (ws / "train.py").write_text("print('hello from the node')\n")
    for rel, text in plain(tree).items():
        if rel == "train.py":
            continue
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)


def test_a_sync_into_a_root_with_files_of_its_own_keeps_them_or_asks(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    ws = tmp_path / "ws"
    workspace = load_workspace(write_workspace(ws, testbed))
    loop = asyncio.new_event_loop()
    session = Session(workspace)
    loop.run_until_complete(session.prepare())
    context = sync_target(session.route, lambda event: None, ping_interval=0.5)
    target = loop.run_until_complete(context.__aenter__())
    seen = {"halts": 0, "kept": 0, "deleted": 0, "adopted": 0}

    async def sync(allow: bool = False) -> SyncEngine:
        engine = SyncEngine(workspace, target, lambda event: None, allow_deletes=allow)
        try:
            await engine.sync_once()
        finally:
            await engine.close()
        return engine

    async def example(first: dict[str, str] | None, theirs: dict[str, str], ours: dict[str, str], keep: bool) -> None:
        # The node: what an earlier sync of ``first`` wrote (Tether's), then files of its own.
        testbed.node_run_as_user(
            f"{testbed.plain_python} -c '{SETUP}'", input=json.dumps({"root": f"~/{REMOTE}", "files": {}}), check=True
        )
        if first is not None:
            write_local(ws, first)
            await sync()
        tethers = {k for k, (kind, _, _) in node_tree(testbed).items() if kind == "f"}
        foreign = {
            p: t
            for p, t in plain(theirs).items()
            if p not in tethers and not any(q.startswith(p + "/") or p.startswith(q + "/") for q in tethers)
        }
        script = "; ".join(
            f"mkdir -p $(dirname ~/{REMOTE}/{p}) && printf %s '{t}' > ~/{REMOTE}/{p}" for p, t in foreign.items()
        )
        if script:
            testbed.node_run_as_user(script, check=True)
        write_local(ws, plain(ours))
        local_now = local_tree(ws)
        halt: safety.ForeignFiles | None = None
        try:
            await sync()
        except safety.ForeignFiles as exc:
            halt = exc
            seen["halts"] += 1
            assert set(exc.paths) <= set(foreign), f"asked about files Tether wrote: {exc.paths} (foreign {foreign})"
            if keep:
                probe = SyncEngine(workspace, target, lambda event: None)
                try:
                    await probe.back_up(exc.paths)
                finally:
                    await probe.close()
                await sync()
                seen["kept"] += 1
            else:
                await sync(allow=True)  # the user said "delete them"
                seen["deleted"] += 1
        # outputs/ is protected: never pushed, never deleted, so it stays out of the comparison
        node = node_tree(testbed, skip=(".tether-backup", "outputs"))
        local_end = local_tree(ws, skip=("outputs",))
        assert node == local_end == without_outputs(local_now), f"trees differ: node {node}, local {local_end}"
        node_outputs = node_tree(testbed, f"{REMOTE}/outputs") if any(p.startswith("outputs/") for p in foreign) else {}
        backup = (
            {
                p.split("/", 1)[1]: h
                for p, (kind, h, _) in node_tree(testbed, f"{REMOTE}/.tether-backup").items()
                if kind == "f"
            }
            if halt is not None and keep
            else {}
        )
        for path, text in foreign.items():
            if path.startswith("outputs/"):
                assert node_outputs.get(path.split("/", 1)[1], [None, None])[1] == sha(text), (
                    f"protected {path} touched"
                )
                continue
            if local_now.get(path, [None, None])[1] == sha(text):
                seen["adopted"] += 1
                continue  # the same bytes are on the node still
            asked = halt is not None and path in halt.paths
            assert asked, f"{path} ({text!r}), not Tether's, went without a question"
            if keep:
                assert backup.get(path) == sha(text), f"{path} not kept in the backup: {backup}"

    @settings(
        max_examples=int(os.environ.get("PREEXISTING_EXAMPLES", "200")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(first=st.none() | files, theirs=files, ours=files, keep=st.booleans())
    def run(first, theirs, ours, keep) -> None:
        loop.run_until_complete(example(first, theirs, ours, keep))

    try:
        run()
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.run_until_complete(session.down())
        loop.run_until_complete(cancel_leftovers())
        loop.close()
    print(seen)
    assert seen["halts"] and seen["kept"] and seen["deleted"] and seen["adopted"]

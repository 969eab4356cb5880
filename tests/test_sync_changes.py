"""Sync on the testbed: each kind of change reaches the node; ignored paths stay local;
protected paths survive; dangerous roots are refused; an emptied root halts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_sync_support import (
    REMOTE,
    fresh_remote,
    local_tree,
    node_cat,
    node_exists,
    node_tree,
    running_engine,
    statuses,
    until,
)

from tui.sync.status import SyncState

pytestmark = pytest.mark.needs_netns


def write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


async def test_every_kind_of_change_arrives_on_the_node(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    write(ws / "pkg" / "mod.py", "x = 1\n")
    write(ws / "run.sh", "#!/bin/sh\necho hi\n", 0o755)
    async with running_engine(testbed, ws) as (link, engine, events):
        assert node_cat(testbed, "pkg/mod.py") == "x = 1\n"  # first sync
        assert testbed.login_run_as_user(f"test -e ~/{REMOTE}/pkg/mod.py").returncode != 0  # the node only
        assert node_tree(testbed)["run.sh"][2] is True  # executable bit

        write(ws / "pkg" / "mod.py", "x = 2\n")  # edit
        write(ws / "new" / "deep" / "file.txt", "created\n")  # new folders and a file
        (ws / "empty").mkdir()  # an empty folder
        os.symlink("pkg/mod.py", ws / "link")  # a symlink, kept as a link
        (ws / "run.sh").chmod(0o644)  # the executable bit removed
        write(ws / "tool", "#!/bin/sh\n", 0o755)  # a new executable
        await engine.wait_synced(timeout=10)
        tree = node_tree(testbed)
        assert node_cat(testbed, "pkg/mod.py") == "x = 2\n"
        assert node_cat(testbed, "new/deep/file.txt") == "created\n"
        assert tree["empty"][0] == "d"
        assert tree["link"] == ["l", "pkg/mod.py", False]
        assert tree["run.sh"][2] is False and tree["tool"][2] is True

        (ws / "pkg" / "mod.py").rename(ws / "pkg" / "renamed.py")  # rename a file
        (ws / "new").rename(ws / "moved")  # rename a folder
        (ws / "tool").unlink()  # delete a file
        (ws / "empty").rmdir()  # remove a folder
        os.unlink(ws / "link")
        os.symlink("moved", ws / "link")  # a link re-pointed
        await engine.wait_synced(timeout=10)
        assert node_tree(testbed) == local_tree(ws)
        assert engine.status.state is SyncState.UP_TO_DATE
        last = statuses(events)[-1]
        assert last.last_push_ms is not None and last.last_push_files is not None


async def test_ignored_paths_stay_local_and_ignored_folders_are_not_watched(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    write(ws / ".gitignore", "*.tmp\nbuild/\n")
    write(ws / "sub" / ".gitignore", "secret.txt\n!keep.tmp\n")
    write(ws / "data" / "big.bin", "data\n")  # ignored by tether.toml
    for i in range(50):
        (ws / "node_modules" / f"p{i}" / "lib").mkdir(parents=True)  # built-in ignore: never watched
    write(ws / "code.py", "ok\n")
    async with running_engine(testbed, ws, extra='[sync]\nignore = ["data/"]\n') as (link, engine, events):
        assert engine.watcher.watch_count < 10  # the root, sub (and no node_modules/*/lib)
        write(ws / "a.tmp", "no\n")
        write(ws / "build" / "out.o", "no\n")
        write(ws / "sub" / "secret.txt", "no\n")
        write(ws / "sub" / "keep.tmp", "yes\n")  # re-included by the nested .gitignore
        write(ws / "__pycache__" / "x.pyc", "no\n")
        write(ws / ".git" / "HEAD", "no\n")
        write(ws / "code.py", "changed\n")
        await engine.wait_synced(timeout=10)
        tree = node_tree(testbed)
        assert node_cat(testbed, "code.py") == "changed\n"
        assert node_cat(testbed, "sub/keep.tmp") == "yes\n"
        for ignored in ("a.tmp", "build", "sub/secret.txt", "__pycache__", ".git", "data", "node_modules"):
            assert ignored not in tree, ignored


async def test_protected_paths_survive_deletes_and_are_never_overwritten(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    write(ws / "keep.py", "k\n")
    write(ws / "results" / "code.py", "c\n")
    testbed.node_run_as_user(
        f"mkdir -p ~/{REMOTE}/outputs ~/{REMOTE}/results && echo model > ~/{REMOTE}/outputs/model.pt"
        f" && echo log > ~/{REMOTE}/train.log && echo old > ~/{REMOTE}/stale.py && echo r > ~/{REMOTE}/results/run.log",
        check=True,
    )
    async with running_engine(testbed, ws) as (link, engine, events):
        # stale.py is not on the laptop, and Tether never wrote it: sync asks (protected files are
        # never in the question), and deletes it once allowed.
        assert engine.status.state is SyncState.HALTED and engine.halt.paths == ["stale.py"]
        engine.allow_deletes_once()
        await until_state(engine, SyncState.UP_TO_DATE)
        assert not node_exists(testbed, "stale.py")
        assert node_cat(testbed, "outputs/model.pt") == "model\n"
        write(ws / "train.log", "laptop log\n")  # protected: the node's copy is never overwritten
        shutil.rmtree(ws / "results")  # a folder with a protected file inside
        await engine.wait_synced(timeout=10)
        assert node_cat(testbed, "train.log") == "log\n"
        assert node_cat(testbed, "results/run.log") == "r\n"
        assert not node_exists(testbed, "results/code.py")
        assert node_cat(testbed, "keep.py") == "k\n"


@pytest.mark.parametrize("link_to", ["~", "/home"])
async def test_a_root_that_resolves_to_home_or_a_parent_is_refused(needs_netns, tether_home, tmp_path, link_to):
    testbed = needs_netns
    fresh_remote(testbed)
    # tether.toml's rules refuse ~ and /home literally; on the node a symlink can still lead there.
    testbed.node_run_as_user(f"mkdir -p ~/work && ln -sfn {link_to} ~/{REMOTE}", check=True)
    ws = tmp_path / "ws"
    write(ws / "a.py", "a\n")
    from tui.sync.safety import SyncRefused

    try:
        with pytest.raises(SyncRefused) as refused:
            async with running_engine(testbed, ws):
                pass
        assert "refusing to sync" in str(refused.value) and "fix:" in str(refused.value)
        assert testbed.node_run_as_user("ls ~/.bashrc").returncode == 0  # the home is untouched
    finally:
        testbed.node_run_as_user(f"rm -f ~/{REMOTE}")


async def test_an_emptied_local_root_halts_instead_of_deleting(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    for i in range(30):
        write(ws / "src" / f"f{i}.py", f"{i}\n")
    async with running_engine(testbed, ws) as (link, engine, events):
        shutil.rmtree(ws / "src")
        await until_state(engine, SyncState.HALTED)
        assert "would delete" in engine.status.detail
        assert len(node_tree(testbed, skip=()).keys() & {f"src/f{i}.py" for i in range(30)}) == 30
        engine.allow_deletes_once()
        await engine.wait_synced(timeout=10)
        assert not node_exists(testbed, "src/f0.py")


async def until_state(engine, state, timeout: float = 10.0) -> None:
    from test_sync_support import until

    await until(lambda: engine.status.state is state, timeout, what=f"sync state {state}")


async def test_a_folder_moved_away_and_made_again_leaves_nothing_of_the_old_one_on_the_node(
    needs_netns, tether_home, tmp_path
):
    # A move reports the folder only, not what was in it; if the folder is back by the next push
    # (one batch, or a push that a link cut sent back to the queue), the node must still lose the
    # old contents. Found by test_sync_link's random run: b/z was left on the node.
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    write(ws / "b" / "old.py", "old\n")
    (ws / "b" / "z").mkdir()
    (ws / "a").mkdir()
    async with running_engine(testbed, ws) as (link, engine, events):
        assert node_tree(testbed)["b/z"][0] == "d"
        engine.pause()  # what follows reaches the node as one change set
        (ws / "b").rename(ws / "a" / "y")
        (ws / "b" / "x").mkdir(parents=True)
        await until(lambda: engine.pending >= 3, what="the move and the new folder pending")
        engine.resume()
        await engine.wait_synced(timeout=10)
        assert node_tree(testbed) == local_tree(ws)
        assert not node_exists(testbed, "b/old.py") and node_cat(testbed, "a/y/old.py") == "old\n"

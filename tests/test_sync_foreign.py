"""Files on the node that Tether did not write are never deleted or replaced without asking: a
first sync into a folder that already holds work halts and lists them; `--keep-theirs` (or "keep
theirs") moves them to a dated backup folder, `--allow-deletes` (or "delete them") lets them go."""

from __future__ import annotations

import shutil

import pytest
from test_sync_cli import tether
from test_sync_support import REMOTE, fresh_remote, local_tree, node_cat, node_exists, node_tree, running_engine, until
from workspaces import write_workspace

from tui.events import HALT_FOREIGN
from tui.sync.status import SyncHaltReport, SyncState

pytestmark = pytest.mark.needs_netns
THESIS = {"chapter1.tex": "\\chapter{One}\n", "chapter2.tex": "\\chapter{Two}\n", "refs.bib": "@book{x}\n"}


def thesis_on_the_node(testbed) -> None:
    fresh_remote(testbed)
    writes = " && ".join(f"printf '%s' '{text}' > ~/{REMOTE}/{name}" for name, text in THESIS.items())
    testbed.node_run_as_user(f"mkdir -p ~/{REMOTE} && {writes}", check=True)


def backups(testbed) -> dict[str, str]:
    """Every file under the root's backup folder, by its path below the dated folder."""
    found = {}
    tree = node_tree(testbed, f"{REMOTE}/.tether-backup")
    for path, (kind, _, _) in tree.items():
        if kind == "f":
            stamp, rel = path.split("/", 1)
            found[rel] = testbed.node_run_as_user(f"cat ~/{REMOTE}/.tether-backup/{stamp}/{rel}").stdout
    return found


def test_cli_first_sync_stops_and_lists_the_nodes_own_files_then_keeps_them(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    thesis_on_the_node(testbed)
    ws = tmp_path / "ws"
    write_workspace(ws, testbed)
    halted = tether("sync", cwd=ws)
    assert halted.returncode == 1, halted.stderr
    for name in THESIS:
        assert name in halted.stderr
        assert node_cat(testbed, name) == THESIS[name]  # nothing deleted
    assert (
        "Tether did not write" in halted.stderr
        and "--allow-deletes" in halted.stderr
        and "--keep-theirs" in halted.stderr
    )
    assert "Traceback" not in halted.stderr
    assert not node_exists(testbed, "train.py")  # nothing written either

    kept = tether("sync", "--keep-theirs", cwd=ws)
    assert kept.returncode == 0, kept.stderr
    assert "the node is up to date" in kept.stderr and ".tether-backup/" in kept.stderr
    assert backups(testbed) == THESIS
    assert node_tree(testbed, skip=(".tether-backup",)) == local_tree(ws)
    again = tether("sync", cwd=ws)  # the backup folder is left alone, and Tether's own files are known now
    assert again.returncode == 0, again.stderr
    assert backups(testbed) == THESIS


def test_cli_allow_deletes_lets_the_nodes_files_go(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    thesis_on_the_node(testbed)
    ws = tmp_path / "ws"
    write_workspace(ws, testbed)
    (ws / "refs.bib").write_text("@book{laptop}\n")
    allowed = tether("sync", "--allow-deletes", cwd=ws)
    assert allowed.returncode == 0, allowed.stderr
    assert node_tree(testbed) == local_tree(ws)
    assert node_cat(testbed, "refs.bib") == "@book{laptop}\n"


async def test_the_console_path_halts_with_a_report_and_keep_theirs_resumes(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    thesis_on_the_node(testbed)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "chapter1.tex").write_text(THESIS["chapter1.tex"])  # the same bytes: nothing is lost, no question
    (ws / "notes.md").write_text("n\n")
    async with running_engine(testbed, ws) as (link, engine, events):
        assert engine.status.state is SyncState.HALTED
        reports = [e for e in events if isinstance(e, SyncHaltReport)]
        assert [(r.reason, r.paths) for r in reports] == [(HALT_FOREIGN, ("chapter2.tex", "refs.bib"))]
        (ws / "edit.py").write_text("1\n")  # an edit while halted: the halt holds (its cause is on the node)
        await until(lambda: engine.pending == 0 and engine.status.state is SyncState.HALTED, what="recheck")
        assert node_cat(testbed, "chapter2.tex") == THESIS["chapter2.tex"]
        folder = await engine.keep_theirs()
        assert folder.startswith("~/work/tbws/.tether-backup/")
        await engine.wait_synced(timeout=15)
        await until(lambda: engine.status.state is SyncState.UP_TO_DATE, what="up to date")
        assert backups(testbed) == {k: v for k, v in THESIS.items() if k != "chapter1.tex"}
        assert node_tree(testbed, skip=(".tether-backup",)) == local_tree(ws)
        (ws / "notes.md").write_text("later\n")
        await engine.wait_synced(timeout=10)
        assert node_cat(testbed, "notes.md") == "later\n"


async def test_what_the_run_wrote_is_not_deleted_by_a_later_full_sync(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "train.py").write_text("t\n")
    (ws / "old.py").write_text("o\n")
    async with running_engine(testbed, ws) as (link, engine, events):
        pass
    (ws / "old.py").unlink()  # Tether wrote it: deleting it on the node needs no question
    testbed.node_run_as_user(f"echo 0.93 > ~/{REMOTE}/results.csv", check=True)  # the run wrote this
    async with running_engine(testbed, ws) as (link, engine, events):
        assert engine.status.state is SyncState.HALTED
        assert [r.paths for r in events if isinstance(r, SyncHaltReport)] == [("results.csv",)]
        assert node_cat(testbed, "results.csv") == "0.93\n"
        engine.allow_deletes_once()  # "delete them"
        await until(lambda: engine.status.state is SyncState.UP_TO_DATE, what="up to date")
        assert not node_exists(testbed, "results.csv") and not node_exists(testbed, "old.py")


async def test_a_folder_deleted_on_the_laptop_keeps_what_the_run_wrote_in_it(needs_netns, tether_home, tmp_path):
    # The watcher's own push (not a full comparison) deletes the folder: the run's file in it is
    # the node's own, so it stays, sync halts with it named, and "keep theirs" backs it up.
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    (ws / "results").mkdir(parents=True)
    (ws / "results" / "README").write_text("outputs go here\n")
    (ws / "train.py").write_text("t\n")
    async with running_engine(testbed, ws) as (link, engine, events):
        testbed.node_run_as_user(f"echo 0.93 > ~/{REMOTE}/results/run1.csv", check=True)  # the run wrote this
        shutil.rmtree(ws / "results")
        await until(lambda: engine.status.state is SyncState.HALTED, what="the halt")
        assert [(r.reason, r.paths) for r in events if isinstance(r, SyncHaltReport)] == [
            (HALT_FOREIGN, ("results/run1.csv",))
        ]
        assert node_cat(testbed, "results/run1.csv") == "0.93\n"
        assert not node_exists(testbed, "results/README")  # Tether's own file went as asked
        await engine.keep_theirs()
        await until(lambda: engine.status.state is SyncState.UP_TO_DATE, what="up to date")
        assert backups(testbed) == {"results/run1.csv": "0.93\n"}
        assert node_tree(testbed, skip=(".tether-backup",)) == local_tree(ws)


async def test_a_new_laptop_file_over_one_the_run_wrote_keeps_both(needs_netns, tether_home, tmp_path):
    testbed = needs_netns
    fresh_remote(testbed)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "train.py").write_text("t\n")
    async with running_engine(testbed, ws) as (link, engine, events):
        testbed.node_run_as_user(f"echo 0.93 > ~/{REMOTE}/metrics.csv", check=True)  # the run wrote this
        (ws / "metrics.csv").write_text("laptop\n")
        await engine.wait_synced(timeout=10)
        assert node_cat(testbed, "metrics.csv") == "laptop\n"
        copies = [p for p in node_tree(testbed) if p.startswith("metrics.conflict-node-")]
        assert len(copies) == 1 and node_cat(testbed, copies[0]) == "0.93\n"
        await until(lambda: (ws / copies[0]).is_file(), what="the node's version next to the laptop's")

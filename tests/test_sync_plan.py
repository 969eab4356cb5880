"""Pure parts of sync: reconcile, the safety rules, rsync argv and progress parsing, status text."""

from __future__ import annotations

import pytest

from tui.remote.ssh import Destination, Hop, SshSettings
from tui.sync.reconcile import RemoteIndex, deletes_exceed, plan_changes, reconcile, vanished_children
from tui.sync.rsync import files_from, parse_progress, parse_stats, pull_argv, push_argv, remote_for
from tui.sync.safety import RootEmptied, SyncRefused, refuse_root
from tui.sync.status import SyncState, SyncStatus
from tui.sync.tree import DIR, FILE, LINK, Entry

F = lambda size=1, mtime=1_000_000, mode=0o644: Entry(FILE, size, mtime, mode)
D = Entry(DIR, mode=0o755)
L = lambda target: Entry(LINK, target=target)
nothing_excluded = lambda path, is_dir: False


def test_reconcile_sends_what_differs_and_deletes_what_is_gone():
    local = {"a.py": F(1), "same.py": F(2), "dir": D, "dir/new.py": F(3), "link": L("a.py"), "x.sh": F(1, mode=0o755)}
    remote = {
        "a.py": F(9),
        "same.py": F(2),
        "old": D,
        "old/f": F(),
        "old/g": F(),
        "link": L("other"),
        "x.sh": F(1),
        "gone.py": F(),
    }
    plan = reconcile(local, remote, nothing_excluded)
    assert [p for p, _ in plan.files] == ["a.py", "dir/new.py", "x.sh"]  # x.sh: the executable bit
    assert plan.mkdirs == [("dir", 0o755)]
    assert plan.links == [("link", "a.py")]
    assert plan.deletes == ["gone.py", "old"]  # only the top of a deleted folder
    assert plan.deleted_files == 3


def test_reconcile_leaves_remote_paths_the_rules_exclude():
    plan = reconcile({}, {"outputs": D, "outputs/m.pt": F(), "a.py": F()}, lambda p, d: p.startswith("outputs"))
    assert plan.deletes == ["a.py"]


def test_microsecond_mtimes_compare_equal():
    assert F(1, 1_000_000_123).same_as(F(1, 1_000_000_999))
    assert not F(1, 1_000_000).same_as(F(1, 2_000_000))


def test_a_file_replaced_by_a_folder_is_removed_first_then_planned_as_a_folder():
    plan = reconcile({"a": D, "a/b": F()}, {"a": F()}, nothing_excluded)
    assert plan.deletes == ["a"] and plan.mkdirs == [("a", 0o755)] and plan.full
    assert plan.known_absent == {"a/b"}


def test_plan_changes_uses_the_local_state_now_and_counts_deleted_files():
    index = RemoteIndex(["src/a", "src/b", "src/c/d", "top"])
    plan = plan_changes({"src": None, "top": F(), "new": D, "ignored.pyc": F()}, lambda p, d: p.endswith(".pyc"), index)
    assert plan.deletes == ["src"] and plan.deleted_files == 3
    assert [p for p, _ in plan.files] == ["top"] and plan.mkdirs == [("new", 0o755)]
    index.apply(plan)
    assert index.total == 1 and index.files_under("src") == 0


def test_the_index_follows_folders_and_kinds_that_change():
    index = RemoteIndex.of_tree({"b": D, "b/z": D, "b/old.py": F(), "top": F()})
    assert index.children("b") == {"b/z", "b/old.py"} and index.children("") == {"b", "top"}
    plan = plan_changes({"b/z": F(), "top": D, "top/new.py": F()}, nothing_excluded, index)
    index.apply(plan)  # a folder became a file, a file a folder
    assert index.children("b") == {"b/z", "b/old.py"} and index.files_under("b") == 2
    assert index.children("top") == {"top/new.py"} and index.total == 3
    index.remove("b")
    assert index.children("") == {"top"} and index.total == 1 and index.children("b") == set()


def test_a_folder_back_under_its_old_name_loses_what_the_laptop_no_longer_has():
    index = RemoteIndex.of_tree({"b": D, "b/z": D, "b/old.py": F(), "b/kept.py": F(), "b/x": D})
    # `mv b elsewhere; mkdir -p b/x` arrives as b and b/x only; kept.py is there again locally.
    changed = {"b": D, "b/x": D}
    assert vanished_children(changed, index, exists=lambda rel: rel == "b/kept.py") == ["b/old.py", "b/z"]
    assert vanished_children({"b": None}, index, exists=lambda rel: False) == []  # a delete removes it all anyway


def test_root_emptied_rule():
    assert not deletes_exceed(9, 10, 0.5)  # a handful of deletes never halts
    assert deletes_exceed(30, 40, 0.5)
    assert not deletes_exceed(30, 100, 0.5)
    assert deletes_exceed(30, 100, 0.2)
    error = RootEmptied(30, 40, 0.5)
    assert "30 of the 40" in error.message and "--allow-deletes" in error.fix


@pytest.mark.parametrize(
    "real, home, refused",
    [
        ("/", "/home/me", True),
        ("/home/me", "/home/me", True),
        ("/home", "/home/me", True),
        ("/scratch/me", "/scratch/me", True),
        ("/home/me/work/p", "/home/me", False),
        ("/scratch/me/p", "/home/me", False),
        ("/home/me2", "/home/me", False),
    ],
)
def test_dangerous_roots_are_refused_against_the_real_home(real, home, refused):
    if refused:
        with pytest.raises(SyncRefused) as error:
            refuse_root("~/x", real, home)
        assert real in str(error.value) and "remote_root" in error.value.fix
    else:
        refuse_root("~/x", real, home)


def test_rsync_argv_rides_on_the_master_and_never_deletes():
    hop = Hop(Destination("compute01", "me", 2222), __import__("pathlib").Path("/run/t/n"))
    remote = remote_for(SshSettings(connect_timeout=5), hop, "/home/me/work/p")
    assert remote.host == "me@compute01" and remote.shell.endswith("-p 2222")
    assert "ControlPath=/run/t/n" in remote.shell and "ControlMaster=no" in remote.shell
    argv = push_argv("/laptop/p", remote)
    assert argv[-2:] == ["/laptop/p/", "me@compute01:/home/me/work/p/"]
    assert "--files-from=-" in argv and "--from0" in argv and not any(a.startswith("--delete") for a in argv)
    pull = pull_argv("/laptop/p", remote, "outputs/run1/")
    assert pull[-2:] == ["me@compute01:/home/me/work/p/./outputs/run1", "/laptop/p/"] and "--relative" in pull
    assert files_from(["a b", "c"]) == b"a b\0c\0"


def test_progress_and_stats_parsing():
    line = "     32,768,000  42%   31.25MB/s    0:00:12 (xfr#120, to-chk=880/1000)"
    progress = parse_progress(line)
    assert progress is not None
    assert (progress.bytes_done, progress.percent, progress.rate, progress.eta) == (
        32768000,
        42,
        "31.25MB/s",
        "0:00:12",
    )
    assert (progress.files_done, progress.files_total) == (120, 1000)
    assert parse_progress("          1,024 100%    0.00kB/s    0:00:00  ").files_done is None
    assert parse_progress("sending incremental file list") is None
    stats = parse_stats("Number of regular files transferred: 3\nTotal bytes sent: 1,234\nTotal bytes received: 56\n")
    assert stats == {"Number of regular files transferred": 3, "Total bytes sent": 1234, "Total bytes received": 56}


def test_status_messages():
    assert SyncStatus("w", SyncState.LINK_LOST, pending=4).message == "sync: link lost, 4 changes pending"
    assert SyncStatus("w", SyncState.LINK_LOST, pending=1).message == "sync: link lost, 1 change pending"
    assert SyncStatus("w", SyncState.UP_TO_DATE).message == "sync: up to date"
    assert SyncStatus("w", SyncState.PENDING, pending=2).to_json()["state"] == "pending"

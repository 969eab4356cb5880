"""The agent's file ops (tui/node/files.py) on a real folder, in process: what a delete leaves,
and paths below a symlink loop. The journal lives under a temporary STATE_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tui.node import files, journal


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> files.Root:
    monkeypatch.setattr(journal, "STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "root").mkdir()
    return files.Root(str(tmp_path / "root"), files.Matcher([]))


def apply(root: files.Root, ops: list[dict], **kwargs: bool) -> dict:
    with root.writing():
        return root.apply(ops, **kwargs)


def test_a_delete_below_a_symlink_loop_is_not_an_error(root: files.Root) -> None:
    os.symlink("a", os.path.join(root.path, "a"))  # a -> a: realpath cannot see through it
    reply = apply(root, [{"k": "del", "p": "a/x"}, {"k": "mkdir", "p": "a", "m": 0o755}, {"k": "mkdir", "p": "a/x"}])
    assert reply["errors"] == [] and os.path.isdir(os.path.join(root.path, "a", "x"))


def test_a_deleted_folder_keeps_the_nodes_own_files_unless_the_user_said_so(root: files.Root) -> None:
    put = {"k": "put", "p": "out/README", "d": "", "m": 0o644, "t": 1_700_000_000_000_000_000}
    assert apply(root, [put])["errors"] == []
    Path(root.path, "out", "run1.csv").write_text("0.93\n")  # the run wrote it: no record
    reply = apply(root, [{"k": "del", "p": "out"}])
    assert reply["kept"] == ["out/run1.csv"]
    assert sorted(os.listdir(os.path.join(root.path, "out"))) == ["run1.csv"]  # Tether's own file went
    reply = apply(root, [{"k": "del", "p": "out"}], delete_theirs=True)
    assert reply["kept"] == [] and not os.path.exists(os.path.join(root.path, "out"))

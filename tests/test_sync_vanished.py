"""A path that went away between the plan and rsync is not an error the user is told about.

Real rsync 3 (the remote shell here runs the receiver locally, a stand-in for ssh): the push of
``a/x`` after ``a`` itself became a file gets rsync's "Not a directory" for it, and of ``b/y``
after ``b`` was removed "No such file or directory"; both are such paths, whose own change comes as
its own event (seen in the randomized sync test: a folder replaced by a file while its file was on
its way). A real failure (the receiver's folder cannot be written) is not taken for one.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tui.sync.push import _gone_meanwhile
from tui.sync.rsync import Remote, files_from, push_argv, run_rsync


def local_remote(tmp_path: Path, root: Path) -> Remote:
    shell = tmp_path / "local-shell"
    shell.write_text('#!/bin/sh\nshift\nexec "$@"\n')  # drops the host name, runs the receiver here
    shell.chmod(0o755)
    return Remote(str(shell), "node", str(root))


def push(tmp_path: Path, local: Path, remote: Path, paths: list[str]) -> tuple[int, list[str]]:
    argv = push_argv(str(local), local_remote(tmp_path, remote), progress=False)
    done = asyncio.run(run_rsync(argv, stdin=files_from(paths)))
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


def test_paths_whose_folder_became_a_file_or_went_are_gone_not_errors(tmp_path: Path):
    local, remote = tmp_path / "ws", tmp_path / "node"
    local.mkdir()
    remote.mkdir()
    (local / "a").write_text("a is a file now\n")  # it was a folder holding x when the plan was made
    (local / "kept.py").write_text("print(1)\n")
    code, lines = push(tmp_path, local, remote, ["a/x", "b/y", "kept.py"])
    assert code != 0 and (remote / "kept.py").read_text() == "print(1)\n"
    assert any("Not a directory" in line for line in lines), lines
    assert any("No such file or directory" in line for line in lines), lines
    assert [line for line in lines if not _gone_meanwhile(line)] == []


def test_a_receiver_that_cannot_write_is_an_error(tmp_path: Path):
    local, remote = tmp_path / "ws", tmp_path / "node"
    local.mkdir()
    (local / "kept.py").write_text("print(1)\n")
    remote.write_text("not a folder\n")  # the remote root is a file: nothing can land there
    code, lines = push(tmp_path, local, remote, ["kept.py"])
    assert code != 0 and lines
    assert [line for line in lines if not _gone_meanwhile(line)], lines
    assert os.path.isfile(remote)

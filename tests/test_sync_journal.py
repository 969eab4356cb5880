"""The node's journal of what Tether wrote survives an agent killed mid-request (a link cut kills
the agent with its ssh session): Tether's own write is never taken for a node-side edit afterwards.

Seen under load in test_sync_link's random cuts: an edit pushed over the agent landed on the node,
the cut killed the agent before the request's journal line was written, and the next push of that
file kept Tether's own version as "b was edited on the node" (a conflict copy nobody made). Here the
agent's file code runs in real processes on a real folder; the cut is an ``os._exit`` right after
the file is renamed into place, the worst moment (named as the stand-in for the cut it is)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT_CODE = """
import json, os, sys
from tui.node.files import Matcher, Root
root = Root(sys.argv[1], Matcher([]))
"""

PUT = (
    ROOT_CODE
    + """
ops = json.loads(sys.argv[2])
if sys.argv[3] == "cut":
    real = os.replace
    def replace(src, dst):
        real(src, dst)
        if dst.endswith("/model.py"):
            os._exit(9)  # the agent dies with its ssh session, the file already in place
    os.replace = replace
with root.writing():
    print(json.dumps(root.apply(ops)))
"""
)

CHECK = (
    ROOT_CODE
    + """
with root.writing():
    print(json.dumps(root.prepare(["model.py"], [])))
"""
)


def agent(code: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)


def put(text: str) -> str:
    return json.dumps(
        [{"k": "put", "p": "model.py", "d": base64.b64encode(text.encode()).decode(), "m": 0o644, "t": time.time_ns()}]
    )


def test_a_write_whose_journal_line_was_cut_off_is_still_tethers_own(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "root"
    home.mkdir()
    root.mkdir()
    first = agent(PUT, home, str(root), put("v1\n"), "whole")
    assert first.returncode == 0 and json.loads(first.stdout)["conflicts"] == [], first.stderr
    cut = agent(PUT, home, str(root), put("v2\n"), "cut")
    assert cut.returncode == 9 and (root / "model.py").read_text() == "v2\n", cut.stderr

    # The next agent (after the reconnect) is about to write the file again: no conflict copy.
    after = agent(CHECK, home, str(root))
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == [], "Tether's own write was taken for a node-side edit"
    assert sorted(p.name for p in root.iterdir()) == ["model.py"]

    # A real edit on the node is still one.
    with open(root / "model.py", "a") as edit:
        edit.write("edited on the node\n")
    edited = agent(CHECK, home, str(root))
    conflicts = json.loads(edited.stdout)
    assert [c["path"] for c in conflicts] == ["model.py"], edited.stderr
    assert (root / conflicts[0]["copy"]).read_text() == "v2\nedited on the node\n"

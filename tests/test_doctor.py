"""`tether doctor` against the real testbed: each broken hop is reported with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed import Testbed
from workspaces import load_test_workspace, write_workspace

from tui.cli import main
from tui.doctor import local_rsync_check, node_checks, parse_node_report

pytestmark = pytest.mark.needs_netns


def doctor(config: Path, capsys) -> tuple[int, str]:
    code = main(["-c", str(config), "doctor"])
    return code, capsys.readouterr().out


def line_of(output: str, name: str) -> str:
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if f"] {name}:" in line)
    return "\n".join(lines[index : index + 2])


def test_healthy_chain_passes(needs_netns: Testbed, tether_home, tmp_path, capsys):
    code, out = doctor(write_workspace(tmp_path, needs_netns), capsys)
    assert code == 0, out
    assert "[ok  ] node: compute01 reachable through login" in out
    assert "[ok  ] debugpy:" in out and "[ok  ] tmux (node):" in out
    assert "all checks passed" in out


def test_node_sshd_down_is_reported_with_fix(needs_netns: Testbed, tether_home, tmp_path, capsys):
    needs_netns.node.stop()
    try:
        code, out = doctor(write_workspace(tmp_path, needs_netns), capsys)
    finally:
        needs_netns.node.start()
    assert code == 1
    assert "[ok  ] login host:" in out
    node = line_of(out, "node")
    assert node.startswith("[FAIL] node: cannot reach compute01: the login host could not open a connection to it")
    assert "fix: check the node's name in [connection] node, that the node is up, and that its sshd runs" in node


def test_tmux_missing_on_node(needs_netns: Testbed, tether_home, tmp_path, capsys):
    # The node's sshd honours ~/.ssh/environment (in the node's private home): a PATH without tmux.
    needs_netns.node_run_as_user(
        'mkdir -p ~/.ssh ~/notmux && for f in /usr/bin/*; do [ "${f##*/}" = tmux ] || ln -sf "$f" ~/notmux/; done'
        ' && echo "PATH=$HOME/notmux" > ~/.ssh/environment',
        check=True,
    )
    try:
        code, out = doctor(write_workspace(tmp_path, needs_netns), capsys)
    finally:
        needs_netns.node_run_as_user("rm -rf ~/.ssh/environment ~/notmux")
    assert code == 1
    tmux = line_of(out, "tmux (node)")
    assert "not on PATH on compute01" in tmux and "fix: install tmux on the node" in tmux
    assert "[ok  ] rsync (node):" in out


def test_debugpy_missing_for_the_run_interpreter(needs_netns: Testbed, tether_home, tmp_path, capsys):
    config = write_workspace(tmp_path, needs_netns, interpreter=needs_netns.plain_python)
    code, out = doctor(config, capsys)
    assert code == 1
    debugpy = line_of(out, "debugpy")
    assert f"{needs_netns.plain_python} cannot import debugpy" in debugpy
    assert "pip install --user debugpy" in debugpy


def test_login_unreachable(needs_netns: Testbed, tether_home, tmp_path, capsys):
    code, out = doctor(write_workspace(tmp_path, needs_netns, login="127.0.0.1:1"), capsys)
    assert code == 1
    assert "Connection refused" in line_of(out, "login host") and "fix:" in out


def test_doctor_leaves_no_connection_behind(needs_netns: Testbed, tether_home, tmp_path, capsys):
    config = write_workspace(tmp_path, needs_netns)
    doctor(config, capsys)
    assert list((tether_home / "run" / "tether").glob("*-[ln]")) == []


# -- pure parts -----------------------------------------------------------------------------------

def test_old_python_only_is_explained(tmp_path, needs_netns: Testbed):
    workspace = load_test_workspace(tmp_path, needs_netns)
    checks = node_checks(workspace, parse_node_report("host=n1\ntmux=/usr/bin/tmux\nrsync=/usr/bin/rsync\nagent_python=\nrun_python=/usr/bin/python3\ndebugpy=1.8.0\ndisk_free_kb=99999999\n"))
    python = next(c for c in checks if c.name == "python (agent)")
    assert not python.ok and "RHEL 8 ships 3.6" in python.detail and "[run] interpreter" in python.fix


def test_macos_rsync_is_detected():
    assert "brew install rsync" in local_rsync_check("openrsync: protocol version 29\n").fix
    assert not local_rsync_check("rsync  version 2.6.9  protocol version 29\n").ok
    assert local_rsync_check("rsync  version 3.2.7  protocol version 31\n").ok

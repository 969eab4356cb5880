"""`tether doctor` against the real testbed: each broken hop is reported with its fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from testbed import Testbed
from workspaces import load_test_workspace, write_workspace

from tui.cli import main
from tui.doctor import debugpy_install_fix, local_rsync_check, node_checks, parse_node_report

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


def test_debugpy_missing_is_no_failure_when_tether_provides_its_own(
    needs_netns: Testbed, tether_home, tmp_path, capsys
):
    # The default, provide_debugpy = "auto": Tether copies its own debugpy there when the run starts.
    config = write_workspace(tmp_path, needs_netns, interpreter=needs_netns.plain_python)
    code, out = doctor(config, capsys)
    debugpy = line_of(out, "debugpy")
    assert debugpy.startswith("[ok  ] debugpy:"), out
    assert f"{needs_netns.plain_python} cannot import debugpy" in debugpy
    assert "Tether copies its own debugpy" in debugpy and 'provide_debugpy = "auto"' in debugpy
    assert "pip install --user debugpy" not in out


def test_debugpy_fix_works_under_pep_668(needs_netns: Testbed, tether_home, tmp_path, capsys):
    """provide_debugpy = "never" on Debian 12's python: the fix names Tether's copy first, and its
    pip command gets past "externally-managed-environment" (checked on the node with --no-index, so
    nothing is installed), where the old `pip install --user debugpy` is refused."""
    config = write_workspace(
        tmp_path, needs_netns, interpreter=needs_netns.plain_python, extra='[debug]\nprovide_debugpy = "never"'
    )
    code, out = doctor(config, capsys)
    assert code == 1
    debugpy = line_of(out, "debugpy")
    assert debugpy.startswith("[FAIL] debugpy:") and 'provide_debugpy = "never"' in debugpy
    assert 'set [debug] provide_debugpy = "auto"' in debugpy and "Tether copies its own debugpy" in debugpy
    managed = needs_netns.node_run_as_user(
        f"{needs_netns.plain_python} -c 'import sysconfig, os; "
        'print(os.path.isfile(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")))\''
    )
    if managed.stdout.strip() != "True":
        assert "--break-system-packages" not in debugpy  # only where PEP 668 asks for it
        pytest.skip(f"{needs_netns.plain_python} on the node is not externally managed: nothing to prove there")
    assert "-m venv" in debugpy
    offered = re.findall(r"`([^`]*--break-system-packages[^`]*)`", debugpy)
    assert offered, debugpy
    old = needs_netns.node_run_as_user(f"{needs_netns.plain_python} -m pip install --user debugpy --no-index")
    assert "externally-managed-environment" in old.stdout + old.stderr
    tried = needs_netns.node_run_as_user(f"{offered[0]} --no-index")
    assert "externally-managed-environment" not in tried.stdout + tried.stderr
    assert "debugpy" in tried.stdout + tried.stderr  # pip got as far as looking for it


@pytest.mark.parametrize(
    ("probe", "wanted", "unwanted"),
    [
        ("3.11 managed", ["--user --break-system-packages", "-m venv"], []),
        ("3.11 managed,nopip", ["-m venv"], ["--break-system-packages"]),
        ("3.11 own", ["`python3 -m pip install debugpy`"], ["--user", "--break-system-packages"]),
        ("3.9 system", ["--user debugpy"], ["--break-system-packages"]),
    ],
)
def test_debugpy_install_fix_fits_the_python(probe: str, wanted: list[str], unwanted: list[str]):
    fix = debugpy_install_fix("python3", probe)
    assert all(text in fix for text in wanted) and not any(text in fix for text in unwanted), fix


def test_tether_copy_too_new_for_the_run_python_is_a_failure(tmp_path, needs_netns: Testbed):
    workspace = load_test_workspace(tmp_path, needs_netns)
    values = parse_node_report("host=n1\nrun_python=/usr/bin/python3\ndebugpy=\nrun_python_env=3.6 system\n")
    check = next(c for c in node_checks(workspace, values) if c.name == "debugpy")
    assert not check.ok and "needs Python >=" in check.detail and "is 3.6" in check.detail


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
    checks = node_checks(
        workspace,
        parse_node_report(
            "host=n1\ntmux=/usr/bin/tmux\nrsync=/usr/bin/rsync\nagent_python=\nrun_python=/usr/bin/python3\ndebugpy=1.8.0\ndisk_free_kb=99999999\n"
        ),
    )
    python = next(c for c in checks if c.name == "python (agent)")
    assert not python.ok and "RHEL 8 ships 3.6" in python.detail and "[run] interpreter" in python.fix


def test_macos_rsync_is_detected():
    assert "brew install rsync" in local_rsync_check("openrsync: protocol version 29\n").fix
    assert not local_rsync_check("rsync  version 2.6.9  protocol version 29\n").ok
    assert local_rsync_check("rsync  version 3.2.7  protocol version 31\n").ok

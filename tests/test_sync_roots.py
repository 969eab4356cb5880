"""Dangerous remote roots: refused in tether.toml and, after resolving symlinks, on the node."""

from __future__ import annotations

import pytest
from test_sync_support import REMOTE, fresh_remote, running_engine

from tui.config.rules import RuleError, check_remote_root
from tui.node.protocol_files import root_refusal
from tui.sync.safety import SyncRefused

SYSTEM = [
    "/tmp",
    "/var",
    "/etc",
    "/usr",
    "/opt",
    "/srv",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/boot",
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/root",
    "/home",
    "/mnt",
    "/media",
    "/var/tmp",
    "/usr/local",
    "/private/tmp",
]
INSIDE_SYSTEM = ["/etc/ssh", "/usr/lib/python3", "/proc/self", "/sys/fs", "/boot/grub", "/dev/shm/x"]
HOME_DOTS = [
    "~/.ssh",
    "~/.config",
    "~/.cache",
    "~/.local",
    "~/.bashrc.d",
    "/home/bob/.ssh",
    "/root/.config",
    "~/.ssh/keys",
    "~/.cache/tether/sync",
]
FINE = [
    "~/thesis",
    "~/work/mnist",
    "/scratch/me/p",
    "/tmp/tether-demo-ab12/remote",
    "/tmp/me/x",
    "/opt/project/me",
    "/home/bob/work",
    "~/.config-backup-is-a-name/no",
    "~/work/.hidden",
    "/var/tmp/me/p",
]


@pytest.mark.parametrize("root", SYSTEM + INSIDE_SYSTEM + HOME_DOTS)
def test_config_refuses_system_folders_and_the_homes_dot_folders(root):
    with pytest.raises(RuleError) as refused:
        check_remote_root(root, "mnist")
    assert "tether deletes remote files that are not on the laptop" in refused.value.message
    assert "~/work/mnist" in refused.value.hint


@pytest.mark.parametrize("root", FINE)
def test_config_keeps_project_folders(root):
    assert check_remote_root(root, "mnist") == root


@pytest.mark.parametrize("real", ["/tmp", "/usr", "/etc/ssh", "/home", "/home/me/.ssh", "/home/me/.config", "/"])
def test_the_node_refuses_the_resolved_path(real):
    assert root_refusal(real, "/home/me") is not None


@pytest.mark.parametrize(
    "real", ["/home/me/work/p", "/tmp/tether-demo-1/remote", "/scratch/me/p", "/var/lib/svc/work/p"]
)
def test_the_node_keeps_project_folders(real):
    home = "/var/lib/svc" if real.startswith("/var/lib/svc") else "/home/me"  # a service account's home
    assert root_refusal(real, home) is None


@pytest.mark.needs_netns
@pytest.mark.parametrize("link_to", ["/tmp", "~/.config", "/etc"])
async def test_a_root_that_resolves_to_a_system_or_dot_folder_is_refused_on_the_node(
    needs_netns, tether_home, tmp_path, link_to
):
    testbed = needs_netns
    fresh_remote(testbed)
    testbed.node_run_as_user(
        f"mkdir -p ~/work ~/.config && touch ~/.config/keep && ln -sfn {link_to} ~/{REMOTE}", check=True
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.py").write_text("a\n")
    try:
        with pytest.raises(SyncRefused) as refused:
            async with running_engine(testbed, ws):
                pass
        assert "refusing to sync" in str(refused.value) and "resolves to" in str(refused.value)
        assert testbed.node_run_as_user("test -e ~/.config/keep").returncode == 0
    finally:
        testbed.node_run_as_user(f"rm -f ~/{REMOTE}")

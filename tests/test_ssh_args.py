"""The ssh argv builders: what Tether asks OpenSSH to do (pure, no ssh started)."""

from pathlib import Path

from tui.remote.ssh import (
    Destination,
    Hop,
    SshSettings,
    command_argv,
    describe_failure,
    fix_for,
    master_argv,
    parse_master_pid,
    rsync_shell,
)

SETTINGS = SshSettings(ssh_config=Path("/cfg"), connect_timeout=7, control_persist=600)
LOGIN = Hop(Destination("login"), Path("/run/t/ws-l"), jumps=(Destination("bastion", "me", 2222),))
NODE = Hop(Destination("compute01"), Path("/run/t/ws-n"), via=LOGIN)


def option(argv: list[str], name: str) -> str:
    values = [argv[i + 1] for i, a in enumerate(argv) if a == "-o" and argv[i + 1].startswith(name + "=")]
    assert len(values) == 1, (name, argv)
    return values[0].split("=", 1)[1]


def test_destination_parse_forms():
    assert Destination.parse("alias") == Destination("alias")
    assert Destination.parse("me@host") == Destination("host", "me")
    assert Destination.parse("me@host:2222") == Destination("host", "me", 2222)
    assert Destination.parse("host:22").args() == ["-p", "22", "host"]


def test_login_master_persists_backgrounds_and_uses_jumps():
    argv = master_argv(SETTINGS, LOGIN)
    assert argv[:3] == ["ssh", "-F", "/cfg"]
    assert option(argv, "ControlMaster") == "yes"
    assert option(argv, "ControlPersist") == "600"
    assert option(argv, "ControlPath") == "/run/t/ws-l"
    assert argv[argv.index("-J") + 1] == "me@bastion:2222"
    assert argv[-3:] == ["-N", "-f", "login"]


def test_node_goes_through_the_login_master_never_a_second_login():
    argv = master_argv(SETTINGS, NODE)
    proxy = option(argv, "ProxyCommand")
    # The proxy rides on the login master's socket and may not start a master of its own.
    assert "ControlPath=/run/t/ws-l" in proxy and "ControlMaster=no" in proxy
    assert "-W %h:%p" in proxy and proxy.endswith(" login")
    assert option(argv, "ControlPath") == "/run/t/ws-n"


def test_commands_reuse_the_master_and_pass_one_shell_string():
    argv = command_argv(SETTINGS, NODE, "echo 'a b'")
    assert option(argv, "ControlMaster") == "no"
    assert argv[-3:] == ["compute01", "--", "echo 'a b'"]
    assert "-T" in argv and "-t" not in argv
    assert "-t" in command_argv(SETTINGS, NODE, "tmux attach", tty=True)


def test_rsync_shell_rides_on_the_master():
    shell = rsync_shell(SETTINGS, LOGIN)
    assert shell.startswith("ssh -F /cfg") and "ControlPath=/run/t/ws-l" in shell


def test_master_pid_from_check_output():
    assert parse_master_pid("Master running (pid=4242)\r\n") == 4242
    assert parse_master_pid("Control socket connect(/x): No such file or directory") is None


def test_failures_are_explained_with_a_fix():
    denied = (
        "Access denied by pam_slurm_adopt: you have no active jobs on this node\nConnection closed by 10.0.0.5 port 22"
    )
    assert "pam_slurm_adopt" in describe_failure("node7", denied)
    assert "allocate a job" in fix_for(denied)
    assert "jump host" in fix_for("ssh: connect to host 10.1.1.1 port 22: No route to host")
    assert "authorized_keys" in fix_for("tb@127.0.0.1: Permission denied (publickey).")

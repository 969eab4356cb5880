"""tether.toml loading: what the user sees for each mistake, and what a good file loads into.

Error tests assert on the rendered lines (``file:line: key: message; hint``), since that is the
whole user interface of a config error. Each runs with the config's folder as the working folder,
so the file shows as plain ``tether.toml``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.config import (
    CONFIG_FILENAME,
    ConfigError,
    HostSpec,
    KubeOptions,
    PaneSpec,
    PortForward,
    SlurmOptions,
    Workspace,
    find_config,
    load_workspace,
    parse_workspace,
)
from tui.config.lines import KeyLines, KeyPath
from tui.config.rules import RuleError, parse_host_spec
from tui.config.schema import toml_string
from tui.errors import TetherError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

MINIMAL = """
[workspace]
remote_root = "~/work/mnist"

[connection]
login = "cluster"
"""


def write_config(folder: Path, text: str) -> Path:
    path = folder / CONFIG_FILENAME
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_lines(folder: Path, text: str) -> list[str]:
    """The lines the user reads for a config with problems."""
    with pytest.raises(ConfigError) as caught:
        load_workspace(write_config(folder, text))
    return str(caught.value).splitlines()


def only_error(folder: Path, text: str) -> str:
    lines = error_lines(folder, text)
    assert len(lines) == 1, lines
    return lines[0]


# -- unknown keys and sections -----------------------------------------------------------------


def test_unknown_key_names_file_line_key_and_suggestion(in_tmp: Path) -> None:
    line = only_error(
        in_tmp,
        """
        [workspace]
        remote_root = "~/work/mnist"
        nmae = "mnist"

        [connection]
        login = "cluster"
    """,
    )
    assert line == "tether.toml:3: workspace.nmae: unknown key 'nmae' in [workspace]; did you mean 'name'?"


def test_misspelled_required_key_reports_both_the_typo_and_the_missing_key(in_tmp: Path) -> None:
    lines = error_lines(
        in_tmp,
        """
        [connection]
        login = "cluster"

        [workspace]
        name = "mnist"
        remote_rot = "~/work/mnist"
    """,
    )
    assert lines == [
        "tether.toml:4: workspace.remote_root: missing required key 'remote_root'; "
        'add remote_root = "~/work/mnist" under [workspace]',
        "tether.toml:6: workspace.remote_rot: unknown key 'remote_rot' in [workspace]; did you mean 'remote_root'?",
    ]


def test_key_in_the_wrong_section_says_where_it_belongs(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + 'command = "python train.py"\n')
    assert (
        line
        == "tether.toml:6: connection.command: unknown key 'command' in [connection]; 'command' belongs in [run]; move it there"
    )


def test_unknown_section_suggests_the_right_one(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + '\n[sheduler]\nkind = "slurm"\n')
    assert line == "tether.toml:7: sheduler: unknown section [sheduler]; did you mean [scheduler]?"


def test_key_above_every_section_is_pointed_to_its_section(in_tmp: Path) -> None:
    lines = error_lines(in_tmp, 'login = "cluster"\n' + MINIMAL.replace('login = "cluster"', 'node = ""'))
    assert lines == [
        "tether.toml:1: login: 'login' is not inside a section; move it under [connection]",
        "tether.toml:6: connection.login: missing required key 'login'; add login = \"cluster\" under [connection]",
    ]


# -- types -------------------------------------------------------------------------------------


def test_wrong_type_says_expected_and_found(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + 'connect_timeout = "abc"\n')
    assert line == (
        "tether.toml:6: connection.connect_timeout: expected an integer, got a string 'abc'; "
        "write it like connect_timeout = 15"
    )


def test_quoted_number_hint_says_remove_the_quotes(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + 'connect_timeout = "30"\n')
    assert line.endswith("remove the quotes: connect_timeout = 30")


def test_string_where_an_array_is_expected(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + '\n[run]\nenv = "module load cuda"\n')
    assert line == (
        "tether.toml:8: run.env: expected an array of strings, got a string 'module load cuda'; "
        'write an array: env = ["module load cuda"]'
    )


def test_wrong_element_in_a_multiline_array_points_at_its_own_line(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + '\n[sync]\nignore = [\n  "data/",\n  42,\n]\n')
    assert line.startswith("tether.toml:10: sync.ignore[1]: expected a string, got an integer 42;")


def test_boolean_is_not_an_integer(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + "\n[debug]\nranks = true\n")
    assert line == "tether.toml:8: debug.ranks: expected an integer, got a boolean true; write it like ranks = 1"


def test_section_that_is_not_a_table(in_tmp: Path) -> None:
    line = only_error(in_tmp, 'run = "python x.py"\n' + MINIMAL)
    assert line.startswith(
        "tether.toml:1: run: expected a table, got a string 'python x.py'; write it as a [run] section"
    )


# -- missing required keys ---------------------------------------------------------------------


def test_missing_required_key_points_at_its_section_header(in_tmp: Path) -> None:
    line = only_error(
        in_tmp,
        """
        [workspace]
        name = "mnist"
        remote_root = "~/work/mnist"

        [connection]
        node = "gpu01"
    """,
    )
    assert (
        line
        == "tether.toml:5: connection.login: missing required key 'login'; add login = \"cluster\" under [connection]"
    )


def test_missing_section_points_at_line_1_and_says_add_the_section(in_tmp: Path) -> None:
    line = only_error(in_tmp, '# my project\n\n[connection]\nlogin = "cluster"\n')
    assert line == (
        "tether.toml:1: workspace.remote_root: missing required key 'remote_root'; "
        'add a [workspace] section with remote_root = "~/work/tmp"'.replace("tmp", in_tmp.name)
    )


def test_empty_file_reports_both_required_keys(in_tmp: Path) -> None:
    lines = error_lines(in_tmp, "")
    assert [line.split(": ")[1] for line in lines] == ["workspace.remote_root", "connection.login"]
    assert all(line.startswith("tether.toml:1: ") for line in lines)


# -- TOML syntax -------------------------------------------------------------------------------


def test_syntax_error_names_the_line_and_a_fix(in_tmp: Path) -> None:
    line = only_error(in_tmp, '[workspace]\nname = mnist\nremote_root = "~/work/mnist"\n')
    assert line == 'tether.toml:2: invalid TOML: Invalid value (column 8); text values need quotes, e.g. name = "mnist"'


def test_unterminated_string(in_tmp: Path) -> None:
    line = only_error(in_tmp, '[workspace]\nremote_root = "~/work/mnist\n[connection]\n')
    assert line.startswith("tether.toml:2: invalid TOML: ")


def test_duplicate_key_points_at_the_second_definition(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + 'login = "other"\n')
    assert (
        line == "tether.toml:6: invalid TOML: Cannot overwrite a value; a key or [section] is written twice; keep one"
    )


def test_duplicate_section_points_at_the_second_header(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + '\n[workspace]\nname = "x"\n')
    assert line.startswith("tether.toml:7: invalid TOML: ")
    assert "written twice" in line


# -- the remote root ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "message", "hint"),
    [
        (
            "work/mnist",
            "'work/mnist' is a relative path; the remote root must be absolute or start with '~/'",
            "write ~/work/",
        ),
        ("./mnist", "is a relative path", "write ~/work/"),
        ("/", "'/' is the whole filesystem", "pick a folder inside your home such as ~/work/"),
        ("//", "'/' is the whole filesystem", "pick a folder inside your home such as ~/work/"),
        ("~", "'~' is your home directory", "pick a folder inside your home such as ~/work/"),
        ("~/", "'~/' is your home directory", "pick a folder inside your home such as ~/work/"),
        ("~/.", "is your home directory", "pick a folder inside your home such as ~/work/"),
        (
            "/home",
            "'/home' is a home directory or holds them",
            "pick a folder inside your home such as ~/work/",
        ),
        (
            "/home/bob",
            "'/home/bob' is a home directory or holds them",
            "pick a folder inside your home such as ~/work/",
        ),
        ("/home/bob/", "is a home directory", "pick a folder inside your home"),
        ("/root", "is a home directory", "pick a folder inside your home"),
        ("/Users/alice", "is a home directory", "pick a folder inside your home"),
        ("~/work/../..", "contains '..'", "without '..'"),
        ("/scratch/../home/bob", "contains '..'", "without '..'"),
        ("~bob/work", "'~user' paths are not supported", "use '~/...' or an absolute path"),
        ("", "is empty", 'write it like remote_root = "~/work/'),
    ],
)
def test_dangerous_or_relative_remote_root_is_refused(in_tmp: Path, root: str, message: str, hint: str) -> None:
    line = only_error(in_tmp, MINIMAL.replace("~/work/mnist", root))
    assert line.startswith("tether.toml:2: workspace.remote_root: ")
    assert message in line
    assert hint in line.split("; ")[-1]
    assert in_tmp.name in line or root in ("~bob/work",) or ".." in root


@pytest.mark.parametrize(
    ("root", "stored"),
    [
        ("~/work/mnist", "~/work/mnist"),
        ("~/work//mnist/", "~/work/mnist"),
        ("/scratch/me/./x", "/scratch/me/x"),
        ("/home/bob/work", "/home/bob/work"),
        ("/Users/alice/proj", "/Users/alice/proj"),
    ],
)
def test_good_remote_roots_are_normalised(in_tmp: Path, root: str, stored: str) -> None:
    workspace = load_workspace(write_config(in_tmp, MINIMAL.replace("~/work/mnist", root)))
    assert workspace.remote_root == stored


# -- ports -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "tether.toml:8: ports.tensorboard: port 0 is out of range; use a port between 1 and 65535"),
        (
            "70000",
            "tether.toml:8: ports.tensorboard: port 70000 is out of range; use a port between 1 and 65535",
        ),
        (
            '"abc"',
            "tether.toml:8: ports.tensorboard: expected a port number (an integer) or a table like "
            "{ remote = 6006, local = 16006 }, got a string 'abc'; write it like tensorboard = 6006",
        ),
        (
            "{ remote = 70000 }",
            "tether.toml:8: ports.tensorboard.remote: port 70000 is out of range; use a port between 1 and 65535",
        ),
        (
            "{ remote = 6006, local = -1 }",
            "tether.toml:8: ports.tensorboard.local: port -1 is out of range; use a port between 0 and 65535",
        ),
        (
            "{ remote = 6006, lokal = 1 }",
            "tether.toml:8: ports.tensorboard.lokal: unknown key 'lokal' in [ports.tensorboard]; did you mean 'local'?",
        ),
        (
            "{ local = 16006 }",
            "tether.toml:8: ports.tensorboard.remote: missing required key 'remote'; add remote = 6006 under [ports.tensorboard]",
        ),
    ],
)
def test_bad_port_in_ports_section(in_tmp: Path, value: str, expected: str) -> None:
    assert only_error(in_tmp, MINIMAL + f"\n[ports]\ntensorboard = {value}\n") == expected


def test_two_forwards_on_one_local_port(in_tmp: Path) -> None:
    line = only_error(
        in_tmp, MINIMAL + "\n[ports]\na = { remote = 1, local = 9000 }\nb = { remote = 2, local = 9000 }\n"
    )
    assert line.startswith("tether.toml:9: ports.b: local port 9000 is also used by 'a';")


@pytest.mark.parametrize(
    ("login", "message"),
    [
        ("cluster:0", "port 0 in 'cluster:0' is out of range; use a port between 1 and 65535"),
        (
            "me@cluster:70000",
            "port 70000 in 'me@cluster:70000' is out of range; use a port between 1 and 65535",
        ),
        ("me@cluster:abc", "port 'abc' in 'me@cluster:abc' is not a number; use a port between 1 and 65535"),
        ("cluster:", "port '' in 'cluster:' is not a number"),
        (
            "@cluster",
            "'@cluster' has nothing before '@'; write an ssh_config alias, user@host or user@host:port",
        ),
        ("me@:22", "'me@:22' has no host name"),
        ("my cluster", "'my cluster' contains spaces"),
        ("ssh://me@cluster", "'ssh://me@cluster' is a URL; drop the scheme"),
    ],
)
def test_bad_login_is_an_error_on_connection_login(in_tmp: Path, login: str, message: str) -> None:
    line = only_error(in_tmp, MINIMAL.replace('"cluster"', f'"{login}"'))
    assert line.startswith(f"tether.toml:5: connection.login: {message}")


def test_bad_jump_host_points_at_its_entry(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + 'jump = ["gw", "gw2:99999"]\n')
    assert line.startswith("tether.toml:6: connection.jump[1]: port 99999 in 'gw2:99999' is out of range")


# -- enums and other rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "allowed", "example"),
    [
        (
            "debug",
            "mode",
            "atach",
            '"attach", "wait", "off"',
            'did you mean "attach"?',
        ),
        ("connection", "sync_via", "both", '"node", "login"', 'write it like sync_via = "node"'),
        ("scheduler", "kind", "slurmm", '"direct", "slurm", "pbs", "kube"', 'did you mean "slurm"?'),
    ],
)
def test_bad_enum_lists_the_allowed_values(
    in_tmp: Path, section: str, key: str, value: str, allowed: str, example: str
) -> None:
    text = MINIMAL + (f'{key} = "{value}"\n' if section == "connection" else f'\n[{section}]\n{key} = "{value}"\n')
    line = only_error(in_tmp, text)
    assert line.startswith(
        f"tether.toml:{6 if section == 'connection' else 8}: {section}.{key}: '{value}' is not one of {allowed}; "
    )
    assert example in line


def test_node_scheduler_needs_a_scheduler(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + 'node = "scheduler"\n')
    assert line == (
        'tether.toml:6: connection.node: node = "scheduler" needs a scheduler, but [scheduler] kind is "direct"; '
        'set kind = "slurm" (or "pbs", "kube") under [scheduler], or name the node'
    )


def test_option_of_another_scheduler_kind(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + '\n[scheduler]\nkind = "pbs"\npartition = "gpu"\n')
    assert line == (
        "tether.toml:9: scheduler.partition: 'partition' is a slurm option, but scheduler.kind is \"pbs\"; "
        'set kind = "slurm", or remove partition'
    )


def test_misspelled_scheduler_option(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL + '\n[scheduler]\nkind = "slurm"\npartiton = "gpu"\n')
    assert line == "tether.toml:9: scheduler.partiton: unknown key 'partiton' in [scheduler]; did you mean 'partition'?"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ('time = "4 hours"', "scheduler.time: '4 hours' is not a Slurm time"),
        ('mem = "lots"', "scheduler.mem: 'lots' is not a memory size"),
        ("nodes = 0", "scheduler.nodes: must be at least 1, got 0"),
        ('extra = ["#SBATCH --exclusive"]', "scheduler.extra[0]: '#SBATCH --exclusive' is not an option"),
    ],
)
def test_bad_slurm_options(in_tmp: Path, options: str, expected: str) -> None:
    line = only_error(in_tmp, MINIMAL + f'\n[scheduler]\nkind = "slurm"\n{options}\n')
    assert line.startswith(f"tether.toml:9: {expected}")


def test_kube_needs_exactly_one_of_pod_and_selector(in_tmp: Path) -> None:
    neither = only_error(in_tmp, MINIMAL + '\n[scheduler]\nkind = "kube"\n')
    assert neither == (
        'tether.toml:7: scheduler: kind = "kube" needs the pod to use; add pod = "train-0" or selector = "app=train" under [scheduler]'
    )
    both = only_error(in_tmp, MINIMAL + '\n[scheduler]\nkind = "kube"\npod = "a"\nselector = "app=b"\n')
    assert both.startswith("tether.toml:10: scheduler.selector: give either pod or selector, not both")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '\n[layout]\npanes = ["run", "htpo"]\n',
            "tether.toml:8: layout.panes[1]: unknown pane 'htpo'; did you mean 'htop'?",
        ),
        (
            '\n[layout]\npanes = [\n  "run",\n  { name = "logs" },\n]\n',
            "tether.toml:10: layout.panes[1]: pane 'logs' needs a command",
        ),
        (
            '\n[layout]\npanes = ["run", "run"]\n',
            "tether.toml:8: layout.panes[1]: pane 'run' is listed twice",
        ),
        ("\n[layout]\npanes = []\n", "tether.toml:8: layout.panes: is empty"),
        (
            "\n[sync]\ndelete_threshold = 1.5\n",
            "tether.toml:8: sync.delete_threshold: must be greater than 0 and at most 1, got 1.5",
        ),
        (
            '\n[run]\npass_env = ["WANDB-KEY"]\n',
            "tether.toml:8: run.pass_env[0]: 'WANDB-KEY' is not an environment variable name",
        ),
        ('\n[run]\ncommand = ""\n', "tether.toml:8: run.command: is empty"),
        ("\n[debug]\nwait_timeout = -5\n", "tether.toml:8: debug.wait_timeout: must be at least 0, got -5"),
        ("\n[ui]\nstats_interval = 0\n", "tether.toml:8: ui.stats_interval: must be greater than 0, got 0"),
        (
            '\n[ui]\nterminal_alert = "desktp"\n',
            'tether.toml:8: ui.terminal_alert: \'desktp\' is not one of "off", "bell", "desktop"',
        ),
        ('\n[ui]\nlong_lines = "wrap"\n', 'tether.toml:8: ui.long_lines: \'wrap\' is not one of "fold", "scroll"'),
        (
            'control_persist = "10 minutes"\n',
            "tether.toml:6: connection.control_persist: '10 minutes' is not a duration",
        ),
        (
            "control_persist = 0\n",
            "tether.toml:6: connection.control_persist: 0 would keep the connection open forever",
        ),
        ('ssh_config = "missing_config"\n', "tether.toml:6: connection.ssh_config: file "),
        (
            "\n[workspace.x]\n",
            "tether.toml:7: workspace.x: unknown key 'x' in [workspace]; known keys: local_root, name, remote_root",
        ),
    ],
)
def test_other_rules(in_tmp: Path, text: str, expected: str) -> None:
    assert only_error(in_tmp, MINIMAL + text).startswith(expected)


def test_missing_local_root(in_tmp: Path) -> None:
    line = only_error(in_tmp, MINIMAL.replace("[workspace]", '[workspace]\nlocal_root = "src"'))
    assert line.startswith(
        f"tether.toml:2: workspace.local_root: folder {in_tmp.resolve() / 'src'} does not exist; create it"
    )


# -- all at once -------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_in_file_order(in_tmp: Path) -> None:
    lines = error_lines(
        in_tmp,
        """
        [workspace]
        remote_root = "/home/bob"
        nmae = "x"

        [connection]
        login = "me@cluster:0"
        connect_timeout = "soon"

        [ports]
        tensorboard = 70000

        [debug]
        mode = "never"

        [scheduler]
        kind = "direct"
        time = "01:00:00"
    """,
    )
    assert [line.split(": ")[0:2] for line in lines] == [
        ["tether.toml:2", "workspace.remote_root"],
        ["tether.toml:3", "workspace.nmae"],
        ["tether.toml:6", "connection.login"],
        ["tether.toml:7", "connection.connect_timeout"],
        ["tether.toml:10", "ports.tensorboard"],
        ["tether.toml:13", "debug.mode"],
        ["tether.toml:17", "scheduler.time"],
    ]
    with pytest.raises(ConfigError) as caught:
        load_workspace(in_tmp / CONFIG_FILENAME)
    assert len(caught.value.problems) == 7
    assert all(problem.hint for problem in caught.value.problems)


def test_config_error_is_a_tether_error_with_exit_code_2(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_workspace(write_config(in_tmp, ""))
    assert isinstance(caught.value, TetherError)
    assert caught.value.exit_code == 2
    problem = caught.value.problems[0]
    assert (problem.path, problem.line, problem.key) == (Path("tether.toml"), 1, "workspace.remote_root")


def test_unreadable_file(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_workspace(in_tmp / "nope.toml")
    assert (
        str(caught.value)
        == "nope.toml: cannot read the file: No such file or directory; check the path, or run `tether init` to create it"
    )


def test_path_outside_the_working_folder_is_shown_in_full(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_workspace(write_config(tmp_path, ""))
    assert str(caught.value).startswith(f"{tmp_path / CONFIG_FILENAME}:1: ")


# -- good files --------------------------------------------------------------------------------

FULL = """
[workspace]
name = "mnist"
local_root = "src"
remote_root = "/scratch/me/mnist/"

[connection]
login = "me@login.cluster.org:2222"
node = ""
jump = ["gw", "bob@bastion:22"]
sync_via = "login"
ssh_config = "ssh/config"
control_persist = "1h30m"
connect_timeout = 30

[run]
command = "python train.py --epochs 3"
interpreter = "/opt/conda/bin/python"
env = ["module load cuda", "conda activate torch"]
prefix = "apptainer exec --nv img.sif"
pass_env = ["WANDB_API_KEY"]
restart_on_sync = true

[sync]
ignore = ["data/"]
protect = ["outputs/"]
delete_threshold = 1

[ports]
tensorboard = 6006
jupyter = { remote = 8888, local = 18888 }

[layout]
panes = ["run", { name = "logs", command = "tail -F train.log" }, { name = "gpu", command = "watch rocm-smi" }]

[debug]
mode = "wait"
wait_timeout = 60
ranks = 4

[scheduler]
kind = "slurm"
partition = "gpu"
time = "04:00:00"
gpus = 2
mem = "32G"
cpus_per_task = 8
extra = ["--exclusive"]

[ui]
theme = "light"
stats_interval = 0.5
"""


def test_full_file_loads_into_the_dataclasses(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "ssh").mkdir()
    (tmp_path / "ssh" / "config").write_text("Host gw\n")
    workspace = load_workspace(write_config(tmp_path, FULL))

    assert workspace.name == "mnist"
    assert workspace.config_path == (tmp_path / CONFIG_FILENAME).resolve()
    assert workspace.local_root == (tmp_path / "src").resolve() and workspace.local_root.is_absolute()
    assert workspace.remote_root == "/scratch/me/mnist"

    connection = workspace.connection
    assert connection.login == HostSpec("me@login.cluster.org:2222", "me", "login.cluster.org", 2222)
    assert connection.jump == (
        HostSpec("gw", None, "gw", None),
        HostSpec("bob@bastion:22", "bob", "bastion", 22),
    )
    assert connection.node == "scheduler" and connection.node_from_scheduler and not workspace.node_is_login
    assert connection.sync_via == "login"
    assert connection.ssh_config == (tmp_path / "ssh" / "config").resolve()
    assert (connection.control_persist, connection.connect_timeout) == (5400, 30)

    run = workspace.run
    assert run.command == "python train.py --epochs 3" and run.interpreter == "/opt/conda/bin/python"
    assert run.env == ("module load cuda", "conda activate torch") and run.pass_env == ("WANDB_API_KEY",)
    assert run.prefix == "apptainer exec --nv img.sif" and run.restart_on_sync is True

    assert workspace.sync.ignore == ("data/",) and workspace.sync.protect == ("outputs/",)
    assert workspace.sync.delete_threshold == 1.0
    assert workspace.ports == (PortForward("tensorboard", 6006, 0), PortForward("jupyter", 8888, 18888))
    assert workspace.layout.panes == (
        PaneSpec("run"),
        PaneSpec("logs", "tail -F train.log"),
        PaneSpec("gpu", "watch rocm-smi"),
    )
    assert (workspace.debug.mode, workspace.debug.wait_timeout, workspace.debug.ranks) == ("wait", 60, 4)
    assert workspace.scheduler.kind == "slurm"
    assert workspace.scheduler.slurm == SlurmOptions(
        partition="gpu", time="04:00:00", gpus="2", mem="32G", cpus_per_task=8, extra=("--exclusive",)
    )
    assert (workspace.ui.theme, workspace.ui.stats_interval) == ("light", 0.5)
    hash(workspace)  # frozen all the way down


def test_defaults_when_sections_are_missing(tmp_path: Path) -> None:
    folder = tmp_path / "my project"
    folder.mkdir()
    workspace = load_workspace(write_config(folder, MINIMAL))
    assert workspace.name == "my-project"  # the folder's name, made safe for tmux and paths
    assert workspace.local_root == folder.resolve()
    assert workspace.node_is_login and not workspace.connection.node_from_scheduler
    connection = workspace.connection
    assert (connection.jump, connection.sync_via, connection.ssh_config) == ((), "node", None)
    assert (connection.control_persist, connection.connect_timeout) == (600, 15)
    assert workspace.run.command == "python main.py" and workspace.run.interpreter == "python3"
    assert workspace.sync.protect == ("outputs/", "checkpoints/", "wandb/", "*.log")
    assert workspace.sync.delete_threshold == 0.5
    assert workspace.ports == ()
    assert [pane.name for pane in workspace.layout.panes] == ["run", "htop", "gpu", "shell"]
    assert (workspace.debug.mode, workspace.debug.wait_timeout, workspace.debug.ranks) == ("attach", 0, 1)
    assert workspace.scheduler.kind == "direct" and workspace.scheduler.options is None
    assert (workspace.ui.theme, workspace.ui.stats_interval) == ("", 2.0)  # "": the theme the user last picked


@pytest.mark.parametrize("kind", ["slurm", "pbs", "kube"])
def test_empty_node_means_scheduler_for_schedulers_that_give_nodes(tmp_path: Path, kind: str) -> None:
    extra = 'pod = "train-0"\n' if kind == "kube" else ""
    workspace = load_workspace(write_config(tmp_path, MINIMAL + f'\n[scheduler]\nkind = "{kind}"\n{extra}'))
    assert workspace.connection.node == "scheduler" and workspace.connection.node_from_scheduler


def test_named_node_with_a_scheduler_stays_named(tmp_path: Path) -> None:
    workspace = load_workspace(
        write_config(tmp_path, MINIMAL + 'node = "gpu07"\n\n[scheduler]\nkind = "pbs"\nwalltime = "1:00:00"\n')
    )
    assert workspace.connection.node == "gpu07" and not workspace.connection.node_from_scheduler
    assert workspace.scheduler.pbs is not None and workspace.scheduler.pbs.walltime == "1:00:00"


def test_kube_options(tmp_path: Path) -> None:
    workspace = load_workspace(
        write_config(tmp_path, MINIMAL + '\n[scheduler]\nkind = "kube"\ncli = "oc"\nselector = "app=train"\n')
    )
    assert workspace.scheduler.kube == KubeOptions(cli="oc", selector="app=train")


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("cluster", None, "cluster", None),
        ("me@cluster", "me", "cluster", None),
        ("me@login.cluster.org:2222", "me", "login.cluster.org", 2222),
        ("cluster:22", None, "cluster", 22),
        ("me@[::1]:2200", "me", "::1", 2200),
        ("[fe80::1]", None, "fe80::1", None),
        ("::1", None, "::1", None),
        ("first.last@host", "first.last", "host", None),
    ],
)
def test_host_spec_parsing(text: str, user: str | None, host: str, port: int | None) -> None:
    spec = parse_host_spec(text)
    assert (spec.text, spec.user, spec.host, spec.port) == (text, user, host, port)
    assert spec.destination == (f"{user}@{host}" if user else host)


@given(
    user=st.none() | st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True),
    host=st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True),
    port=st.none() | st.integers(1, 65535),
)
def test_host_spec_round_trip(user: str | None, host: str, port: int | None) -> None:
    text = (f"{user}@" if user else "") + host + (f":{port}" if port else "")
    assert parse_host_spec(text) == HostSpec(text, user, host, port)


@given(port=st.integers(max_value=0) | st.integers(min_value=65536))
def test_host_spec_refuses_every_out_of_range_port(port: int) -> None:
    with pytest.raises(RuleError):
        parse_host_spec(f"cluster:{port}")


# -- finding the file --------------------------------------------------------------------------


def test_find_config_walks_up_to_the_nearest_file(tmp_path: Path) -> None:
    write_config(tmp_path, MINIMAL)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_config(deep) == (tmp_path / CONFIG_FILENAME).resolve()
    nearer = write_config(tmp_path / "a", MINIMAL)
    assert find_config(deep) == nearer.resolve()
    assert find_config(nearer) == nearer.resolve()


def test_find_config_without_a_file_says_run_tether_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_config(tmp_path)
    message = str(caught.value)
    assert str(tmp_path.resolve()) in message and "no tether.toml" in message
    assert message.endswith("run `tether init` to create one")


# -- the line scanner --------------------------------------------------------------------------


def test_key_lines_ignore_keys_inside_strings_and_comments() -> None:
    text = textwrap.dedent('''
        # remote_root = "commented out"
        [workspace]
        name = """
        remote_root = "inside a string"
        """
        "quoted key" = 'x = 1'
        remote_root = "~/x"  # remote_root = 1
        a.b.c = 1

        [[pane]]
        x = 1
        [[pane]]
        x = { y = [1,
          {z = 2}] }
    ''')
    lines = KeyLines.scan(text)
    assert lines.line_of(("workspace", "remote_root")) == 8
    assert lines.line_of(("workspace", "quoted key")) == 7
    assert lines.line_of(("workspace", "a")) == 9 and lines.line_of(("workspace", "a", "b", "c")) == 9
    assert lines.line_of(("pane", 1, "x")) == 14
    assert lines.line_of(("pane", 1, "x", "y", 1, "z")) == 15
    assert lines.line_of(("workspace", "missing")) == 3
    assert lines.line_of(("nowhere",)) == 1


def test_parse_workspace_checks_text_without_a_file(tmp_path: Path) -> None:
    workspace = parse_workspace(textwrap.dedent(MINIMAL), tmp_path / CONFIG_FILENAME)
    assert isinstance(workspace, Workspace) and workspace.connection.login.host == "cluster"
    assert not (tmp_path / CONFIG_FILENAME).exists()


_KEYS = st.from_regex(r"[a-z][a-z_]{0,6}", fullmatch=True)
_SCALARS = st.one_of(
    st.integers(-5, 5).map(str),
    st.text(max_size=8).map(toml_string),
    st.text(alphabet="ab=\n[]#\"'", max_size=12).map(lambda text: f'"""{text.replace(chr(34), "")}"""'),
    st.text(alphabet='ab=[]#"', max_size=8).map(lambda text: f"'{text}'"),
)


@st.composite
def _documents(draw: st.DrawFn) -> tuple[str, dict[KeyPath, int]]:
    """A TOML text and the line of each key, counted while it is built."""
    lines: list[str] = []
    expected: dict[KeyPath, int] = {}
    for section in draw(st.lists(_KEYS, unique=True, max_size=4)):
        lines += draw(st.sampled_from([[], ["# comment = 1"], [""]]))
        lines.append(f"[{section}]")
        for key in draw(st.lists(_KEYS, unique=True, max_size=4)):
            expected[(section, key)] = len(lines) + 1
            value = draw(_SCALARS)
            if draw(st.booleans()):  # an array over several lines
                items = draw(st.lists(_SCALARS, max_size=3))
                value = "[\n" + "".join(f"  {item},\n" for item in items) + "]"
            lines += f"{key} = {value}  # {key} = 2".split("\n")
    return "\n".join(lines) + "\n", expected


@given(_documents())
def test_key_lines_match_where_keys_were_written(document: tuple[str, dict[KeyPath, int]]) -> None:
    text, expected = document
    tomllib.loads(text)  # the generator only writes valid TOML
    lines = KeyLines.scan(text)
    assert {path: lines.line_of(path) for path in expected} == expected


# -- [ui.keys] ---------------------------------------------------------------------------------


def test_ui_keys_remap_actions_in_textuals_key_names(in_tmp: Path) -> None:
    workspace = load_workspace(
        write_config(in_tmp, MINIMAL + '\n[ui.keys]\nrestart = "F5"\nhelp = "h"\nstop = ["ctrl+X", "?"]\n')
    )
    assert dict(workspace.ui.keys) == {"restart": "f5", "help": "h", "stop": "ctrl+x,question_mark"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'restrat = "f5"',
            "tether.toml:8: ui.keys.restrat: unknown action 'restrat' in [ui.keys]; did you mean 'restart'?",
        ),
        (
            'theme = "r"',
            "tether.toml:8: ui.keys.theme: 'r' is also the key of 'restart'; give 'restart' another key too",
        ),
        (
            'logs = "f9"\nstop = "f9"',
            "tether.toml:9: ui.keys.stop: 'f9' is also the key of 'logs'; use another key for one of them",
        ),
        (
            'debug_over = "f5"',
            "tether.toml:8: ui.keys.debug_over: 'f5' is also the key of 'debug_continue'; give 'debug_continue' another key too",
        ),
        (
            'debug_stpe = "f8"',
            "tether.toml:8: ui.keys.debug_stpe: unknown action 'debug_stpe' in [ui.keys]; did you mean 'debug_",
        ),
        ('logs = "ctrl+"', "tether.toml:8: ui.keys.logs: 'ctrl+' is not a key; write a character"),
        ('logs = "hyperspace"', "tether.toml:8: ui.keys.logs: 'hyperspace' is not a key"),
        ("logs = 5", "tether.toml:8: ui.keys.logs: expected a key or an array of keys, got an integer 5"),
    ],
)
def test_a_bad_ui_keys_entry_is_a_line_error_with_a_suggestion(in_tmp: Path, text: str, expected: str) -> None:
    assert only_error(in_tmp, MINIMAL + "\n[ui.keys]\n" + text + "\n").startswith(expected)


def test_a_key_moved_away_frees_it_for_another_action(in_tmp: Path) -> None:
    workspace = load_workspace(write_config(in_tmp, MINIMAL + '\n[ui.keys]\nrestart = "f5"\ntheme = "r"\n'))
    assert dict(workspace.ui.keys) == {"restart": "f5", "theme": "r"}


def test_a_key_may_serve_the_dashboard_and_the_debugger_screen(in_tmp: Path) -> None:
    """F5 restarts the run on the dashboard and continues in the debugger: two screens, no clash."""
    workspace = load_workspace(write_config(in_tmp, MINIMAL + '\n[ui.keys]\nrestart = "f5"\ndebug_over = "n"\n'))
    assert dict(workspace.ui.keys) == {"restart": "f5", "debug_over": "n"}

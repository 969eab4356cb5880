"""`tether init`: the file it writes loads, says what each section is for, and is never clobbered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.config import (
    CONFIG_FILENAME,
    ConfigError,
    Workspace,
    load_workspace,
    parse_workspace,
)
from tui.init import (
    ConfigExistsError,
    InitAnswers,
    ask_answers,
    render_config,
    write_config,
)

SECTIONS = ("workspace", "connection", "run", "sync", "ports", "layout", "debug", "scheduler", "ui")


def init(folder: Path, answers: InitAnswers | None = None, *, force: bool = False) -> tuple[Path, Workspace]:
    """What `tether init` does in ``folder``."""
    path = folder / CONFIG_FILENAME
    return path, write_config(path, answers or InitAnswers.defaults_for(folder), force=force)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir()
    return folder


def test_default_answers_write_a_file_that_loads(project: Path) -> None:
    path, workspace = init(project)
    assert path == project / CONFIG_FILENAME and path.is_file()
    loaded = load_workspace(path)
    assert loaded == workspace
    assert loaded.name == "mnist" and loaded.remote_root == "~/work/mnist"
    assert loaded.connection.login.host == "cluster" and loaded.node_is_login
    assert loaded.local_root == project.resolve()


@pytest.mark.parametrize(
    "answers",
    [
        InitAnswers(scheduler="slurm", partition="gpu", time="1-00:00:00", gpus="a100:2"),
        InitAnswers(scheduler="slurm", time=""),
        InitAnswers(scheduler="pbs", queue="gpuq", walltime="02:00:00", resources="nodes=1:ppn=4:gpus=1"),
        InitAnswers(scheduler="kube", namespace="team", pod="train-0"),
        InitAnswers(scheduler="kube", selector="app=train"),
        InitAnswers(
            node="gpu01",
            sync_via="login",
            env=("module load cuda",),
            ports=(("tensorboard", 6006), ("jupyter", 8888)),
        ),
    ],
)
def test_every_kind_of_answers_loads(project: Path, answers: InitAnswers) -> None:
    _, workspace = init(project, answers)
    assert workspace.scheduler.kind == answers.scheduler


def test_answers_appear_in_the_file_and_the_workspace(project: Path) -> None:
    answers = InitAnswers(
        name="digits",
        login="me@login.hpc.org:2222",
        scheduler="slurm",
        remote_root="/scratch/me/digits",
        partition="a100",
        time="08:00:00",
        gpus="2",
        command='python train.py --name "run 1"',
        env=("module load cuda", "conda activate torch"),
        ports=(("tensorboard", 6006),),
    )
    path, workspace = init(project, answers)
    text = path.read_text()
    for line in (
        'name = "digits"',
        'login = "me@login.hpc.org:2222"',
        'remote_root = "/scratch/me/digits"',
        'kind = "slurm"',
        'partition = "a100"',
        'time = "08:00:00"',
        'gpus = "2"',
        'command = "python train.py --name \\"run 1\\""',
        'env = ["module load cuda", "conda activate torch"]',
        "tensorboard = 6006",
    ):
        assert line in text.splitlines(), line
    assert workspace.connection.login.port == 2222 and workspace.connection.node_from_scheduler
    assert workspace.run.command == 'python train.py --name "run 1"'
    assert workspace.scheduler.slurm is not None and workspace.scheduler.slurm.gpus == "2"
    assert [(port.name, port.remote) for port in workspace.ports] == [("tensorboard", 6006)]


def test_unanswered_optional_settings_are_commented_examples(project: Path) -> None:
    text = render_config(InitAnswers(scheduler="slurm", gpus=""), project)
    assert '# gpus = "a100:1"' in text
    assert "# tensorboard = 6006" in text
    assert '# ssh_config = "~/.ssh/config"' in text


def test_every_section_is_explained(project: Path) -> None:
    text = render_config(InitAnswers(), project)
    lines = text.splitlines()
    assert lines[0].startswith("# tether.toml")
    headers = [index for index, line in enumerate(lines) if re.fullmatch(r"\[\w+\]", line)]
    assert [lines[index] for index in headers] == [f"[{name}]" for name in SECTIONS]
    for index in headers:
        assert lines[index + 1].startswith("# "), f"{lines[index]} has no comment"
    # Each setting has a comment above it (directly, or above the group it belongs to).
    settings_lines = [index for index, line in enumerate(lines) if re.match(r"\w+ = ", line)]
    for index in settings_lines:
        block = lines[max(0, index - 3) : index]
        assert any(line.startswith("#") for line in block), lines[index]


def test_existing_file_is_never_overwritten_without_force(project: Path) -> None:
    path = project / CONFIG_FILENAME
    path.write_text("# mine\n")
    with pytest.raises(ConfigExistsError) as caught:
        init(project)
    message = str(caught.value)
    assert str(path) in message and "tether init --force" in message
    assert path.read_text() == "# mine\n"


def test_force_overwrites(project: Path) -> None:
    path = project / CONFIG_FILENAME
    path.write_text("# mine\n")
    init(project, InitAnswers(login="other"), force=True)
    assert load_workspace(path).connection.login.host == "other"
    assert [p.name for p in project.iterdir()] == [CONFIG_FILENAME]  # no temporary file left behind


def test_answers_that_would_not_load_write_nothing(project: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        init(project, InitAnswers(login="cluster:abc", remote_root="~"))
    message = str(caught.value)
    assert "connection.login: port 'abc'" in message and "workspace.remote_root: '~' is your home directory" in message
    assert not (project / CONFIG_FILENAME).exists()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(command=st.text(min_size=1).filter(str.strip), name=st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True))
def test_any_command_survives_the_round_trip(project: Path, command: str, name: str) -> None:
    text = render_config(InitAnswers(command=command, name=name), project)
    workspace = parse_workspace(text, project / CONFIG_FILENAME)
    assert workspace.run.command == command and workspace.name == name


# -- asking ------------------------------------------------------------------------------------


class Script:
    """Replies to prompts in order, recording the prompts and what was said back."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.said: list[str] = []

    def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.replies.pop(0)

    def say(self, text: str) -> None:
        self.said.append(text)


def test_empty_replies_keep_the_defaults_shown_in_brackets(project: Path) -> None:
    script = Script(*[""] * 20)
    answers = ask_answers(InitAnswers.defaults_for(project), ask=script.ask, say=script.say)
    assert answers == InitAnswers().completed(project)
    assert script.prompts[0] == "Workspace name [mnist]: "
    assert "Login host (ssh alias, user@host or user@host:port) [cluster]: " in script.prompts
    assert "Folder on the node to sync into [~/work/mnist]: " in script.prompts
    assert script.said == []


def test_bad_replies_are_explained_and_asked_again(project: Path) -> None:
    script = Script(
        "digits",  # name
        "me@hpc:99999",
        "me@hpc:2222",  # login: bad port, then good
        "slurmm",
        "slurm",  # scheduler
        "gpu",  # partition
        "4 hours",
        "",  # time: bad, then the default
        "-",  # gpus: none
        "~",
        "",  # remote root: home itself, then the default (follows the new name)
        "login",  # sync via
        "python train.py",  # command
        "module load cuda; conda activate torch",  # env
        "tensorboard=6006, jupyter",
        "tensorboard=6006, jupyter=8888",  # ports
    )
    answers = ask_answers(InitAnswers.defaults_for(project), ask=script.ask, say=script.say)
    assert script.replies == []
    assert answers.name == "digits" and answers.login == "me@hpc:2222"
    assert (answers.scheduler, answers.partition, answers.time, answers.gpus) == (
        "slurm",
        "gpu",
        "04:00:00",
        "",
    )
    assert answers.remote_root == "~/work/digits" and answers.sync_via == "login"
    assert answers.env == ("module load cuda", "conda activate torch")
    assert answers.ports == (("tensorboard", 6006), ("jupyter", 8888))
    assert len(script.said) == 5
    assert "port 99999 in 'me@hpc:99999' is out of range" in script.said[0]
    assert "choose one of direct, slurm, pbs, kube" in script.said[1]
    assert "is not a Slurm time" in script.said[2]
    assert "is your home directory" in script.said[3] and "~/work/digits" in script.said[3]
    assert "'jupyter' is not name=port" in script.said[4]
    _, workspace = init(project, answers)
    assert workspace.scheduler.slurm is not None and workspace.scheduler.slurm.gpus is None


def test_kube_answer_tells_a_selector_from_a_pod(project: Path) -> None:
    replies = ["", "", "kube", "team", "app=train", "", "", "", ""]
    answers = ask_answers(InitAnswers(), folder=project, ask=Script(*replies).ask, say=print)
    assert (answers.namespace, answers.selector, answers.pod) == ("team", "app=train", "")
    answers = ask_answers(
        InitAnswers(),
        folder=project,
        ask=Script("", "", "kube", "", "train-0", "", "", "", "").ask,
        say=print,
    )
    assert (answers.selector, answers.pod) == ("", "train-0")
    assert init(project, answers)[1].scheduler.kube is not None


# -- what the command line gives ---------------------------------------------------------------


def test_command_line_overrides_as_the_cli_passes_them(project: Path) -> None:
    overrides = {"name": "digits", "login": "me@hpc:2222", "run_command": "python t.py", "scheduler": "slurm"}
    assert set(overrides) <= InitAnswers.flag_names()
    answers = InitAnswers.defaults_for(project).with_overrides(overrides)
    assert (answers.name, answers.login, answers.command, answers.scheduler) == (
        "digits", "me@hpc:2222", "python t.py", "slurm"
    )  # fmt: skip
    assert answers.remote_root == "~/work/digits"  # the derived root follows the new name
    pinned = InitAnswers.defaults_for(project).with_overrides({"remote_root": "/scratch/x", "name": "y"})
    assert pinned.remote_root == "/scratch/x"
    with pytest.raises(TypeError, match="not an init answer: colour"):
        answers.with_overrides({"colour": "red"})


def test_defaults_for_a_folder_with_an_awkward_name(tmp_path: Path) -> None:
    folder = tmp_path / "My Project (v2)"
    folder.mkdir()
    answers = InitAnswers.defaults_for(folder)
    assert (answers.name, answers.remote_root) == ("My-Project-v2", "~/work/My-Project-v2")
    assert init(folder)[1].name == "My-Project-v2"

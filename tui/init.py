"""`tether init`: write a commented tether.toml from a few answers.

The CLI builds :class:`InitAnswers` (``InitAnswers.defaults_for(folder)``, then ``with_overrides``
for command-line options), asks the user with :func:`ask_answers` when there is a terminal and no
``--yes``, and calls :func:`write_config`. That renders the file, checks it with the loader that
`tether up` uses (so init never writes a file that would not load), and writes it atomically,
refusing to replace an existing file unless ``force``. Stdlib only.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from tui.config import Workspace, parse_workspace
from tui.config.rules import (
    RuleError,
    check_pbs_walltime,
    check_port,
    check_remote_root,
    check_slurm_time,
    check_workspace_name,
    default_workspace_name,
    parse_host_spec,
)
from tui.config.scheduler import SCHEDULER_KINDS
from tui.config.schema import render_key, toml_value
from tui.errors import TetherError


class ConfigExistsError(TetherError):
    """tether.toml is already there and ``force`` was not given."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} already exists", fix="run `tether init --force` to overwrite it")
        self.path = path


@dataclass(frozen=True)
class InitAnswers:
    """What `tether init` asks. "" for ``name`` and ``remote_root`` means "derive from the folder"."""

    name: str = ""  # "" = the folder's name
    login: str = "cluster"
    scheduler: str = "direct"  # one of SCHEDULER_KINDS
    node: str = ""  # only for "direct": "" = the login host itself
    remote_root: str = ""  # "" = ~/work/<name>
    sync_via: str = "node"
    # Slurm
    partition: str = ""
    time: str = "04:00:00"
    gpus: str = ""
    # PBS
    queue: str = ""
    walltime: str = "04:00:00"
    resources: str = ""
    # Kubernetes
    namespace: str = ""
    pod: str = ""
    selector: str = ""
    # The run
    command: str = "python main.py"
    env: tuple[str, ...] = ()
    ports: tuple[tuple[str, int], ...] = ()

    @classmethod
    def defaults_for(cls, folder: Path) -> InitAnswers:
        """The default answers for a tether.toml in ``folder``."""
        return cls().completed(folder)

    @classmethod
    def flag_names(cls) -> frozenset[str]:
        """Names :meth:`with_overrides` takes: the fields, and the aliases of CLI options."""
        return frozenset(field.name for field in fields(cls)) | frozenset(_FLAG_ALIASES)

    def completed(self, folder: Path) -> InitAnswers:
        """The answers with the folder-derived defaults filled in."""
        name = self.name or default_workspace_name(folder.resolve().name)
        return replace(self, name=name, remote_root=self.remote_root or _derived_remote_root(name))

    def with_overrides(self, overrides: Mapping[str, object]) -> InitAnswers:
        """The answers with command-line values put in (``run_command`` sets ``command``).

        A remote root that was derived from the name follows a new name.
        """
        changes = {_FLAG_ALIASES.get(key, key): value for key, value in overrides.items()}
        unknown = set(changes) - {field.name for field in fields(self)}
        if unknown:
            raise TypeError(f"not an init answer: {', '.join(sorted(unknown))}")
        renamed = "name" in changes and "remote_root" not in changes
        if renamed and self.remote_root == _derived_remote_root(self.name):
            changes["remote_root"] = _derived_remote_root(str(changes["name"]))
        return replace(self, **changes)  # type: ignore[arg-type]


# CLI option destinations that differ from the field they set.
_FLAG_ALIASES = {"run_command": "command"}


def _derived_remote_root(name: str) -> str:
    return f"~/work/{name}"


# -- rendering ---------------------------------------------------------------------------------


def render_config(answers: InitAnswers, folder: Path) -> str:
    """The text of a commented tether.toml for ``answers`` (``folder`` gives the defaults)."""
    done = answers.completed(folder)
    sections = [
        _HEADER,
        _workspace_section(done),
        _connection_section(done),
        _run_section(done),
        _SYNC_SECTION,
        _ports_section(done),
        _LAYOUT_SECTION,
        _DEBUG_SECTION,
        _scheduler_section(done),
        _UI_SECTION,
    ]
    return "\n".join(section.strip("\n") + "\n" for section in sections)


def _setting(key: str, value: object) -> str:
    return f"{key} = {toml_value(value)}"


def _optional(key: str, value: str, example: str) -> str:
    """``key = value`` when answered, else a commented example the user can enable."""
    return _setting(key, value) if value else f"# {_setting(key, example)}"


_HEADER = """
# tether.toml: how Tether reaches your cluster node, and what it runs there.
# Written by `tether init`. Lines starting with "#" are comments; a commented key shows an
# optional setting with an example value. Relative paths start at this file's folder.
# Tether checks the whole file when it starts and reports each problem with its line.
"""


def _workspace_section(answers: InitAnswers) -> str:
    return f"""
[workspace]
# A short name for this project: it names the tmux session and the state kept on the node.
{_setting("name", answers.name)}
# The folder on this laptop that is synced to the node.
local_root = "."
# The folder on the node that mirrors local_root. Files there that are not on the laptop are
# deleted (except the protected ones, see [sync]), so give it a folder of its own, never your
# home directory itself.
{_setting("remote_root", answers.remote_root)}
"""


def _connection_section(answers: InitAnswers) -> str:
    return f"""
[connection]
# The login host: an alias from ~/.ssh/config, user@host, or user@host:port. Tether logs in
# once and reuses that connection for everything, so a password or one-time code is asked once.
{_setting("login", answers.login)}
# The node the code runs on: "" = the login host itself, a host name reachable from the login
# host, or "scheduler" = the node of the job [scheduler] allocates. With kind = "slurm", "pbs" or
# "kube", "" also means "scheduler".
{_setting("node", answers.node)}
# Hosts to hop through before the login host (same syntax as login).
jump = []
# Sync files through the "node", or through the "login" host when it shares the node's
# filesystem (most HPC sites): that also works while the job still waits in the queue.
{_setting("sync_via", answers.sync_via)}
# Another ssh config file; by default ssh's own (~/.ssh/config).
# ssh_config = "~/.ssh/config"
# How long the login connection stays open after you detach, so that reattaching asks for no
# password: seconds, or "90s", "10m", "1h".
control_persist = "10m"
# Seconds to wait for an ssh connection.
connect_timeout = 15
"""


def _run_section(answers: InitAnswers) -> str:
    return f"""
[run]
# What runs on the node, under the debug loop (restart with r, stop with x).
{_setting("command", answers.command)}
# The Python on the node that runs it (a name on PATH or a full path).
interpreter = "python3"
# Shell lines run before the command, e.g. ["module load cuda", "conda activate torch"].
{_setting("env", list(answers.env))}
# A container prefix for the command, e.g. "apptainer exec --nv image.sif".
prefix = ""
# Names of environment variables on this laptop that the run gets, e.g. ["WANDB_API_KEY"].
pass_env = []
# Restart the run after each sync of a changed file.
restart_on_sync = false
"""


_SYNC_SECTION = """
[sync]
# Files not synced, on top of .gitignore (gitignore syntax), e.g. ["data/", "*.ckpt"].
ignore = []
# Remote paths never deleted by a sync: what the run writes on the node.
protect = ["outputs/", "checkpoints/", "wandb/", "*.log"]
# Halt instead of syncing when a sync would delete more than this share of the remote files
# (0.5 = half): a safety net against syncing an emptied or wrong folder.
delete_threshold = 0.5
"""


def _ports_section(answers: InitAnswers) -> str:
    lines = "\n".join(f"{render_key((name,))} = {port}" for name, port in answers.ports)
    return f"""
[ports]
# Extra ports forwarded from the node to this laptop (the debug ports are forwarded anyway):
# name = remote port (a free local port is picked), or name = {{ remote = 6006, local = 16006 }}.
{lines or "# tensorboard = 6006"}
"""


_LAYOUT_SECTION = """
[layout]
# The tmux panes on the node: "run" (the debug loop), "htop", "gpu" (nvidia-smi), "shell", or
# your own, e.g. { name = "logs", command = "tail -F train.log" }.
panes = ["run", "htop", "gpu", "shell"]
"""


_DEBUG_SECTION = """
[debug]
# "attach": a debugger may attach at any time; "wait": the run waits for a debugger before it
# starts; "off": no debugger.
mode = "attach"
# With mode = "wait": how many seconds to wait for a debugger (0 = forever).
wait_timeout = 0
# Copies of the command that Tether starts itself, RANK set in each, one debug port each. A
# launcher's command (torchrun, accelerate launch, deepspeed) keeps 1: its workers are debugged
# through its one port.
ranks = 1
"""


def _scheduler_section(answers: InitAnswers) -> str:
    intro = """
[scheduler]
# Where the node comes from: "direct" (the node or login host as given in [connection]),
# "slurm", "pbs" (a job allocates it), or "kube" (a Kubernetes/OpenShift pod).
"""
    return intro.strip("\n") + "\n" + _setting("kind", answers.scheduler) + "\n" + _scheduler_options(answers)


def _scheduler_options(answers: InitAnswers) -> str:
    if answers.scheduler == "slurm":
        return f"""# The job's resources (sbatch options); add account, qos, mem, cpus_per_task, constraint,
# gres or extra = ["--exclusive"] as your site needs.
{_optional("partition", answers.partition, "gpu")}
{_optional("time", answers.time, "04:00:00")}
{_optional("gpus", answers.gpus, "a100:1")}
"""
    if answers.scheduler == "pbs":
        return f"""# The job's resources (qsub options); add account or extra = ["-V"] as your site needs.
{_optional("queue", answers.queue, "gpu")}
{_optional("walltime", answers.walltime, "04:00:00")}
{_optional("resources", answers.resources, "nodes=1:ppn=4:gpus=1")}
"""
    if answers.scheduler == "kube":
        pod_lines = (
            [_setting("pod", answers.pod)] if answers.pod else [_setting("selector", answers.selector or "app=train")]
        )
        return f"""# kubectl (or cli = "oc") runs on this laptop with your kube config. Name the pod, or give
# a label selector that finds it; context and container are optional.
{_optional("namespace", answers.namespace, "my-team")}
{pod_lines[0]}
"""
    return """# With "slurm", add the job's resources here, e.g. partition = "gpu" and time = "04:00:00".
"""


_UI_SECTION = """
[ui]
# The console's colours: "dark", "light", "high-contrast" or "plain" (the terminal's own 16
# colours). Unset: the one you last picked with t or the palette (dark at first).
# theme = "dark"
# Seconds between CPU/GPU statistics updates.
stats_interval = 2.0
"""


# -- writing -----------------------------------------------------------------------------------


def write_config(path: Path, answers: InitAnswers, *, force: bool = False) -> Workspace:
    """Render ``answers`` into ``path``, check the result, write it; return the loaded Workspace.

    Raises ConfigExistsError (a file is there and not ``force``) or ConfigError (answers that
    would not load, e.g. a bad --login); in both cases nothing is written.
    """
    if path.exists() and not force:
        raise ConfigExistsError(path)
    text = render_config(answers, path.parent)
    workspace = parse_workspace(text, path)
    _write_atomically(path, text)
    return workspace


def _write_atomically(path: Path, text: str) -> None:
    # A temporary file in the same folder, then a rename: never a half-written tether.toml.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- asking ------------------------------------------------------------------------------------

Ask = Callable[[str], str]
Say = Callable[[str], None]


def ask_answers(
    defaults: InitAnswers, *, ask: Ask = input, say: Say = print, folder: Path | None = None
) -> InitAnswers:
    """Ask each question with its default shown; an empty reply keeps the default, "-" clears it.

    A reply that breaks a rule (a bad port, a remote root of "~") is explained and asked again.
    Blank ``name`` and ``remote_root`` defaults are derived from ``folder`` (default: the working
    folder). EOFError and KeyboardInterrupt from ``ask`` propagate: the CLI turns them into an abort.
    """
    start = defaults.completed(folder or Path.cwd())
    question = _Questioner(ask, say)
    name = question.text("Workspace name", start.name, _check_name)
    login = question.text("Login host (ssh alias, user@host or user@host:port)", start.login, _check_login)
    kind = question.text(f"Scheduler ({', '.join(SCHEDULER_KINDS)})", start.scheduler, _check_kind)
    answers = replace(start, name=name, login=login, scheduler=kind)
    answers = _ask_node_and_resources(question, answers)
    derived = start.remote_root == _derived_remote_root(start.name)
    remote_default = _derived_remote_root(name) if derived else start.remote_root
    remote_root = question.text(
        "Folder on the node to sync into", remote_default, lambda text: _check_remote_root(text, name)
    )
    sync_via = answers.sync_via
    if kind in ("slurm", "pbs") or answers.node:
        sync_via = question.text(
            "Sync through the node or the login host (login: shared filesystem)", sync_via, _check_sync_via
        )
    command = question.text("Command to run", start.command, _check_not_empty)
    env = question.text(
        "Shell lines before the run, separated by ';' (e.g. module load cuda; conda activate torch)",
        "; ".join(start.env),
    )
    ports = question.text(
        "Extra ports to forward, e.g. tensorboard=6006 (comma separated)",
        _ports_text(start.ports),
        _check_ports,
    )
    return replace(
        answers,
        remote_root=remote_root,
        sync_via=sync_via,
        command=command,
        env=tuple(line.strip() for line in env.split(";") if line.strip()),
        ports=_parse_ports(ports),
    )


def _ask_node_and_resources(question: _Questioner, answers: InitAnswers) -> InitAnswers:
    if answers.scheduler == "direct":
        return replace(
            answers,
            node=question.text("Compute node (empty: run on the login host)", answers.node, _check_node),
        )
    if answers.scheduler == "slurm":
        return replace(
            answers,
            node="",
            partition=question.text("Slurm partition (empty: the site default)", answers.partition),
            time=question.text("Time limit", answers.time, _optional_rule(check_slurm_time)),
            gpus=question.text("GPUs, e.g. 1 or a100:2 (empty: none)", answers.gpus),
        )
    if answers.scheduler == "pbs":
        return replace(
            answers,
            node="",
            queue=question.text("PBS queue (empty: the site default)", answers.queue),
            walltime=question.text("Walltime", answers.walltime, _optional_rule(check_pbs_walltime)),
            resources=question.text("Resources, e.g. nodes=1:ppn=4:gpus=1 (empty: none)", answers.resources),
        )
    namespace = question.text("Namespace (empty: the context's default)", answers.namespace)
    target = question.text(
        "Pod name, or a label selector such as app=train",
        answers.pod or answers.selector or "app=train",
        _check_not_empty,
    )
    is_selector = "=" in target or "," in target
    return replace(
        answers,
        node="",
        namespace=namespace,
        pod="" if is_selector else target,
        selector=target if is_selector else "",
    )


class _Questioner:
    def __init__(self, ask: Ask, say: Say) -> None:
        self._ask = ask
        self._say = say

    def text(self, prompt: str, default: str, check: Callable[[str], str | None] | None = None) -> str:
        """Ask until the reply passes ``check`` (which returns an error message, or None).

        An empty reply keeps the default; "-" clears it (for optional answers).
        """
        shown = f" [{default}]" if default else ""
        while True:
            reply = self._ask(f"{prompt}{shown}: ").strip() or default
            if reply == "-":
                reply = ""
            problem = check(reply) if check else None
            if problem is None:
                return reply
            self._say(f"  {problem}")


def _rule_message(rule: Callable[[str], object], text: str) -> str | None:
    try:
        rule(text)
    except RuleError as error:
        return f"{error.message}: {error.hint}" if error.hint else error.message
    return None


def _optional_rule(rule: Callable[[str], object]) -> Callable[[str], str | None]:
    return lambda text: _rule_message(rule, text) if text else None


def _check_name(text: str) -> str | None:
    return _rule_message(check_workspace_name, text)


def _check_login(text: str) -> str | None:
    return _rule_message(parse_host_spec, text)


def _check_node(text: str) -> str | None:
    return "a host name has no spaces" if any(char.isspace() for char in text) else None


def _check_kind(text: str) -> str | None:
    return None if text in SCHEDULER_KINDS else f"choose one of {', '.join(SCHEDULER_KINDS)}"


def _check_sync_via(text: str) -> str | None:
    return None if text in ("node", "login") else 'answer "node" or "login"'


def _check_not_empty(text: str) -> str | None:
    return None if text.strip() else "an answer is needed"


def _check_remote_root(text: str, name: str) -> str | None:
    return _rule_message(lambda root: check_remote_root(root, name), text)


def _ports_text(ports: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{name}={port}" for name, port in ports)


def _parse_ports(text: str) -> tuple[tuple[str, int], ...]:
    """``"tensorboard=6006, jupyter=8888"`` -> (("tensorboard", 6006), ("jupyter", 8888))."""
    ports: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, port = item.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z0-9_-]+", name.strip()) or not port.strip().isdigit():
            raise RuleError(f"{item!r} is not name=port", "write e.g. tensorboard=6006")
        ports.append((name.strip(), check_port(int(port.strip()))))
    return tuple(ports)


def _check_ports(text: str) -> str | None:
    return _rule_message(_parse_ports, text)

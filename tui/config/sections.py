"""The section readers of tether.toml: one function per section, each returning its dataclass.

Used by tui/config.py, which owns the order and the top level. Every reader records problems in
the TableReader's log and returns defaults for what is wrong, so one pass finds every problem.
Stdlib only.
"""

from __future__ import annotations

from pathlib import Path

from tui.config.model import (
    BUILTIN_PANES,
    DEFAULT_PROTECT,
    LONG_LINES,
    NODE_FROM_SCHEDULER,
    TERMINAL_ALERTS,
    ConnectionConfig,
    DebugConfig,
    LayoutConfig,
    PaneSpec,
    PortForward,
    RunConfig,
    SyncConfig,
    UiConfig,
)
from tui.config.rules import (
    DURATION_HINT,
    HostSpec,
    RuleError,
    check_port,
    check_remote_root,
    check_workspace_name,
    default_workspace_name,
    parse_duration,
    parse_host_spec,
)
from tui.config.scheduler import SchedulerConfig
from tui.config.schema import MISSING, TableReader, describe_value, suggest, toml_value
from tui.keys import ALL_KEYS, KEY_SCOPES, key_name
from tui.metrics import MetricPatternError, compile_pattern

# -- [workspace] -------------------------------------------------------------------------------


def read_name(section: TableReader, config_path: Path) -> str:
    default = default_workspace_name(config_path.parent.name)
    name = section.string("name", default, example="mnist")
    try:
        return check_workspace_name(name)
    except RuleError as error:
        section.problem("name", error.message, error.hint)
        return default


def read_local_root(section: TableReader, config_dir: Path) -> Path:
    text = section.string("local_root", ".")
    local_root = (config_dir / Path(text).expanduser()).resolve()
    if not local_root.is_dir():
        section.problem(
            "local_root",
            f"folder {local_root} does not exist",
            "create it, or fix local_root (relative paths start at the folder of tether.toml)",
        )
    return local_root


def read_remote_root(section: TableReader, name: str) -> str:
    text = section.required_string("remote_root", example=f"~/work/{name}")
    if text is None:
        return ""
    try:
        return check_remote_root(text, name)
    except RuleError as error:
        section.problem("remote_root", error.message, error.hint)
        return ""


# -- [connection] ------------------------------------------------------------------------------


def read_connection(
    section: TableReader, scheduler: SchedulerConfig, kind_valid: bool, config_dir: Path
) -> ConnectionConfig:
    if scheduler.kind == "kube":  # kubectl reaches the pod from the laptop: no login host
        login_text = section.optional_string("login", example="cluster") or None
    else:
        login_text = section.required_string("login", example="cluster")
    login = _host_spec(section, ("login",), login_text) if login_text is not None else None
    jump_texts = section.strings("jump", example="me@gateway.example.org")
    jumps = [_host_spec(section, ("jump", index), text) for index, text in enumerate(jump_texts)]
    return ConnectionConfig(
        login=login or HostSpec("", None, "", None),  # a placeholder: no login host (kube), or the load fails
        node=_read_node(section, scheduler, kind_valid),
        jump=tuple(jump for jump in jumps if jump is not None),
        sync_via=_read_sync_via(section, scheduler),
        ssh_config=_read_ssh_config(section, config_dir),
        control_persist=_read_control_persist(section),
        connect_timeout=section.integer("connect_timeout", 15, minimum=1),
    )


def _read_sync_via(section: TableReader, scheduler: SchedulerConfig) -> str:
    sync_via = section.choice("sync_via", "node", ("node", "login"))
    if sync_via == "login" and scheduler.kind == "kube":
        section.problem("sync_via", "a pod has no login host to sync through", 'remove sync_via (or set it to "node")')
        return "node"
    return sync_via


def _host_spec(section: TableReader, key: tuple[str | int, ...], text: str) -> HostSpec | None:
    try:
        return parse_host_spec(text)
    except RuleError as error:
        section.log.add(section.path + key, error.message, error.hint)
        return None


def _read_node(section: TableReader, scheduler: SchedulerConfig, kind_valid: bool) -> str:
    node = section.string("node", "", example="gpu01")
    if any(char.isspace() for char in node):
        section.problem(
            "node",
            f"{node!r} contains spaces",
            'write a host name or alias, "" for the login host, or "scheduler"',
        )
        return ""
    if node == NODE_FROM_SCHEDULER and scheduler.kind == "direct" and kind_valid:
        section.problem(
            "node",
            'node = "scheduler" needs a scheduler, but [scheduler] kind is "direct"',
            'set kind = "slurm" (or "pbs", "kube") under [scheduler], or name the node',
        )
        return ""
    if node == "" and scheduler.gives_node:
        return NODE_FROM_SCHEDULER  # see ConnectionConfig.node
    return node


def _read_ssh_config(section: TableReader, config_dir: Path) -> Path | None:
    text = section.string("ssh_config", "", example="~/.ssh/config")
    if not text:
        return None
    path = (config_dir / Path(text).expanduser()).resolve()
    if not path.is_file():
        section.problem(
            "ssh_config",
            f"file {path} does not exist",
            "fix the path (relative paths start at the folder of tether.toml), or remove ssh_config to use ssh's default",
        )
    return path


def _read_control_persist(section: TableReader) -> int:
    value = section.get("control_persist")
    if value is MISSING:
        return 600
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        expected = f'expected seconds or a duration like "10m", got {describe_value(value)}'
        section.problem("control_persist", expected, DURATION_HINT)
        return 600
    try:
        seconds = parse_duration(value)
    except RuleError as error:
        section.problem("control_persist", error.message, error.hint)
        return 600
    if seconds == 0:
        # OpenSSH reads "ControlPersist 0" as "keep the connection forever", the opposite of what
        # a 0 seems to say; refuse it rather than pass that surprise on.
        section.problem("control_persist", "0 would keep the connection open forever in ssh", DURATION_HINT)
        return 600
    return seconds


# -- [run], [sync], [debug] --------------------------------------------------------------------


def _non_empty_string(section: TableReader, key: str, default: str) -> str:
    value = section.string(key, default)
    if not value.strip():
        section.problem(key, "is empty", f"write it like {key} = {toml_value(default)}, or remove it for the default")
        return default
    return value


def read_run(section: TableReader) -> RunConfig:
    pass_env = section.strings("pass_env", example="WANDB_API_KEY")
    for index, name in enumerate(pass_env):
        if not (name.isidentifier() and name.isascii()):
            section.log.add(
                section.path + ("pass_env", index),
                f"{name!r} is not an environment variable name",
                'write names like "WANDB_API_KEY"',
            )
    return RunConfig(
        command=_non_empty_string(section, "command", "python main.py"),
        interpreter=_non_empty_string(section, "interpreter", "python3"),
        env=section.strings("env", example="module load cuda"),
        prefix=section.string("prefix", "", example="apptainer exec --nv image.sif"),
        pass_env=tuple(name for name in pass_env if name.isidentifier() and name.isascii()),
        restart_on_sync=section.boolean("restart_on_sync", False),
    )


def read_sync(section: TableReader) -> SyncConfig:
    return SyncConfig(
        ignore=section.strings("ignore", example="data/"),
        protect=section.strings("protect", DEFAULT_PROTECT, example="outputs/"),
        delete_threshold=section.number("delete_threshold", 0.5, above=0, at_most=1),
    )


def read_debug(section: TableReader) -> DebugConfig:
    return DebugConfig(
        mode=section.choice("mode", "attach", ("attach", "wait", "off")),
        wait_timeout=section.integer("wait_timeout", 0, minimum=0),
        ranks=section.integer("ranks", 1, minimum=1),
        provide_debugpy=section.choice("provide_debugpy", "auto", ("auto", "ask", "never")),
        vscode_port=section.boolean("vscode_port", True),
        standby=section.boolean("standby", True),
    )


def read_ui(section: TableReader) -> UiConfig:
    return UiConfig(
        theme=section.string("theme", ""),
        stats_interval=section.number("stats_interval", 2.0, above=0),
        keys=read_keys(section.reader("keys", ALL_KEYS, example='{ restart = "f5" }')),
        terminal_alert=section.choice("terminal_alert", "off", TERMINAL_ALERTS),
        metrics=read_metrics(section),
        long_lines=section.choice("long_lines", "fold", LONG_LINES),
    )


def read_metrics(section: TableReader) -> tuple[str, ...] | None:
    """``[ui] metrics``: names ("loss") or patterns with a (?P<value>...) group; a bad one is a
    problem at its own line. Unset: None (the built-in names); [] plots nothing."""
    if section.get("metrics") is MISSING:
        return None
    good: list[str] = []
    for index, entry in enumerate(section.strings("metrics", example="loss")):
        try:
            compile_pattern(entry)
        except MetricPatternError as exc:
            section.log.add(
                section.path + ("metrics", index),
                f"{entry!r}: {exc}",
                'write a name ("loss") or a pattern like "step \\d+ loss (?P<value>[0-9.]+)"',
            )
        else:
            good.append(entry)
    return tuple(good)


def read_keys(table: TableReader) -> tuple[tuple[str, str], ...]:
    """``[ui.keys]``: action = "key" (or ["key", "key"]); an unknown action or key, or one key for
    two actions (a remapped one, or one still on its default), is a problem at its line."""
    chosen: dict[str, tuple[str, ...]] = {}
    for action in table.table:
        if action not in ALL_KEYS:
            close = suggest(action, ALL_KEYS)
            table.problem(
                action,
                f"unknown action '{action}' in [ui.keys]",
                f"did you mean '{close}'?" if close else "actions: " + ", ".join(ALL_KEYS),
            )
            continue
        value = table.get(action)
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else None
        if not texts or not all(isinstance(text, str) for text in texts):
            table.type_problem(action, "a key or an array of keys", value, "f5")
            continue
        names = tuple(key_name(text) for text in texts)
        bad = [text for text, name in zip(texts, names) if name is None]
        if bad:
            table.problem(
                action,
                f"{', '.join(map(repr, bad))} is not a key",
                'write a character ("r", "?"), a name ("f5", "enter", "pageup") or modifiers and a key ("ctrl+r")',
            )
            continue
        chosen[action] = tuple(name for name in names if name is not None)
    for scope in KEY_SCOPES:  # a key may serve one action on the dashboard and another in the debugger
        in_force = {action: chosen.get(action, (default,)) for action, default in scope.items()}
        owner: dict[str, str] = {}
        for action, keys in in_force.items():
            for key in keys:
                if key in owner and (action in chosen or owner[key] in chosen):
                    mine, theirs = (action, owner[key]) if action in chosen else (owner[key], action)
                    hint = (
                        f"give '{theirs}' another key too"
                        if theirs not in chosen
                        else "use another key for one of them"
                    )
                    table.problem(mine, f"'{key}' is also the key of '{theirs}'", hint)
                owner.setdefault(key, action)
    return tuple((action, ",".join(keys)) for action, keys in chosen.items())


# -- [ports] -----------------------------------------------------------------------------------

_PORT_TABLE = "{ remote = 6006, local = 16006 }"


def read_ports(section: TableReader) -> tuple[PortForward, ...]:
    forwards: list[PortForward] = []
    owner_of_local: dict[int, str] = {}
    for name, value in section.table.items():
        forward = _read_port_forward(section, name, value)
        if forward is None:
            continue
        if forward.local and forward.local in owner_of_local:
            section.problem(
                name,
                f"local port {forward.local} is also used by '{owner_of_local[forward.local]}'",
                "give each forward its own local port, or local = 0 to pick a free one",
            )
            continue
        owner_of_local[forward.local] = name
        forwards.append(forward)
    return tuple(forwards)


def _read_port_forward(section: TableReader, name: str, value: object) -> PortForward | None:
    if isinstance(value, dict):
        table = section.reader(name, ("remote", "local"), example=_PORT_TABLE)
        table.report_unknown_keys()
        if table.get("remote") is MISSING:
            table.missing("remote", 6006)
            return None
        remote = _port_number(table, "remote", table.get("remote"), allow_zero=False)
        local_value = table.get("local")
        local = 0 if local_value is MISSING else _port_number(table, "local", local_value, allow_zero=True)
        return PortForward(name, remote, local) if remote is not None and local is not None else None
    remote = _port_number(section, name, value, allow_zero=False)
    return PortForward(name, remote) if remote is not None else None


def _port_number(section: TableReader, key: str, value: object, *, allow_zero: bool) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        expected = "a port number (an integer)" + (
            "" if key in ("remote", "local") else f" or a table like {_PORT_TABLE}"
        )
        section.type_problem(key, expected, value, 6006)
        return None
    try:
        return check_port(value, allow_zero=allow_zero)
    except RuleError as error:
        section.problem(key, error.message, error.hint)
        return None


# -- [layout] ----------------------------------------------------------------------------------

_OWN_PANE = '{ name = "logs", command = "tail -F train.log" }'


def read_layout(section: TableReader) -> LayoutConfig:
    value = section.get("panes")
    if value is MISSING:
        return LayoutConfig()
    if not isinstance(value, list):
        section.type_problem("panes", "an array of panes", value, list(BUILTIN_PANES))
        return LayoutConfig()
    if not value:
        section.problem("panes", "is empty", 'list at least one pane, e.g. panes = ["run", "shell"]')
        return LayoutConfig()
    panes: list[PaneSpec] = []
    for index, item in enumerate(value):
        pane = _read_pane(section, index, item)
        if pane is not None and any(pane.name == other.name for other in panes):
            section.log.add(
                section.path + ("panes", index),
                f"pane '{pane.name}' is listed twice",
                "keep one, or give it another name",
            )
        elif pane is not None:
            panes.append(pane)
    return LayoutConfig(tuple(panes))


def _read_pane(section: TableReader, index: int, item: object) -> PaneSpec | None:
    path = section.path + ("panes", index)
    if isinstance(item, str):
        if item in BUILTIN_PANES:
            return PaneSpec(item)
        guess = suggest(item, BUILTIN_PANES)
        prefix = f"did you mean '{guess}'? " if guess else ""
        section.log.add(
            path,
            f"unknown pane {item!r}",
            f"{prefix}built-in panes are {', '.join(BUILTIN_PANES)}; for your own write {_OWN_PANE}",
        )
        return None
    if not isinstance(item, dict):
        section.log.add(
            path,
            f"expected a pane name or a table, got {describe_value(item)}",
            f'write "shell" or {_OWN_PANE}',
        )
        return None
    table = TableReader(section.log, path, item, ("name", "command"))
    table.report_unknown_keys()
    name = table.required_string("name", example="logs")
    command = table.optional_string("command", example="tail -F train.log") or None
    if name is None:
        return None
    if name not in BUILTIN_PANES and command is None:
        section.log.add(
            path,
            f"pane '{name}' needs a command",
            'add command = "tail -F train.log" (only built-in panes have their own)',
        )
        return None
    return PaneSpec(name, command)

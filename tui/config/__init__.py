"""tether.toml -> a frozen :class:`Workspace`, with every problem reported at once.

Public API: :func:`find_config`, :func:`load_workspace`, :func:`parse_workspace`, the dataclasses
(defined in model.py, re-exported here), and :class:`ConfigError` (``exit_code = 2``),
whose ``str()`` is one line per problem::

    tether.toml:7: workspace.remote_rot: unknown key 'remote_rot' in [workspace]; did you mean 'remote_root'?

The helpers live next door: model.py (the dataclasses), sections.py (one reader per
section), scheduler.py ([scheduler]), rules.py (host specs, remote root, durations),
schema.py (problems, the typed reader), lines.py (key -> line). Stdlib only: no Textual, so the CLI and the core
use it without a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from tui.config.lines import KeyLines, find_duplicate_key, split_toml_error
from tui.config.model import (  # re-exported: import the model from here
    BUILTIN_PANES,
    CONFIG_FILENAME,
    DEFAULT_PROTECT,
    NODE_FROM_SCHEDULER,
    ConnectionConfig,
    DebugConfig,
    LayoutConfig,
    PaneSpec,
    PortForward,
    RunConfig,
    SyncConfig,
    UiConfig,
    Workspace,
)
from tui.config.rules import HostSpec
from tui.config.scheduler import ALL_KEYS as SCHEDULER_KEYS
from tui.config.scheduler import (
    SCHEDULER_KINDS,
    KubeOptions,
    PbsOptions,
    SchedulerConfig,
    SlurmOptions,
    read_scheduler,
)
from tui.config.schema import MISSING, ConfigError, Problem, ProblemLog, TableReader, display_path, suggest
from tui.config.sections import (
    read_connection,
    read_debug,
    read_layout,
    read_local_root,
    read_name,
    read_ports,
    read_remote_root,
    read_run,
    read_sync,
    read_ui,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "BUILTIN_PANES", "CONFIG_FILENAME", "DEFAULT_PROTECT", "NODE_FROM_SCHEDULER",
    "ConfigError", "ConnectionConfig", "DebugConfig", "HostSpec", "KubeOptions", "LayoutConfig",
    "PaneSpec", "PbsOptions", "PortForward", "Problem", "RunConfig", "SchedulerConfig", "SlurmOptions",
    "SyncConfig", "UiConfig", "Workspace", "find_config", "load_workspace", "parse_workspace",
]  # fmt: skip

# The keys of each section, which also tell a user where a misplaced key belongs.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "workspace": ("name", "local_root", "remote_root"),
    "connection": ("login", "node", "jump", "sync_via", "ssh_config", "control_persist", "connect_timeout"),
    "run": ("command", "interpreter", "env", "prefix", "pass_env", "restart_on_sync"),
    "sync": ("ignore", "protect", "delete_threshold"),
    "ports": (),  # any name
    "layout": ("panes",),
    "debug": ("mode", "wait_timeout", "ranks", "provide_debugpy", "vscode_port", "standby"),
    "scheduler": SCHEDULER_KEYS,
    "ui": ("theme", "stats_interval", "keys", "terminal_alert", "metrics", "long_lines"),
}
_HOME_SECTION = {key: section for section, keys in SECTION_KEYS.items() for key in keys}


# -- finding and loading -----------------------------------------------------------------------


def find_config(start: Path) -> Path:
    """tether.toml in ``start`` or the nearest parent folder holding one (``start`` may be the file)."""
    start = start.expanduser().resolve()
    if start.is_file():
        return start
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    message = f"no {CONFIG_FILENAME} here or in any parent folder"
    raise ConfigError([Problem(start, None, "", message, "run `tether init` to create one")])


def load_workspace(path: Path) -> Workspace:
    """Read and check ``path``; raise ConfigError with every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        hint = "check the path, or run `tether init` to create it"
        raise ConfigError([Problem(display_path(path), None, "", f"cannot read the file: {reason}", hint)]) from None
    return parse_workspace(text, path)


def parse_workspace(text: str, path: Path) -> Workspace:
    """Check the TOML ``text`` as if read from ``path`` (relative paths resolve against its folder)."""
    config_path = path.expanduser().resolve()
    shown = display_path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([_syntax_problem(shown, text, str(error))]) from None
    log = ProblemLog(shown, KeyLines.scan(text))
    workspace = _build(log, data, config_path)
    log.raise_if_any()
    return workspace


def _syntax_problem(shown: Path, text: str, message: str) -> Problem:
    what, line, column = split_toml_error(message, text)
    # tomllib names tables as Python tuples ("Cannot declare ('run',) twice"): show them as TOML.
    what = re.sub(
        r"\(((?:'[^']*',? ?)+)\)",
        lambda match: "[" + ".".join(re.findall(r"'([^']*)'", match.group(1))) + "]",
        what,
    )
    hint = "check the quotes, brackets and '=' on this line"
    if what.startswith("Invalid value"):
        hint = 'text values need quotes, e.g. name = "mnist"'
    elif what.startswith(("Cannot overwrite", "Cannot declare", "Cannot mutate")):
        duplicate = find_duplicate_key(text)
        if duplicate is not None:  # tomllib's position is where it noticed, not the key's line
            line, column = duplicate, None
        hint = "a key or [section] is written twice; keep one"
    elif what.startswith("Unclosed") or "Unterminated" in what:
        hint = "close the string, array or table that starts here"
    where = f" (column {column})" if column else ""
    return Problem(shown, line, "", f"invalid TOML: {what}{where}", hint)


def _build(log: ProblemLog, data: Mapping[str, object], config_path: Path) -> Workspace:
    root = TableReader(log, (), data, tuple(SECTION_KEYS))
    _report_top_level(root)
    sections = {name: root.reader(name, keys, example=f"a [{name}] section") for name, keys in SECTION_KEYS.items()}
    for name, section in sections.items():
        if name not in ("ports", "scheduler"):  # those check their own keys
            section.report_unknown_keys(_HOME_SECTION)

    scheduler = read_scheduler(log, sections["scheduler"].table)
    # With a wrong kind, scheduler.kind is the default "direct": do not blame connection.node for it.
    kind_valid = sections["scheduler"].get("kind") in (MISSING, *SCHEDULER_KINDS)
    name = read_name(sections["workspace"], config_path)
    return Workspace(
        name=name,
        config_path=config_path,
        local_root=read_local_root(sections["workspace"], config_path.parent),
        remote_root=read_remote_root(sections["workspace"], name),
        connection=read_connection(sections["connection"], scheduler, kind_valid, config_path.parent),
        run=read_run(sections["run"]),
        sync=read_sync(sections["sync"]),
        ports=read_ports(sections["ports"]),
        layout=read_layout(sections["layout"]),
        debug=read_debug(sections["debug"]),
        scheduler=scheduler,
        ui=read_ui(sections["ui"]),
    )


def _report_top_level(root: TableReader) -> None:
    """Unknown sections, and keys written above the first [section] header."""
    known_sections = ", ".join(f"[{name}]" for name in SECTION_KEYS)
    for key, value in root.table.items():
        if key in SECTION_KEYS:
            continue
        if not isinstance(value, dict):
            home = _HOME_SECTION.get(key)
            hint = f"move it under [{home}]" if home else f"keys go inside a section: {known_sections}"
            root.problem(key, f"'{key}' is not inside a section", hint)
            continue
        guess = suggest(key, SECTION_KEYS)
        hint = f"did you mean [{guess}]?" if guess else f"known sections: {known_sections}"
        root.problem(key, f"unknown section [{key}]", hint)

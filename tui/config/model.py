"""The data model of tether.toml: frozen dataclasses, built by tui/config.py.

Import these from tui.config (which re-exports them); this module only keeps config.py short.
Sequences are tuples so that a Workspace is immutable and hashable. Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tui.config.rules import HostSpec
from tui.config.scheduler import SchedulerConfig

CONFIG_FILENAME = "tether.toml"
NODE_FROM_SCHEDULER = "scheduler"
BUILTIN_PANES = ("run", "htop", "gpu", "shell")
DEFAULT_PROTECT = ("outputs/", "checkpoints/", "wandb/", "*.log")


@dataclass(frozen=True)
class ConnectionConfig:
    """How to reach the node: the login host, optional jump hosts, and which node."""

    login: HostSpec
    # "" = the login host itself; "scheduler" = the node of the scheduler's job; else a host name.
    # A "" in the file becomes "scheduler" when [scheduler] kind is slurm, pbs or kube, because
    # with those there is no sensible other meaning (a job never runs on the login host).
    node: str = ""
    jump: tuple[HostSpec, ...] = ()
    sync_via: str = "node"  # "node" | "login" (the login host shares the node's filesystem)
    ssh_config: Path | None = None  # None = ssh's own default
    control_persist: int = 600  # seconds (>= 1) the login master stays after detaching
    connect_timeout: int = 15

    @property
    def node_from_scheduler(self) -> bool:
        return self.node == NODE_FROM_SCHEDULER

    @property
    def node_is_login(self) -> bool:
        return self.node == ""


@dataclass(frozen=True)
class RunConfig:
    command: str = "python main.py"
    interpreter: str = "python3"
    env: tuple[str, ...] = ()  # shell lines run before the command ("module load cuda")
    prefix: str = ""  # a container prefix ("apptainer exec --nv img.sif")
    pass_env: tuple[str, ...] = ()  # names of laptop environment variables given to the run
    restart_on_sync: bool = False


@dataclass(frozen=True)
class SyncConfig:
    ignore: tuple[str, ...] = ()  # gitignore patterns, on top of .gitignore
    protect: tuple[str, ...] = DEFAULT_PROTECT  # remote paths never deleted
    delete_threshold: float = 0.5  # halt when a sync would delete more than this share of files


@dataclass(frozen=True)
class PortForward:
    name: str
    remote: int
    local: int = 0  # 0 = pick a free local port


@dataclass(frozen=True)
class PaneSpec:
    name: str
    command: str | None = None  # None = the built-in pane's own command

    @property
    def is_builtin(self) -> bool:
        return self.name in BUILTIN_PANES


@dataclass(frozen=True)
class LayoutConfig:
    panes: tuple[PaneSpec, ...] = tuple(PaneSpec(name) for name in BUILTIN_PANES)


@dataclass(frozen=True)
class DebugConfig:
    mode: str = "attach"  # "attach" | "wait" | "off"
    wait_timeout: int = 0  # seconds to wait for a client in mode "wait"; 0 = forever
    ranks: int = 1  # debug ports: one per rank, base + rank
    # Where the run's python has no debugpy: "auto" copies Tether's own to the node, "ask" asks
    # first, "never" stops with the command that installs it.
    provide_debugpy: str = "auto"
    # The laptop TCP port VS Code attaches to (a forward of the debug port): every user of the
    # laptop can connect to 127.0.0.1. false: no such port, no launch.json.
    vscode_port: bool = True
    # The loop starts the next run ahead (debugpy imported, its adapter up, no user code run), so
    # a restart takes milliseconds; false where memory on the node is tight (one more interpreter).
    standby: bool = True


TERMINAL_ALERTS = ("off", "bell", "desktop")
LONG_LINES = ("fold", "scroll")


@dataclass(frozen=True)
class UiConfig:
    theme: str = ""  # checked by the app, which knows the themes; "": the one the user last picked
    stats_interval: float = 2.0
    keys: tuple[tuple[str, str], ...] = ()  # [ui.keys]: (action, Textual key names, comma-separated)
    terminal_alert: str = "off"  # also tell the terminal of an alert: "bell", "desktop" (OSC 9), "off"
    metrics: tuple[str, ...] | None = None  # names or patterns of the numbers to plot; None: tui.metrics' defaults
    long_lines: str = "fold"  # the run's lines wider than the output panel: "fold" at spaces, or "scroll" sideways


@dataclass(frozen=True)
class Workspace:
    name: str
    config_path: Path  # absolute
    local_root: Path  # absolute, resolved
    remote_root: str  # absolute or "~/...", normalised; never a home directory or "/"
    connection: ConnectionConfig
    run: RunConfig = RunConfig()
    sync: SyncConfig = SyncConfig()
    ports: tuple[PortForward, ...] = ()
    layout: LayoutConfig = LayoutConfig()
    debug: DebugConfig = DebugConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    ui: UiConfig = UiConfig()

    @property
    def config_dir(self) -> Path:
        return self.config_path.parent

    @property
    def node_is_login(self) -> bool:
        return self.connection.node_is_login

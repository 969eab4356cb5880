"""Agent capability ``tui.node.layout``: the workspace's tmux session on the node, and the run's output.

One tmux session per workspace (``tether-<workspace>``), built with libtmux from ``[layout]``:
created once, reused on reattach, rebuilt only on request. The run pane's output is piped into a
rotating log (``tui.node.runlog``) under ``~/.cache/tether/runs/<workspace>/``; the agent tails it
and sends only new lines. Everything that must outlive a disconnect is in tmux and in that folder,
so a new agent (after a reconnect, or a second console) finds it all again. Several agents may
serve one workspace at once: building and tearing down hold a file lock, watching is read-only.

Ops:
  layout.ensure {workspace, root, panes, run, size, rebuild} -> {layout}; starts the watchers
  output.page   {workspace, before, count} -> {lines, start, total}
  layout.down   {workspace} -> {stopped}: the run, the tmux session and the workspace's other agents
Events: ``layout`` (panes changed), ``output`` (new lines; ``history`` replaces what was shown).

The messages' types are ``protocol_layout``'s; what the layout keeps about the workspace is in
``tui.node.layoutstate``, what each pane runs is built in ``tui.node.panes``. libtmux is imported
only by ``register``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.node import loopstate as ls
from tui.node import passenv, runlog
from tui.node.layoutstate import (
    Built,
    BuiltSpec,
    RunPane,
    forget_state,
    is_agent,
    log_path,
    loop_dir,
    read_state,
    register_agent,
    registered_agents,
    state_dir,
    workspace_lock,
    write_state,
)
from tui.node.panes import loop_script, pane_command, script_command
from tui.node.protocol_layout import (
    DOWN,
    ENSURE,
    PAGE,
    TMUX_SOCKET_ENV,
    WORKSPACE_ENV,
    DownReply,
    LayoutDown,
    LayoutEnsure,
    LayoutEvent,
    LayoutReply,
    LayoutView,
    LoopSpec,
    OutputEvent,
    PageReply,
    PageRequest,
    PaneState,
    RunSpec,
    session_name,
)
from tui.node.protocol_loop import DebugPlan, LoopOptions, LoopRank

if TYPE_CHECKING:
    from tui.node.agent import Agent

HOLDER_SERVER_WAIT_S = 8.0  # a slow prolog starts the batch script late; longer would miss the link's pings
PANE_OPTION = "@tether-pane"
GENERATION_OPTION = "@tether-generation"
WATCH_INTERVAL = 1.0
TAIL_INTERVAL = 0.25
DEFAULT_SIZE = (200, 50)


def free_ports(count: int, host: str = "127.0.0.1", tries: int = 64) -> int:
    """A base port such that base .. base+count-1 are all free on ``host`` now (one per rank)."""
    for _ in range(tries):
        with socket.socket() as probe:
            probe.bind((host, 0))
            base: int = probe.getsockname()[1]
        if base + count > 65535:
            continue
        held = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports on {host}")


# -- processes -----------------------------------------------------------------------------------
def stop_processes(pids: list[int], grace: float = 2.0) -> None:
    """TERM, then KILL what is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and ls.live_pids(pids):
            time.sleep(0.05)
        pids = ls.live_pids(pids)
        if not pids:
            return


# -- the capability ------------------------------------------------------------------------------
class Layout:
    """One agent's view of one workspace's tmux session."""

    def __init__(self, agent: Agent, libtmux: Any, run_pane: RunPane) -> None:
        self.agent = agent
        # The holder job's tmux server where a scheduler gave the node, else the default socket.
        self.server = libtmux.Server(socket_name=os.environ.get(TMUX_SOCKET_ENV) or None)
        self.host = socket.gethostname()
        self.run_pane = run_pane  # the workspace watched and its run pane's pid, for the stats
        self._lock = threading.Lock()
        self._watching = False
        self._last_layout: str | None = None
        self._tail: runlog.Tail | None = None
        self._secrets: dict[str, str] = {}  # the pass_env values of the build under way
        self._offers: list[Path] = []  # their FIFOs, one per run script

    # tmux ----------------------------------------------------------------------------------
    def _tmux(self, *args: str) -> list[str]:
        result = self.server.cmd(*args)
        if result.stderr and result.returncode:
            raise RuntimeError(f"tmux {args[0]}: {' '.join(result.stderr)}")
        return list(result.stdout)

    def exists(self, workspace: str) -> bool:
        return bool(self.server.cmd("has-session", "-t", f"={session_name(workspace)}").returncode == 0)

    def panes(self, workspace: str) -> list[PaneState] | None:
        fmt = f"#{{pane_id}}\t#{{{PANE_OPTION}}}\t#{{pane_pid}}"
        result = self.server.cmd("list-panes", "-s", "-t", f"={session_name(workspace)}", "-F", fmt)
        if result.returncode:
            return None
        out: list[PaneState] = []
        for line in result.stdout:
            pane_id, name, pid = (line.split("\t") + ["", ""])[:3]
            out.append({"name": name, "id": pane_id, "pid": int(pid) if pid.isdigit() else None})
        return out

    def _wait_for_holder_server(self) -> str | None:
        """A job that has just started may not have started its tmux server yet: give it a moment,
        so the panes are created by the job's own server rather than one outside the job. Returns
        a note for the user when it never came."""
        if not os.environ.get(TMUX_SOCKET_ENV):
            return None
        deadline = time.monotonic() + HOLDER_SERVER_WAIT_S
        while not self.server.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.server.is_alive():
            return None
        self.agent.log("the holder job started no tmux server: starting one here")
        return (
            "the job's batch script started no tmux server (is tmux on PATH in batch jobs? [run] env "
            "lines run there too), so the run is outside the job: where the node is reached through "
            "srun it ends when the console detaches"
        )

    def build(self, spec: LayoutEnsure) -> Built:
        workspace = spec["workspace"]
        name = session_name(workspace)
        holder_note = self._wait_for_holder_server()
        root = os.path.expanduser(spec.get("root") or "~")
        os.makedirs(root, exist_ok=True)
        width, height = spec.get("size") or DEFAULT_SIZE
        env = {key: os.environ[key] for key in ("PATH", "LD_LIBRARY_PATH") if os.environ.get(key)}
        # [run] pass_env values: handed to each run script through a FIFO (tui.node.passenv), never
        # on a command line (`ps`) or in a file.
        self._secrets = {str(k): str(v) for k, v in (spec.get("pass_env") or {}).items()}
        self._offers = []
        run: RunSpec = spec.get("run", {})
        debug = self._plan_debug(workspace, run["loop"]) if run.get("loop") else None
        built: list[tuple[str, Any]] = []
        notes = [holder_note] if holder_note else []
        for index, pane in enumerate(spec["panes"]):
            command, note = pane_command(pane, root, run, self.host)
            pane_env = env
            if pane["name"] == "run" and pane.get("command") is None:
                if debug is not None:
                    command = self._loop_script_file(workspace, run, debug, 0)
                elif command:
                    script = state_dir(workspace) / "run.sh"  # a file: `ps` shows a path, not a script
                    script.write_text(
                        "".join(f"{line}\n" for line in self._secret_lines(workspace, 0)) + command + "\n"
                    )
                    command = script_command(script)
            if note:
                notes.append(note)
            if index == 0:
                session = self.server.new_session(
                    session_name=name,
                    attach=False,
                    start_directory=root,
                    window_name="tether",
                    window_command=command,
                    x=width,
                    y=height,
                    environment=pane_env,
                )
                handle = session.active_window.active_pane
            else:
                handle = built[-1][1].split(start_directory=root, shell=command, environment=pane_env)
                self._tmux("select-layout", "-t", handle.pane_id, "tiled")
            built.append((pane["name"], handle))
        for pane_name, handle in built:
            self._tmux("set-option", "-p", "-t", handle.pane_id, PANE_OPTION, pane_name)
            if pane_name == "run":
                log = log_path(workspace)
                writer = f"PYTHONPATH={shlex.quote(_agent_root())} exec {shlex.quote(sys.executable)} -m tui.node.runlog write {shlex.quote(str(log))}"
                self._tmux("pipe-pane", "-o", "-t", handle.pane_id, writer)
        if debug is not None and len(debug["ranks"]) > 1:
            built += self._rank_panes(workspace, root, run, debug, env)
        for fifo in self._offers:
            self.agent.spawn(f"pass_env {fifo.name}", partial(passenv.offer, fifo, self._secrets, self.agent.log))
        generation = int(read_state(workspace).get("generation", 0)) + 1
        self._tmux("set-option", "-t", built[0][1].pane_id, GENERATION_OPTION, str(generation))
        self._tmux("select-pane", "-t", built[0][1].pane_id)
        return {"generation": generation, "notes": notes, "debug": debug}

    def _plan_debug(self, workspace: str, loop: LoopSpec) -> DebugPlan:
        """Ports (free on the node now: base + rank) and loop folders for the run's ranks."""
        ranks = max(1, int(loop.get("ranks", 1)))
        base = free_ports(ranks + (1 if ranks > 1 else 0))
        entries: list[LoopRank] = []
        for rank in range(ranks):
            folder = loop_dir(workspace, rank)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Before the loop starts: a previous layout's options must not override its --mode.
            ls.write_options(folder, loop_options(loop))
            entries.append({"rank": rank, "port": base + rank, "state": str(folder / "state.json")})
        return {"mode": loop.get("mode", "attach"), "ranks": entries, "master_port": base + ranks if ranks > 1 else 0}

    def _hand_over_debug_options(self, debug: DebugPlan, loop: LoopSpec) -> list[str]:
        """tether.toml's [debug] options for the loops of a kept layout: each takes them at its next
        start of the run (``loopstate.write_options``), so a changed mode costs no run the user did not
        restart. Returns the note for the user where a loop runs in another mode now."""
        wanted = loop_options(loop)
        behind = False
        for entry in debug.get("ranks", ()):
            ls.write_options(entry["state"], wanted)
            with contextlib.suppress(ls.LoopError):
                current = ls.read_state(entry["state"]) or {}
                behind = behind or current.get("mode", wanted["mode"]) != wanted["mode"]
        debug["mode"] = wanted["mode"]
        return [f"debug mode {wanted['mode']} takes effect at the next restart (r)"] if behind else []

    def _secret_lines(self, workspace: str, rank: int) -> tuple[str, ...]:
        """The run script's line that takes the pass_env values from a fresh FIFO (none: no values)."""
        if not self._secrets:
            return ()
        fifo = state_dir(workspace) / f"pass_env{rank}.fifo"
        passenv.make_fifo(fifo)
        self._offers.append(fifo)
        return (passenv.reader_line(fifo, sys.executable, _agent_root()),)

    def _loop_script_file(self, workspace: str, run: RunSpec, debug: DebugPlan, rank: int) -> str:
        entry = debug["ranks"][rank]
        text = loop_script(
            run,
            rank=rank,
            port=entry["port"],
            state=Path(entry["state"]),
            agent_python=sys.executable,
            agent_root=_agent_root(),
            master_port=debug["master_port"],
            wait_for_pipe=rank == 0,
            first=self._secret_lines(workspace, rank),
        )
        script = state_dir(workspace) / ("run.sh" if rank == 0 else f"run{rank}.sh")
        script.write_text(text + "\n")
        return script_command(script)

    def _rank_panes(
        self, workspace: str, root: str, run: RunSpec, debug: DebugPlan, env: dict[str, str]
    ) -> list[tuple[str, Any]]:
        """Ranks 1..N-1: one loop each, in the panes of a second window ("ranks")."""
        session = self.server.sessions.get(session_name=session_name(workspace))
        built: list[tuple[str, Any]] = []
        for rank in range(1, len(debug["ranks"])):
            command = self._loop_script_file(workspace, run, debug, rank)
            if not built:
                window = session.new_window(
                    window_name="ranks", start_directory=root, attach=False, window_shell=command, environment=env
                )
                handle = window.active_pane
            else:
                handle = built[-1][1].split(start_directory=root, shell=command, environment=env)
                self._tmux("select-layout", "-t", handle.pane_id, "tiled")
            built.append((f"run.{rank}", handle))
        return built

    def ensure(self, message: LayoutEnsure) -> LayoutReply:
        workspace = message["workspace"]
        created = False
        with workspace_lock(workspace):
            state = read_state(workspace)
            exists = self.exists(workspace)
            if message.get("rebuild") and exists:
                self.down_session(workspace)
                exists = False
            pending: list[str] = []
            if not exists:
                if message.get("rebuild") or state:
                    self._mark_log(workspace, "the tmux layout was rebuilt: a new run starts")
                built = self.build(message)
                spec: BuiltSpec = {
                    "root": message.get("root"),
                    "panes": message.get("panes"),
                    "run": message.get("run"),
                    "size": message.get("size"),
                }
                state = {**state, **built, "spec": spec}
                created = True
            elif (debug := state.get("debug")) and (loop := (message.get("run") or {}).get("loop")):
                pending = self._hand_over_debug_options(debug, loop)
            state["interval"] = message.get("interval", state.get("interval", 2.0))
            write_state(workspace, state)
        self.watch(workspace)
        layout = self.describe(workspace)
        layout["notes"] = [*layout["notes"], *pending]
        root = os.path.expanduser(message.get("root") or "~")
        return {"op": "layout", "created": created, **layout, "debug": state.get("debug"), "root": root}

    def _mark_log(self, workspace: str, text: str) -> None:
        log = log_path(workspace)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as handle:
            handle.write(f"[tether] {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n".encode())

    def describe(self, workspace: str) -> LayoutView:
        panes = self.panes(workspace)
        state = read_state(workspace)
        run = next((p for p in panes or [] if p["name"] == "run"), None)
        self.run_pane.pid = run["pid"] if run else None
        return {
            "session": session_name(workspace),
            "host": self.host,
            "exists": panes is not None,
            "panes": panes or [],
            "generation": int(state.get("generation", 0)),
            "notes": state.get("notes", []),
        }

    def down_session(self, workspace: str) -> list[int]:
        """Kill the session and every process of its panes; returns the pids that were running."""
        panes = self.panes(workspace) or []
        roots = [p["pid"] for p in panes if p["pid"]]
        pids = list(dict.fromkeys(roots + ls.descendants(*roots)))
        self.server.cmd("kill-session", "-t", f"={session_name(workspace)}")
        stop_processes(pids)
        return pids

    def down(self, message: LayoutDown) -> DownReply:
        workspace = message["workspace"]
        stopped = []
        with workspace_lock(workspace):
            if self.exists(workspace):
                pids = self.down_session(workspace)
                stopped.append(f"tmux session {session_name(workspace)} ({len(pids)} processes)")
            agents = [pid for pid in registered_agents(workspace) if pid != os.getpid() and is_agent(pid)]
            stop_processes(agents)
            if agents:
                stopped.append(f"{len(agents)} other agent(s)")
            forget_state(workspace)
        return {"op": "down", "stopped": stopped}

    # watching -------------------------------------------------------------------------------
    def watch(self, workspace: str) -> None:
        """Start sending layout changes and new output lines (once per agent)."""
        with self._lock:
            if self._watching:
                return
            self._watching, self.run_pane.workspace = True, workspace
        register_agent(workspace)
        self._tail = runlog.Tail(log_path(workspace))
        self.agent.send(OutputEvent(op="output", history=True, lines=self._tail.start()))
        self._send_layout_if_changed()
        self.agent.spawn("layout-watch", self._watch_loop)

    def _send_layout_if_changed(self) -> None:
        assert self.run_pane.workspace is not None
        layout = self.describe(self.run_pane.workspace)
        key = json.dumps([layout["exists"], layout["panes"], layout["generation"]])
        if key != self._last_layout:
            self._last_layout = key
            event: LayoutEvent = {"op": "layout", **layout}
            self.agent.send(event)

    def _watch_loop(self) -> None:
        assert self._tail is not None
        next_layout = time.monotonic() + WATCH_INTERVAL
        while self.agent.running:
            lines = self._tail.read_new()
            if lines:
                self.agent.send(OutputEvent(op="output", lines=lines))
            if time.monotonic() >= next_layout:
                next_layout = time.monotonic() + WATCH_INTERVAL
                self._send_layout_if_changed()
            time.sleep(TAIL_INTERVAL)

    def page(self, message: PageRequest) -> PageReply:
        result = runlog.page(log_path(message["workspace"]), message.get("before"), int(message.get("count", 100)))
        return {"op": "page", "lines": result.lines, "start": result.start, "total": result.total}

    def autostart(self) -> None:
        """A new agent for a known workspace: show its layout and output without being asked."""
        workspace = os.environ.get(WORKSPACE_ENV)
        if workspace and read_state(workspace) and self.exists(workspace):
            self.watch(workspace)


def loop_options(loop: LoopSpec) -> LoopOptions:
    """The options of a layout request's ``run.loop`` that a running loop takes at its next start."""
    return {
        "mode": str(loop.get("mode", "attach")),
        "wait_timeout": float(loop.get("wait_timeout") or 0),
        "standby": bool(loop.get("standby", True)),
    }


def _agent_root() -> str:
    """The folder holding this agent's ``tui`` package (``~/.cache/tether/agent/<version>``)."""
    return str(Path(__file__).resolve().parent.parent.parent)


def register(agent: Agent) -> None:
    import libtmux

    # tmux prints libtmux's field separator as '_' under a non-UTF-8 locale (TESTBED.md section 3).
    if "UTF-8" not in (os.environ.get("LC_ALL") or os.environ.get("LC_CTYPE") or os.environ.get("LANG") or "").upper():
        os.environ["LC_CTYPE"] = "C.UTF-8"
        os.environ.pop("LC_ALL", None)
    layout = Layout(agent, libtmux, agent.run_pane)
    agent.register(ENSURE.name, layout.ensure)
    agent.register(DOWN.name, layout.down)
    agent.register(PAGE.name, layout.page)
    agent.on_hello(lambda: agent.spawn("layout-autostart", layout.autostart))

"""The debug loop: runs the user's program under debugpy in the tmux "run" pane, and restarts it.

    python -m tui.node.loop --state DIR/state.json --port P [--mode attach|wait|off]
                            [--wait-timeout S] [--grace S] [--python PATH] -- COMMAND...

It keeps the semantics of ``while true; do python -m debugpy --listen ... train.py; done``, safely.
Stdlib only (shipped to the node); Linux only (/proc). Whoever builds the pane runs the user's
environment lines first; the loop passes its environment on, plus PYTHONUNBUFFERED=1 (unless set),
TETHER_DEBUG_PORT, and TETHER_LOOP_RUN (a token per start, by which the loop recognises the run's
processes that left its session, such as debugpy's adapter, and a later loop its leftovers).

COMMAND, in mode ``attach`` (debugpy listens, the program runs at once) or ``wait`` (it waits for a
debugger; --wait-timeout S > 0 stops it when none came S s after debugpy listened): a Python
command, to which the loop adds debugpy, always on 127.0.0.1, never 0.0.0.0:
    python [interpreter options] script.py ARGS  ->  python [options] -X frozen_modules=off
                                                      -m debugpy --listen 127.0.0.1:P script.py ARGS
    python [options] -m module ARGS / -c CODE ARGS   (the same, debugpy runs the module or code)
    script.py ARGS                                   (run with --python, default: this interpreter)
    torchrun ARGS, accelerate launch ARGS, deepspeed ARGS
                                 ->  PYTHON -m torch.distributed.run ARGS (and so on) under debugpy,
                                     PYTHON the one the launcher's script names (else --python);
                                     debugpy follows the workers it starts: each rank is debuggable
"python" is any word whose file name is python, python3 or python3.N. Anything else (a shell
script, a command that starts debugpy itself) is refused in these modes; mode ``off`` runs COMMAND
as it is, without a debugger.

Keys in the pane: Ctrl-C restarts the debuggee (the new one starts once a second has passed without
another Ctrl-C); Ctrl-C twice within a second stops it and leaves the loop (a third one: SIGKILL
now). The debuggee runs in its own session, so the terminal's Ctrl-C reaches only the loop (the
pane's foreground process group), which decides. Stopping = SIGTERM to the whole session (process
group, and members that moved to another group) and to debugpy's adapter, SIGKILL after --grace s
(default 3); when the debuggee ends by itself, what it left in its session (DataLoader workers) is
stopped the same way. Out of reach: processes that made themselves a new session (setsid, daemons).
SIGTERM, SIGHUP (the pane closed) and SIGQUIT stop the run and leave the loop; Ctrl-Z is ignored.
If the loop itself is SIGKILLed, the kernel kills the debuggee (PR_SET_PDEATHSIG) and the next loop
started on the same state file stops what remains of that run.

The debuggee's stdin is the pane's terminal (input() and pdb work); its stdout and stderr are one
pipe that the loop copies to the pane, to output.log and to output.tail (see ``loopstate`` for the
files and the control socket: ``restart``, ``stop``, ``quit``, ``status``), so it sees no terminal
(colours may switch off). When it ends by itself the loop waits for a restart. A program that keeps
ending within 2 s of debugpy listening is restarted after 1, 2, 4 ... 30 s; never two starts within
a second.

State file (JSON): schema, status (one of loopstate.STATUSES), loop_pid, loop_running, pid, pgid
(= session id), exit_code (negative: killed by that signal), exit_signal, exit_reason, restarts,
port, host, mode, wait_timeout_s, command, argv, name, started_at, ended_at, backoff_s,
next_start_at, quick_exits, debugger_clients, token, log, tail, control, updated_at (times: Unix s).
"""

from __future__ import annotations

import argparse
import codecs
import collections
import contextlib
import dataclasses
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.node import debugguard
from tui.node import loopstate as ls
from tui.node.loopcmd import HOST, CommandError, Launch, build_launch
from tui.node.pyenv import PYTHON_ENV_PROBE, debugpy_install_fix
from tui.node.standby import Standby, kill_now, processes_with, token_entry

RUN_PYTHONPATH = "TETHER_RUN_PYTHONPATH"  # the user's PYTHONPATH, kept aside while the loop runs with the agent's
HOOK = "tether_breakpoint.breakpointhook"  # PYTHONBREAKPOINT for the run (tui/node/hook.py, copied next to the state)
BREAKPOINT_NAME = "breakpoint.json"
HOOK_DIR = "pyhook"


def install_hook(directory: Path) -> Path | None:
    """Copy the breakpoint() hook (``tether_breakpoint.py``) and the guard that keeps other users
    out of debugpy (``tether_debugguard.py``, with its ``tether_adapter`` folder) next to the state,
    0600 in a 0700 folder; that folder, or None."""
    target = directory / HOOK_DIR
    try:
        target.mkdir(mode=0o700, exist_ok=True)
        for source, name in (("hook.py", "tether_breakpoint"), ("debugguard.py", debugguard.GUARD_MODULE)):
            data = Path(__file__).with_name(source).read_bytes()
            path = target / f"{name}.py"
            if not path.exists() or path.read_bytes() != data:
                tmp = target / f".{name}.{os.getpid()}.tmp"
                with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
        debugguard.write_adapter(str(target))
    except OSError:
        return None
    return target


MODES = ("attach", "wait", "off")
QUICK_EXIT_S = 2.0  # a run that ends sooner than this counts towards the backoff
NEVER_UP_QUICK_S = 30.0  # ... and so does one that ends before debugpy listens, within this
DEBUGGER_GONE_S = 2.0  # the debug port unheard this long, the run alive: its debugger is gone
MIN_START_INTERVAL_S = 1.0
DOUBLE_CTRL_C_S = 1.0
MAX_BACKOFF_S = 30.0
LOG_ROTATE_BYTES = 64 * 1024 * 1024
TICK_S = 0.2
HANDOVER_TICK_S = 0.005  # while a restart waits for the old run to go: its adapter ends unannounced
STANDBY_AFTER_S = 0.2  # the standby starts this long after the run listens (not competing with its start)
STANDBY_TRIES = 3  # standbys that die before their go: after these, restarts start from scratch
PORT_WAIT_S = 3.0
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")  # colours, titles
_EXIT_HINT = "press Ctrl-C or r in Tether to restart, Ctrl-C twice to leave"


def backoff_delay(quick_exits: int) -> float:
    """Seconds to wait before the next start after ``quick_exits`` quick endings in a row."""
    return 0.0 if quick_exits <= 0 else min(MAX_BACKOFF_S, 2.0 ** (quick_exits - 1))


def signal_name(code: int) -> str | None:
    """SIGKILL for returncode -9; None for a normal exit."""
    if code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def describe_exit(code: int) -> str:
    return f"was killed by {signal_name(code)}" if code < 0 else f"exited with code {code}"


@dataclass(frozen=True)
class Options:
    state: Path
    port: int
    command: tuple[str, ...]
    mode: str = "attach"
    wait_timeout: float = 0.0
    grace: float = 3.0
    python: str = sys.executable
    prefix: tuple[str, ...] = ()  # a container prefix put before the launch argv (apptainer exec ...)
    debugpy_dir: Path | None = None  # a folder holding Tether's copy of debugpy, used when the run has none
    provide_debugpy: str = "auto"  # [debug] provide_debugpy: "never" stops at once when debugpy is missing
    standby: bool = True  # [debug] standby: the next run starts ahead, so a restart takes milliseconds


@dataclass
class Run:
    """One start of the debuggee."""

    popen: subprocess.Popen[bytes]
    fd: int  # read end of its output pipe; -1 once closed
    token: str
    started: float  # monotonic
    started_at: float  # wall clock
    phase: str = "alive"  # alive -> term (SIGTERM sent) -> kill (SIGKILL sent)
    kill_at: float = 0.0
    stop_reason: str | None = None  # set when the loop stopped it
    exit_code: int | None = None
    ended: float = 0.0
    ended_at: float = 0.0
    clients: int = 0
    ever_attached: bool = False
    adapters: list[int] = field(default_factory=list)  # debugpy's adapter: it holds the port
    up: float | None = None  # monotonic time debugpy was first seen listening (mode off: the start)
    warned_stuck: bool = False
    listening: bool = False
    unheard_since: float | None = None  # it listened, and since then no longer does
    debugger_gone: bool = False  # ... for DEBUGGER_GONE_S with the run alive: the adapter is gone
    waiting_at: str | None = None  # "train.py:42": breakpoint() waits for a debugger there
    pdb: str = ""  # the Unix socket where pdb waits instead (the run's python has no debugpy)
    gate: Standby | None = None  # the standby it was, until it and its adapter passed their gate


def _noop(signum: int, frame: Any) -> None:
    """Python-level handler; the wakeup fd carries the signal to the main loop."""


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec function asking the kernel to SIGKILL the child when the loop dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError, ImportError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, options: Options, launch: Launch, out_fd: int = 1) -> None:
        self.options = options
        self.launch = launch
        self.dir = options.state.parent
        self.out_fd = out_fd
        self.pane_ok = True
        self.pane_at_line_start = True
        self.log = open(self.dir / ls.LOG_NAME, "ab", buffering=0)
        os.chmod(self.dir / ls.LOG_NAME, 0o600)
        self.tail: collections.deque[str] = collections.deque(ls.read_tail(self.dir), maxlen=ls.TAIL_LINES)
        self.partial = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tail_dirty = False
        self.tail_written = 0.0
        self.sel = selectors.DefaultSelector()
        self.run: Run | None = None
        self.status = "starting"
        self.restarts = -1  # the first start makes it 0
        self.quick_exits = 0
        self.last: dict[str, Any] = {
            "pid": None,
            "pgid": None,
            "token": None,
            "exit_code": None,
            "exit_signal": None,
            "exit_reason": None,
            "started_at": None,
            "ended_at": None,
        }
        self.start_at: float | None = None  # monotonic time of the next start; None: wait for a command
        self.backoff_s = 0.0
        self.last_start = -1e9
        self.last_sigint = -1e9
        self.quitting = False
        self.done = False
        self.next_poll = 0.0
        self.port_wait: float | None = None
        self.written: dict[str, Any] | None = None
        self.preexec = _pdeathsig()
        self.python = _run_python(options, launch)
        self.refused_mode: str | None = None  # a mode from tether.toml this command cannot run in (said once)
        self.hook_dir = install_hook(self.dir)
        self.use_debugpy_dir: bool | None = None  # None: not decided yet (Tether's copy not there yet)
        self.debugpy_missing = False
        self._debugpy_fix: str | None = None
        self.breakpoint_seen: tuple[int, int] | None = None
        self.standby: Standby | None = None
        self.standby_failures = 0

    # ---------------------------------------------------------------- output: pane, log, tail
    def _pane(self, data: bytes) -> None:
        if not self.pane_ok or not data:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.out_fd, view) :]
            self.pane_at_line_start = data.endswith(b"\n")
        except OSError:  # the pane is gone (SIGHUP follows); keep logging
            self.pane_ok = False

    def _output(self, data: bytes) -> None:
        self._pane(data)
        self.log.write(data)
        text = self.partial + _ESCAPES.sub("", self.decoder.decode(data))
        *lines, self.partial = text.split("\n")
        for line in lines:
            self.tail.append(line.rstrip("\r").rsplit("\r", 1)[-1])  # what a terminal shows of it
        cut = self.partial.rfind("\r", 0, len(self.partial) - 1)  # progress bars redraw with \r only
        self.partial = self.partial[cut + 1 :][-4096:]
        self.tail_dirty = True

    def say(self, text: str) -> None:
        """A line of the loop's own in the pane, the log and the tail."""
        prefix = b"" if self.pane_at_line_start else b"\n"
        self._pane(prefix + f"tether: {text}\n".encode())
        log_prefix = "\n" if self.partial else ""
        self.log.write(f"{log_prefix}[{time.strftime('%Y-%m-%d %H:%M:%S')}] tether: {text}\n".encode())
        if self.partial:
            self.tail.append(self.partial.rsplit("\r", 1)[-1])
            self.partial = ""
        self.tail.append(f"tether: {text}")
        self.tail_dirty = True

    def _read_output(self, run: Run) -> int:
        """Copy what the debuggee wrote, at most 1 MiB a call (so signals are not starved); bytes read."""
        total = 0
        for _ in range(16):
            if run.fd < 0:
                break
            try:
                data = os.read(run.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.sel.unregister(run.fd)
                os.close(run.fd)
                run.fd = -1
                break
            self._output(data)
            total += len(data)
        return total

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        run = self.run
        now_wall, now = time.time(), time.monotonic()
        common = {
            "schema": ls.SCHEMA,
            "status": self.status,
            "loop_pid": os.getpid(),
            "loop_running": not self.done,
            "restarts": max(self.restarts, 0),
            "port": self.options.port,
            "host": HOST,
            "mode": self.options.mode,
            "wait_timeout_s": self.options.wait_timeout,
            "command": list(self.options.command),
            "argv": list(self.launch.argv),
            "name": self.launch.name,
            "backoff_s": self.backoff_s,
            "next_start_at": None if self.start_at is None else now_wall + max(0.0, self.start_at - now),
            "quick_exits": self.quick_exits,
            "log": str(self.dir / ls.LOG_NAME),
            "tail": str(self.dir / ls.TAIL_NAME),
            "control": str(self.dir / ls.CONTROL_NAME),
            "python": self.python,
            "prefix": list(self.options.prefix),
            "debugpy_missing": self.debugpy_missing,
            "debugpy_from_tether": bool(self.use_debugpy_dir),
            "waiting_at": run.waiting_at if run is not None else None,
            "pdb": run.pdb if run is not None and run.waiting_at else "",
            "standby_pid": self.standby.popen.pid if self.standby is not None else None,
            "standby_token": self.standby.token if self.standby is not None else None,
        }
        if self.debugpy_missing:
            common["fix"] = self.debugpy_fix()
        if run is not None:
            common.update(
                pid=run.popen.pid,
                pgid=run.popen.pid,
                token=run.token,
                started_at=run.started_at,
                ended_at=None,
                exit_code=None,
                exit_signal=None,
                exit_reason=None,
                debugger_clients=run.clients,
            )
        else:
            common.update(self.last, debugger_clients=0)
        return common

    def _save(self) -> None:
        state = self.state()
        comparable = {k: v for k, v in state.items() if k != "next_start_at"}
        changed = comparable != self.written
        if changed:
            state["updated_at"] = time.time()
            ls.write_state(self.options.state, state)
            self.written = comparable
        now = time.monotonic()
        if self.tail_dirty and (now - self.tail_written >= 1.0 or changed or self.done):
            lines = list(self.tail) + ([self.partial.rsplit("\r", 1)[-1]] if self.partial else [])
            ls.write_tail(self.dir, lines[-ls.TAIL_LINES :])
            self.tail_dirty, self.tail_written = False, now

    # ---------------------------------------------------------------- the debuggee
    def _start(self) -> None:
        self.start_at = None
        log_path = self.dir / ls.LOG_NAME
        if log_path.stat().st_size > LOG_ROTATE_BYTES:
            self.log.close()
            os.replace(log_path, self.dir / (ls.LOG_NAME + ".1"))
            self.log = open(log_path, "ab", buffering=0)
            os.chmod(log_path, 0o600)
        token = uuid.uuid4().hex
        env = self._run_env(token)
        if self.options.mode != "off" and self.debugpy_missing:
            self._hold_for_debugpy()
            return
        self.restarts += 1
        self.last_start = time.monotonic()
        said = ("starting " if self.restarts == 0 else f"restart {self.restarts}: ") + " ".join(self.launch.argv)
        standby, self.standby = self.standby, None
        if standby is not None and standby.alive() and standby.fits(self.launch.argv, env):
            self.say(said + " (started ahead)")
            standby.go()
            run = Run(standby.popen, standby.fd, standby.token, time.monotonic(), time.time(), gate=standby)
            self._adopt(run)
            return
        if standby is not None:
            standby.drop()  # the command or its environment changed since: it would run the old one
        self.say(said)
        read_fd, write_fd = os.pipe()
        try:
            popen = subprocess.Popen(
                self.launch.argv,
                stdout=write_fd,
                stderr=write_fd,
                env=env,
                start_new_session=True,
                preexec_fn=self.preexec,
            )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            self.quick_exits += 1
            self.backoff_s = 0.0
            self.status = "crashed"
            reason = f"could not start {self.launch.argv[0]}: {exc.strerror}"
            self.last = dict(
                self.last,
                pid=None,
                pgid=None,
                token=None,
                exit_code=127,
                exit_signal=None,
                started_at=time.time(),
                ended_at=time.time(),
                exit_reason=reason,
            )
            self.say(f"{reason} — fix the command, then {_EXIT_HINT}")
            return
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._adopt(Run(popen, read_fd, token, time.monotonic(), time.time()))

    def _adopt(self, run: Run) -> None:
        if self.options.mode == "off":
            run.up = run.started
        self.sel.register(run.fd, selectors.EVENT_READ, lambda _key: self._read_output(run))
        self.run = run
        self.status = "running" if self.options.mode == "off" else "starting"
        self.next_poll = 0.0

    def _keep_standby(self, now: float) -> None:
        """A standby ready beside a run that is up (see tui.node.standby); one that died before its
        go is said once it has happened STANDBY_TRIES times, and not made again."""
        standby, run = self.standby, self.run
        if standby is not None and not standby.alive():
            self.standby = None
            standby.drop()
            self.standby_failures += 1
            if self.standby_failures == STANDBY_TRIES:
                self.say("the next run could not be started ahead (it ended before its turn); restarts start it then")
            return
        wanted = (
            self.options.standby
            and self.options.mode != "off"
            and self.hook_dir is not None  # the guard that holds the standby's port
            and not self.quitting
            and self.standby_failures < STANDBY_TRIES
            and run is not None
            and run.phase == "alive"
            and run.up is not None
            and now - run.up >= STANDBY_AFTER_S
        )
        if not wanted or standby is not None:
            return
        try:
            self.standby = Standby.start(self.launch.argv, self._run_env(uuid.uuid4().hex), self.dir, self.preexec)
        except OSError as exc:
            self.standby_failures = STANDBY_TRIES
            self.say(f"the next run cannot be started ahead ({exc}); restarts start it then")

    def _drop_standby(self) -> None:
        standby, self.standby = self.standby, None
        if standby is not None:
            standby.drop()

    def _run_env(self, token: str) -> dict[str, Any]:
        """The debuggee's environment: the pane's, the user's PYTHONPATH back, the hook, the port."""
        env = dict(
            os.environ,
            TETHER_LOOP_RUN=token,
            TETHER_DEBUG_PORT=str(self.options.port),
            TETHER_DEBUG_MODE=self.options.mode,
            TETHER_LOOP_DIR=str(self.dir),
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        if RUN_PYTHONPATH in env:  # the loop ran with the agent's path; the run gets the user's again
            user_path = env.pop(RUN_PYTHONPATH)
            if user_path:
                env["PYTHONPATH"] = user_path
            else:
                env.pop("PYTHONPATH", None)
        paths = [str(self.hook_dir)] if self.hook_dir is not None else []
        if self._debugpy_dir_needed(env):
            paths.append(str(self.options.debugpy_dir))
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            if self.hook_dir is not None:
                env.setdefault("PYTHONBREAKPOINT", HOOK)
        if self.options.mode != "off":
            env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        return env

    def _debugpy_dir_needed(self, env: dict[str, Any]) -> bool:
        """Whether the run needs Tether's copy of debugpy. The run's python is asked once; while it
        has none and Tether's copy is not on the node yet, ``debugpy_missing`` holds the start (a
        debuggee started anyway would only crash on "No module named debugpy")."""
        if self.use_debugpy_dir is not None:
            return self.use_debugpy_dir
        if self.options.mode == "off":
            return False
        probe = [*self.options.prefix, self.python, "-c", "import debugpy"]
        try:
            found = (
                subprocess.run(
                    probe,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=60,
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            found = False
        folder = self.options.debugpy_dir
        if found:
            self.use_debugpy_dir, self.debugpy_missing = False, False
        elif folder is not None and (folder / "debugpy" / "__init__.py").is_file():
            self.use_debugpy_dir, self.debugpy_missing = True, False
            self.say(f"{self.python} has no debugpy: using Tether's copy in {folder}")
        else:
            self.debugpy_missing = True  # undecided: the next start asks again
        return bool(self.use_debugpy_dir)

    def debugpy_fix(self) -> str:
        """The command that installs debugpy for the run's python and works there (a venv, PEP 668's
        externally managed pythons, no pip), asked of that python once."""
        if self._debugpy_fix is None:
            try:
                kind = subprocess.run(
                    [*self.options.prefix, self.python, "-c", PYTHON_ENV_PROBE],
                    text=True,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=60,
                ).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                kind = ""
            self._debugpy_fix = debugpy_install_fix(self.python, kind)
        return self._debugpy_fix

    def _hold_for_debugpy(self) -> None:
        """Do not start: the run's python has no debugpy and Tether's copy is not on the node. With
        provide_debugpy "auto" or "ask" the console copies it and restarts the loop; with "never"
        the user installs it."""
        fix = self.debugpy_fix()
        if self.options.provide_debugpy == "never":
            reason = (
                f'debugpy is not installed for {self.python}, and [debug] provide_debugpy = "never": '
                f'install it there ({fix}), or set provide_debugpy = "auto" to let Tether copy its own'
            )
            self.status = "stopped"
            self.last = dict(
                self.last,
                pid=None,
                pgid=None,
                token=None,
                exit_code=None,
                exit_signal=None,
                exit_reason=reason,
                started_at=time.time(),
                ended_at=time.time(),
            )
        else:
            reason = f"{self.python} has no debugpy: waiting for Tether's copy"
            self.status = "starting"
        self.say(reason)

    def _read_breakpoint(self, run: Run) -> None:
        """breakpoint() in the run (tui.node.hook) says where it waits for a debugger."""
        path = self.dir / BREAKPOINT_NAME
        try:
            stat = path.stat()
        except FileNotFoundError:
            if run.waiting_at and not run.clients:
                run.waiting_at = None
            self.breakpoint_seen = None
            return
        key = (stat.st_mtime_ns, stat.st_size)
        if key == self.breakpoint_seen:
            return
        self.breakpoint_seen = key
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(info, dict) and info.get("token") == run.token:
            run.waiting_at = f"{info.get('file')}:{info.get('line')}"
            run.pdb = str(info.get("pdb") or "")
            if run.pdb:
                self.say(f"pdb waits at {run.waiting_at} (breakpoint(); no debugpy): press b in the console")
            else:
                self.say(f"waiting for debugger at {run.waiting_at} (breakpoint(); port {self.options.port} on {HOST})")

    def _port_ready(self, now: float) -> bool:
        """Before a start: let the last run's debugpy adapter free the port (it exits by itself)."""
        port = self.options.port
        held = {s.inode for s in ls.tcp_sockets() if s.port == port and s.state == "LISTEN"}
        if self.options.mode == "off" or not held:
            self.port_wait = None
            return True
        if self.port_wait is None:
            self.port_wait = now + PORT_WAIT_S
        if now < self.port_wait:
            return False
        self.port_wait = None
        owners = sorted(ls.socket_owners(held))
        token = self.last.get("token")
        stale = [pid for pid in owners if token and ls.environ_has(pid, token_entry(token))]
        for pid in stale:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if stale:
            self.say(f"killed {stale}, left by the last run, that still held port {port}")
        else:
            who = f"pids {owners}" if owners else "a process of another user"
            self.say(f"port {port} on {HOST} is taken by {who}: debugpy cannot listen there; choose another port")
        return True

    def _members(self, run: Run) -> list[int]:
        """The run's live processes: its session, and debugpy's adapter (which left the session)."""
        entry = token_entry(run.token)
        adapters = [pid for pid in run.adapters if ls.environ_has(pid, entry) and pid in ls.live_pids([pid])]
        return ls.session_members(run.popen.pid) + adapters

    def _signal_run(self, run: Run, sig: int) -> None:
        sid = run.popen.pid  # start_new_session: session id = process group id = the debuggee's pid
        for kill, target in [(os.killpg, sid)] + [(os.kill, pid) for pid in self._members(run)]:
            try:
                kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _stop(self, reason: str) -> None:
        run = self.run
        if run is None:
            return
        if run.stop_reason is None and run.exit_code is None:
            run.stop_reason = reason
        if run.phase == "alive":
            # Its adapter, also where the listening poll has not seen it yet (a run just handed
            # over from the standby): it carries the run's token, and must not outlive the run.
            run.adapters = sorted(set(run.adapters) | set(processes_with(token_entry(run.token))))
            self._signal_run(run, signal.SIGTERM)
            run.phase, run.kill_at = "term", time.monotonic() + self.options.grace

    def _check_run(self, now: float) -> None:
        run = self.run
        assert run is not None
        if run.exit_code is None:
            code = run.popen.poll()
            if code is not None:
                run.exit_code, run.ended, run.ended_at = code, now, time.time()
                if run.phase == "alive":  # it ended by itself: stop what it left in its session
                    self._signal_run(run, signal.SIGTERM)
                    run.phase, run.kill_at = "term", now + self.options.grace
        if run.phase == "alive":
            if run.gate is not None and run.gate.taken():
                run.gate = None
            if now >= self.next_poll:
                self._poll_debugger(run, now)
            return
        members = self._members(run)
        if run.exit_code is not None and not members:
            self._finish(run)
        elif run.phase == "term" and now >= run.kill_at:
            self._signal_run(run, signal.SIGKILL)
            run.phase, run.kill_at = "kill", now + 5.0
        elif run.phase == "kill" and now >= run.kill_at and not run.warned_stuck:
            run.warned_stuck = True
            self.say(f"processes {members} of {self.launch.name} survive SIGKILL (stuck in the kernel?); waiting")

    def _poll_debugger(self, run: Run, now: float) -> None:
        """Listening yet? A client attached? From the TCP table: our uid, local port = the debug port."""
        self.next_poll = now + (0.5 if run.up is not None else 0.05)
        self._read_breakpoint(run)
        mine = [s for s in ls.tcp_sockets() if s.port == self.options.port and s.uid == os.getuid()]
        listening = {s.inode for s in mine if s.state == "LISTEN"}
        run.clients = sum(s.state == "ESTABLISHED" for s in mine)
        if listening and run.up is None:
            run.up = now
        if listening and not run.listening:
            run.listening = True
            self.debugpy_missing = False
            entry = token_entry(run.token)
            run.adapters = [pid for pid in ls.socket_owners(listening) if ls.environ_has(pid, entry)]
        if listening or not run.listening:
            run.unheard_since = None
        elif run.unheard_since is None:
            run.unheard_since = now
        # A run that ends closes its debugger first: only one still alive a while later (this is
        # asked only while it is) lost it.
        elif not run.debugger_gone and now - run.unheard_since >= DEBUGGER_GONE_S:
            run.debugger_gone = True
            self.say(
                f"the run's debugger stopped listening on port {self.options.port} (debugpy's adapter is gone); "
                "the run goes on without one; a restart brings it back"
            )
        if run.debugger_gone:
            self.status = "running"  # not "attached" for good: nobody can be
        elif run.clients:
            run.ever_attached = True
            run.waiting_at = None
            self.status = "attached"
        elif run.waiting_at:
            self.status = "waiting_for_debugger"
        elif listening or self.options.mode == "off":
            waiting = self.options.mode == "wait" and not run.ever_attached
            self.status = "waiting_for_debugger" if waiting else "running"
        timeout = self.options.wait_timeout
        since = run.up if run.up is not None else run.started  # the user gets S s to attach once it listens
        if self.options.mode == "wait" and timeout > 0 and not run.ever_attached and now - since >= timeout:
            self.start_at = None
            self._stop(f"no debugger attached within {timeout:g} s")

    def _finish(self, run: Run) -> None:
        """The debuggee and everything in its session are gone."""
        for _ in range(64):  # what is left in the pipe (bounded: a setsid'd grandchild may still write)
            if not self._read_output(run):
                break
        if run.fd >= 0:
            self.sel.unregister(run.fd)
            os.close(run.fd)
        if run.gate is not None:
            run.gate.close_gate()
        code = run.exit_code if run.exit_code is not None else -9
        # How long the program itself ran: from debugpy's listening (seen here) on, since debugpy
        # alone takes a second or two to start; one that never got that far counts as quick.
        lifetime = run.ended - (run.up if run.up is not None else run.started)
        if run.up is None and self.options.mode != "off" and lifetime < NEVER_UP_QUICK_S:
            lifetime = 0.0
        if lifetime >= QUICK_EXIT_S:
            self.quick_exits = 0
        elif run.stop_reason is None:
            self.quick_exits += 1
        if run.stop_reason is not None:
            status, reason = "stopped", run.stop_reason
        else:
            status, reason = ("exited" if code == 0 else "crashed"), f"{self.launch.name} {describe_exit(code)}"
            if code and any("No module named debugpy" in line for line in list(self.tail)[-5:]):
                self.debugpy_missing = True
                reason += (
                    f" (debugpy is not installed for {self.python}: let Tether copy its own "
                    f"(command palette: Make debugpy available), or {self.debugpy_fix()})"
                )
        self.last = {
            "pid": run.popen.pid,
            "pgid": run.popen.pid,
            "token": run.token,
            "exit_code": code,
            "exit_signal": signal_name(code),
            "exit_reason": reason,
            "started_at": run.started_at,
            "ended_at": run.ended_at or time.time(),
        }
        self.run = None
        if self.quitting:
            self.status = "stopped"
        elif self.start_at is not None:
            self.status = "starting"
            if run.stop_reason is None:  # a restart asked for while it was ending by itself
                self.backoff_s = backoff_delay(self.quick_exits)
                self.start_at = max(self.start_at, time.monotonic() + self.backoff_s)
        else:
            self.status = status
            if run.stop_reason is None:
                self.say(f"{reason} — {_EXIT_HINT}")
            elif reason.startswith("no debugger"):
                self.say(f"{reason}: stopped {self.launch.name} — {_EXIT_HINT}")
            else:
                self.say(f"{self.launch.name} stopped ({reason}) — {_EXIT_HINT}")

    # ---------------------------------------------------------------- commands
    def _take_options(self) -> None:
        """The [debug] options tether.toml asks for now (``loopstate.read_options``, written by the
        agent), taken at a start: a mode changed while this run went on applies from here, and no
        run is stopped for it. A mode the command cannot run in is said once and left."""
        wanted = ls.read_options(self.dir)
        standby = bool(wanted.get("standby", self.options.standby))
        if standby != self.options.standby:
            self.options = dataclasses.replace(self.options, standby=standby)
            if not standby:
                self._drop_standby()
        mode = wanted.get("mode", self.options.mode)
        wait_timeout = float(wanted.get("wait_timeout", self.options.wait_timeout))
        if mode not in MODES or (mode, wait_timeout) == (self.options.mode, self.options.wait_timeout):
            return
        options = dataclasses.replace(self.options, mode=mode, wait_timeout=wait_timeout)
        try:
            launch = launch_for(options)
        except CommandError as exc:
            if self.refused_mode != mode:
                self.refused_mode = mode
                self.say(
                    f"debug mode {mode} (tether.toml) cannot run this command, staying in mode "
                    f"{self.options.mode}: {exc}"
                )
            return
        changed = mode != self.options.mode
        self.options, self.launch, self.refused_mode = options, launch, None
        self.python = _run_python(options, launch)
        if changed:
            self.say(f"debug mode {mode} (tether.toml)")

    def restart(self, why: str, now: float, after: float = 0.0) -> None:
        if self.quitting:
            return
        self._take_options()
        self.backoff_s = backoff_delay(self.quick_exits)
        start_at = max(now + self.backoff_s, self.last_start + MIN_START_INTERVAL_S, after)
        if self.start_at is None:
            if self.backoff_s:
                self.say(
                    f"restarting {self.launch.name} in {self.backoff_s:g} s ({why}; it ended within "
                    f"{QUICK_EXIT_S:g} s {self.quick_exits} time(s) in a row)"
                )
            else:
                self.say(f"restarting {self.launch.name} ({why})")
            self.start_at = start_at
        else:
            self.start_at = max(self.start_at, after)
        self.status = "starting"
        self._stop(why)

    def stop(self, why: str) -> None:
        if self.start_at is not None and self.run is None:
            self.status = "stopped"
            self.last = dict(self.last, exit_reason=why)
        self.start_at = None
        if self.run is not None and self.run.exit_code is None:
            self.run.stop_reason = why
        self._stop(why)

    def quit(self, why: str) -> None:
        if self.quitting:
            return
        self.say(f"leaving the loop ({why})")
        self.quitting = True
        self._drop_standby()
        if self.run is None and self.start_at is not None:  # between two runs
            self.status, self.last = "stopped", dict(self.last, exit_reason=why)
        self.start_at = None
        self._stop(why)

    def _on_signal(self, signum: int, now: float) -> None:
        if signum in (signal.SIGINT, signal.SIGTSTP, signal.SIGQUIT):
            self.pane_at_line_start = False  # the terminal echoed ^C (^Z, ^\\): start a new line
        if signum == signal.SIGINT:
            if self.quitting and self.run is not None:
                self._signal_run(self.run, signal.SIGKILL)  # asked again: do not wait for the grace period
            elif now - self.last_sigint <= DOUBLE_CTRL_C_S:
                self.quit("Ctrl-C twice")
            else:
                self.restart("Ctrl-C; press it again within 1 s to leave", now, after=now + DOUBLE_CTRL_C_S)
            self.last_sigint = now
        elif signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            self.quit(signal.Signals(signum).name)
        elif signum == signal.SIGTSTP:
            self.say("Ctrl-Z does nothing here: Ctrl-C restarts, Ctrl-C twice leaves")

    def control(self, command: str) -> dict[str, Any]:
        now = time.monotonic()
        if command == "restart":
            self.restart("restart from Tether", now)
        elif command == "stop":
            self.stop("stopped from Tether")
        elif command == "quit":
            self.quit("quit from Tether")
        elif command != "status":
            return {"ok": False, "error": f"unknown command {command!r}; known: {', '.join(ls.COMMANDS)}"}
        return {"ok": True, **self.state()}

    # ---------------------------------------------------------------- control socket
    def _open_control(self, previous: dict[str, Any] | None) -> socket.socket:
        """Claim the directory: refuse when a loop still answers there or still writes the state."""
        path = self.dir / ls.CONTROL_NAME
        try:
            owner = ls.send_control(self.dir, "status", timeout=2.0).get("loop_pid")
        except ls.LoopError:  # nothing answers: no socket, or a stale one
            owner = previous.get("loop_pid") if previous and previous.get("loop_alive") else None
        if owner is not None:
            raise ls.LoopError(
                f"another debug loop (pid {owner}) runs in {self.dir}: leave it first "
                "(Ctrl-C twice in its pane, or quit from Tether)"
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            with ls.unix_address(path) as address:
                server.bind(address)
        finally:
            os.umask(old_umask)
        server.listen(8)
        server.setblocking(False)
        self.sel.register(server, selectors.EVENT_READ, lambda _key: self._accept(server))
        return server

    def _accept(self, server: socket.socket) -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid not in (os.getuid(), 0):
            conn.close()
            return
        conn.settimeout(2.0)  # a client sends its line at once; a stuck one costs at most this
        try:
            data = b""
            while b"\n" not in data and len(data) < 1024:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
            reply = self.control(data.split(b"\n")[0].decode(errors="replace").strip())
            conn.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            pass
        finally:
            conn.close()

    # ---------------------------------------------------------------- main loop
    def _cleanup_previous(self, old: dict[str, Any] | None) -> None:
        """Stop what a killed loop left here: processes of its last run's session, recognised by
        token, and its standby's (the kernel ended the standby with the loop; its adapter may stay)."""
        if old and isinstance(old.get("standby_token"), str):
            kill_now(processes_with(token_entry(old["standby_token"])))
        if not old or not isinstance(old.get("pgid"), int) or not isinstance(old.get("token"), str):
            return
        entry = token_entry(old["token"])
        leftovers = [pid for pid in ls.session_members(old["pgid"]) if ls.environ_has(pid, entry)]
        if not leftovers:
            return
        self.say(f"stopping {len(leftovers)} process(es) left by the previous loop's run: {leftovers}")
        deadline = time.monotonic() + self.options.grace
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in leftovers:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            while time.monotonic() < deadline:
                leftovers = [pid for pid in leftovers if pid in ls.session_members(old["pgid"])]
                if not leftovers:
                    return
                time.sleep(0.05)
            deadline = time.monotonic() + 2.0

    def serve(self) -> int:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGTSTP):
            signal.signal(sig, _noop)
        self.sel.register(wake_r, selectors.EVENT_READ, None)
        try:
            previous = ls.read_state(self.options.state)
        except ls.LoopError:
            previous = None  # garbled: it is replaced below
        server = self._open_control(previous)
        self._cleanup_previous(previous)
        self._take_options()  # started again by hand after tether.toml's mode changed
        self.start_at = time.monotonic()
        try:
            while not self.done:
                now = time.monotonic()
                timeout = TICK_S if self.run is None or self.run.up is not None else 0.05
                if self.start_at is not None:
                    timeout = min(timeout, max(0.05, self.start_at - now))
                    if self.run is not None and self.run.phase != "alive" or self.run is None and now >= self.start_at:
                        timeout = HANDOVER_TICK_S
                for key, _mask in self.sel.select(timeout):
                    if key.data is None:
                        try:
                            signums = wake_r.recv(256)
                        except BlockingIOError:
                            signums = b""
                        for signum in signums:
                            self._on_signal(signum, time.monotonic())
                    else:
                        key.data(key)
                now = time.monotonic()
                if self.run is not None:
                    self._check_run(now)
                self._keep_standby(now)
                if self.run is None:
                    if self.quitting:
                        self.done = True
                    elif self.start_at is not None and now >= self.start_at and self._port_ready(now):
                        self._start()
                self._save()
            self.say("left the loop")
        finally:
            if self.run is not None:  # an unexpected error: never leave the debuggee behind
                self._signal_run(self.run, signal.SIGKILL)
            self._drop_standby()
            self.done = True
            self._save()
            signal.set_wakeup_fd(-1)
            server.close()
            with contextlib.suppress(OSError):
                (self.dir / ls.CONTROL_NAME).unlink()
        return 0


def launch_for(options: Options) -> Launch:
    """What a start runs: the command under (guarded) debugpy in the options' mode, after the prefix."""
    launch = build_launch(options.command, options.mode, options.port, options.python)
    return Launch((*options.prefix, *launch.argv), launch.name) if options.prefix else launch


def _run_python(options: Options, launch: Launch) -> str:
    return launch.argv[len(options.prefix)] if len(launch.argv) > len(options.prefix) else launch.argv[0]


def parse_args(argv: list[str]) -> Options:
    if "--" not in argv:
        raise CommandError("give the command after --, e.g. -- python train.py --lr 3")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m tui.node.loop", description="Tether's debug loop")
    parser.add_argument("--state", required=True, type=Path, help="state file; the loop owns its directory")
    parser.add_argument("--port", required=True, type=int, help="debug port on 127.0.0.1")
    parser.add_argument("--mode", choices=MODES, default="attach")
    parser.add_argument("--wait-timeout", type=float, default=0.0, help="mode wait: stop after S s without a debugger")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--python", default=sys.executable, help="interpreter for a command given as script.py ...")
    parser.add_argument(
        "--prefix", default="", help="words put before the launch (a container: 'apptainer exec img.sif')"
    )
    parser.add_argument(
        "--debugpy-dir",
        type=Path,
        default=None,
        help="folder with Tether's copy of debugpy, put on the run's path when its python has none",
    )
    parser.add_argument(
        "--provide-debugpy",
        choices=("auto", "ask", "never"),
        default="auto",
        help="never: stop with the fix when the run's python has no debugpy (else wait for Tether's copy)",
    )
    parser.add_argument(
        "--no-standby", action="store_true", help="start each run only when it is due ([debug] standby = false)"
    )
    args = parser.parse_args(argv[:split])
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a TCP port (1-65535)")
    if args.grace < 0 or args.wait_timeout < 0:
        parser.error("--grace and --wait-timeout take seconds >= 0")
    command = tuple(argv[split + 1 :])
    return Options(
        args.state.absolute(),
        args.port,
        command,
        args.mode,
        args.wait_timeout,
        args.grace,
        args.python,
        tuple(shlex.split(args.prefix)),
        args.debugpy_dir,
        args.provide_debugpy,
        not args.no_standby,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
        launch = launch_for(options)
        if options.prefix:
            if shutil.which(options.prefix[0]) is None:
                raise CommandError(f"the prefix's {options.prefix[0]!r} is not found on PATH (or not executable)")
        elif shutil.which(launch.argv[0]) is None:
            raise CommandError(f"{launch.argv[0]!r} is not found on PATH (or not executable)")
        options.state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Supervisor(options, launch).serve()
    except CommandError as exc:
        print(f"tether loop: {exc}", file=sys.stderr)
        if "options" in locals() and not ls.control_path(options.state).exists():  # tell the agent too
            with contextlib.suppress(OSError):
                options.state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                refused = {
                    "schema": ls.SCHEMA,
                    "status": "stopped",
                    "loop_running": False,
                    "port": options.port,
                    "mode": options.mode,
                    "command": list(options.command),
                    "exit_reason": str(exc),
                    "updated_at": time.time(),
                }
                ls.write_state(options.state, refused)
        return 2
    except ls.LoopError as exc:
        print(f"tether loop: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

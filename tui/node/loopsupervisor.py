"""The debug loop's policy (see ``tui.node.loop`` for what the user sees): when the run starts and
restarts (Ctrl-C, the control socket's commands, crash backoff, the next run started ahead), what
its status is from what its debugger does, and the state file that says so.

The pieces it drives: ``looptee`` (the output), ``looprun`` (the run's process group),
``loopdebugger`` (the debug port, breakpoint(), debugpy's presence), ``loopcontrol`` (the control
socket), ``standby`` (the next run) and ``pyhook`` (the files on the run's path).

Stdlib only (shipped to the node); Linux only (/proc).
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import signal
import socket
import time
import uuid
from types import FrameType

from tui.node import loopstate as ls
from tui.node.loopcmd import HOST, CommandError, Launch
from tui.node.loopcontrol import ControlSocket
from tui.node.loopdebugger import DebuggerProbe, DebugpyCheck, adapters_holding
from tui.node.loopoptions import MODES, Options, launch_for, run_env, run_python
from tui.node.looprun import LastRun, Phase, Run, Settled, describe_exit, pdeathsig, stop_leftovers
from tui.node.looptee import OutputTee
from tui.node.protocol_loop import COMMANDS, SCHEMA, LoopReply, LoopState, LoopStatus
from tui.node.pyhook import install_hook
from tui.node.standby import Standby

QUICK_EXIT_S = 2.0  # a run that ends sooner than this counts towards the backoff
NEVER_UP_QUICK_S = 30.0  # ... and so does one that ends before debugpy listens, within this
MIN_START_INTERVAL_S = 1.0
DOUBLE_CTRL_C_S = 1.0
MAX_BACKOFF_S = 30.0
TICK_S = 0.2
HANDOVER_TICK_S = 0.005  # while a restart waits for the old run to go: its adapter ends unannounced
STANDBY_AFTER_S = 0.2  # the standby starts this long after the run listens (not competing with its start)
STANDBY_TRIES = 3  # standbys that die before their go: after these, restarts start from scratch
_EXIT_HINT = "press Ctrl-C or r in Tether to restart, Ctrl-C twice to leave"


def backoff_delay(quick_exits: int) -> float:
    """Seconds to wait before the next start after ``quick_exits`` quick endings in a row."""
    return 0.0 if quick_exits <= 0 else min(MAX_BACKOFF_S, 2.0 ** (quick_exits - 1))


def _noop(signum: int, frame: FrameType | None) -> None:
    """Python-level handler; the wakeup fd carries the signal to the main loop."""


class Supervisor:
    def __init__(self, options: Options, launch: Launch, out_fd: int = 1) -> None:
        self.options = options
        self.launch = launch
        self.dir = options.state.parent
        self.tee = OutputTee(self.dir, out_fd)
        self.sel = selectors.DefaultSelector()
        self.run: Run | None = None
        self.status = LoopStatus.STARTING
        self.restarts = -1  # the first start makes it 0
        self.quick_exits = 0
        self.last = LastRun()
        self.start_at: float | None = None  # monotonic time of the next start; None: wait for a command
        self.backoff_s = 0.0
        self.last_start = -1e9
        self.last_sigint = -1e9
        self.quitting = False
        self.done = False
        self.next_poll = 0.0
        self.written: dict[str, object] | None = None
        self.preexec = pdeathsig()
        self.python = run_python(options, launch)
        self.refused_mode: str | None = None  # a mode from tether.toml this command cannot run in (said once)
        self.hook_dir = install_hook(self.dir)
        self.probe = DebuggerProbe(self.dir, options.port, self.say)
        self.debugpy = DebugpyCheck(options.debugpy_dir, self.say)
        self.standby: Standby | None = None
        self.standby_failures = 0

    def say(self, text: str) -> None:
        """A line of the loop's own in the pane, the log and the tail."""
        self.tee.say(text)

    # ---------------------------------------------------------------- state
    def state(self, into: LoopState | None = None) -> LoopState:
        """What the state file says now (added to ``into``: a control reply)."""
        run = self.run
        now_wall, now = time.time(), time.monotonic()
        state: LoopState = {} if into is None else into
        state.update(
            {
                "schema": SCHEMA,
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
                "debugpy_missing": self.debugpy.missing,
                "debugpy_from_tether": bool(self.debugpy.use_folder),
                "waiting_at": run.debugger.waiting_at if run is not None else None,
                "pdb": run.debugger.pdb if run is not None and run.debugger.waiting_at else "",
                "standby_pid": self.standby.popen.pid if self.standby is not None else None,
                "standby_token": self.standby.token if self.standby is not None else None,
            }
        )
        if self.debugpy.missing:
            state["fix"] = self.debugpy_fix()
        state.update(run.state_fields() if run is not None else self.last.state_fields())
        return state

    def _save(self) -> None:
        state = self.state()
        comparable = {k: v for k, v in state.items() if k != "next_start_at"}
        changed = comparable != self.written
        if changed:
            state["updated_at"] = time.time()
            ls.write_state(self.options.state, state)
            self.written = comparable
        self.tee.write_tail(time.monotonic(), at_once=changed or self.done)

    # ---------------------------------------------------------------- the debuggee
    def _start(self) -> None:
        self.start_at = None
        self.tee.rotate_log()
        token = uuid.uuid4().hex
        env = self._run_env(token)
        if self.options.mode != "off" and self.debugpy.missing:
            self._hold_for_debugpy()
            return
        self.restarts += 1
        self.last_start = time.monotonic()
        said = ("starting " if self.restarts == 0 else f"restart {self.restarts}: ") + " ".join(self.launch.argv)
        standby, self.standby = self.standby, None
        if standby is not None and standby.alive() and standby.fits(self.launch.argv, env):
            self.say(said + " (started ahead)")
            self._adopt(Run.take_over(standby))
            return
        if standby is not None:
            standby.drop()  # the command or its environment changed since: it would run the old one
        self.say(said)
        try:
            run = Run.start(self.launch.argv, env, token, self.preexec)
        except OSError as exc:
            self.quick_exits += 1
            self.backoff_s = 0.0
            self.status = LoopStatus.CRASHED
            reason = f"could not start {self.launch.argv[0]}: {exc.strerror}"
            self.last = LastRun(None, None, 127, reason, time.time(), time.time())
            self.say(f"{reason} — fix the command, then {_EXIT_HINT}")
            return
        self._adopt(run)

    def _adopt(self, run: Run) -> None:
        if self.options.mode == "off":
            run.debugger.up = run.started
        self.sel.register(run.fd, selectors.EVENT_READ, lambda _key: run.read_output(self.tee.output, self.sel))
        self.run = run
        self.status = LoopStatus.RUNNING if self.options.mode == "off" else LoopStatus.STARTING
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
        up = run.debugger.up if run is not None and run.phase is Phase.ALIVE else None
        wanted = (
            self.options.standby
            and self.options.mode != "off"
            and self.hook_dir is not None  # the guard that holds the standby's port
            and not self.quitting
            and self.standby_failures < STANDBY_TRIES
            and up is not None
            and now - up >= STANDBY_AFTER_S
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

    def _run_env(self, token: str) -> dict[str, str]:
        debugging = self.options.mode != "off"
        return run_env(
            self.options,
            token,
            self.hook_dir,
            lambda env: self.debugpy.folder_needed(self.options.prefix, self.python, env, debugging),
        )

    def debugpy_fix(self) -> str:
        """The command that installs debugpy for the run's python and works there."""
        return self.debugpy.fix(self.options.prefix, self.python)

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
            self.status = LoopStatus.STOPPED
            self.last = LastRun(exit_reason=reason, started_at=time.time(), ended_at=time.time())
        else:
            reason = f"{self.python} has no debugpy: waiting for Tether's copy"
            self.status = LoopStatus.STARTING
        self.say(reason)

    def _stop(self, reason: str) -> None:
        if self.run is not None:
            self.run.stop(reason, self.options.grace)

    def _check_run(self, now: float) -> None:
        run = self.run
        assert run is not None
        run.poll_exit(now, self.options.grace)
        if run.phase is Phase.ALIVE:
            if run.gate is not None and run.gate.taken():
                run.gate = None
            if now >= self.next_poll:
                self._poll_debugger(run, now)
            return
        settled, members = run.settle(now)
        if settled is Settled.GONE:
            self._finish(run)
        elif settled is Settled.STUCK:
            self.say(f"processes {members} of {self.launch.name} survive SIGKILL (stuck in the kernel?); waiting")

    def _poll_debugger(self, run: Run, now: float) -> None:
        """Listening yet? A client attached? The status that follows, and mode wait's timeout."""
        seen = run.debugger
        self.next_poll = now + (0.5 if seen.up is not None else 0.05)
        first = not seen.listening
        listening = self.probe.hear(seen, run.token, now)
        if listening and first:
            self.debugpy.missing = False
            run.adapters = adapters_holding(listening, run.token)
        if seen.gone:
            self.status = LoopStatus.RUNNING  # not "attached" for good: nobody can be
        elif seen.clients:
            seen.ever_attached = True
            seen.waiting_at = None
            self.status = LoopStatus.ATTACHED
        elif seen.waiting_at:
            self.status = LoopStatus.WAITING_FOR_DEBUGGER
        elif listening or self.options.mode == "off":
            waiting = self.options.mode == "wait" and not seen.ever_attached
            self.status = LoopStatus.WAITING_FOR_DEBUGGER if waiting else LoopStatus.RUNNING
        timeout = self.options.wait_timeout
        since = seen.up if seen.up is not None else run.started  # the user gets S s to attach once it listens
        if self.options.mode == "wait" and timeout > 0 and not seen.ever_attached and now - since >= timeout:
            self.start_at = None
            self._stop(f"no debugger attached within {timeout:g} s")

    def _finish(self, run: Run) -> None:
        """The debuggee and everything in its session are gone."""
        for _ in range(64):  # what is left in the pipe (bounded: a setsid'd grandchild may still write)
            if not run.read_output(self.tee.output, self.sel):
                break
        run.close_output(self.sel)
        if run.gate is not None:
            run.gate.close_gate()
        code = run.exit_code if run.exit_code is not None else -9
        # How long the program itself ran: from debugpy's listening (seen here) on, since debugpy
        # alone takes a second or two to start; one that never got that far counts as quick.
        up = run.debugger.up
        lifetime = run.ended - (up if up is not None else run.started)
        if up is None and self.options.mode != "off" and lifetime < NEVER_UP_QUICK_S:
            lifetime = 0.0
        if lifetime >= QUICK_EXIT_S:
            self.quick_exits = 0
        elif run.stop_reason is None:
            self.quick_exits += 1
        if run.stop_reason is not None:
            status, reason = LoopStatus.STOPPED, run.stop_reason
        else:
            status = LoopStatus.EXITED if code == 0 else LoopStatus.CRASHED
            reason = f"{self.launch.name} {describe_exit(code)}"
            if code and any("No module named debugpy" in line for line in self.tee.recent(5)):
                self.debugpy.missing = True
                reason += (
                    f" (debugpy is not installed for {self.python}: let Tether copy its own "
                    f"(command palette: Make debugpy available), or {self.debugpy_fix()})"
                )
        self.last = LastRun(run.popen.pid, run.token, code, reason, run.started_at, run.ended_at or time.time())
        self.run = None
        if self.quitting:
            self.status = LoopStatus.STOPPED
        elif self.start_at is not None:
            self.status = LoopStatus.STARTING
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
        self.python = run_python(options, launch)
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
        self.status = LoopStatus.STARTING
        self._stop(why)

    def stop(self, why: str) -> None:
        if self.start_at is not None and self.run is None:
            self.status = LoopStatus.STOPPED
            self.last = dataclasses.replace(self.last, exit_reason=why)
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
            self.status, self.last = LoopStatus.STOPPED, dataclasses.replace(self.last, exit_reason=why)
        self.start_at = None
        self._stop(why)

    def _on_signal(self, signum: int, now: float) -> None:
        if signum in (signal.SIGINT, signal.SIGTSTP, signal.SIGQUIT):
            self.tee.pane_at_line_start = False  # the terminal echoed ^C (^Z, ^\\): start a new line
        if signum == signal.SIGINT:
            if self.quitting and self.run is not None:
                self.run.signal(signal.SIGKILL)  # asked again: do not wait for the grace period
            elif now - self.last_sigint <= DOUBLE_CTRL_C_S:
                self.quit("Ctrl-C twice")
            else:
                self.restart("Ctrl-C; press it again within 1 s to leave", now, after=now + DOUBLE_CTRL_C_S)
            self.last_sigint = now
        elif signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            self.quit(signal.Signals(signum).name)
        elif signum == signal.SIGTSTP:
            self.say("Ctrl-Z does nothing here: Ctrl-C restarts, Ctrl-C twice leaves")

    def control(self, command: str) -> LoopReply:
        now = time.monotonic()
        if command == "restart":
            self.restart("restart from Tether", now)
        elif command == "stop":
            self.stop("stopped from Tether")
        elif command == "quit":
            self.quit("quit from Tether")
        elif command != "status":
            return {"ok": False, "error": f"unknown command {command!r}; known: {', '.join(COMMANDS)}"}
        reply: LoopReply = {"ok": True}
        self.state(into=reply)
        return reply

    # ---------------------------------------------------------------- main loop
    def _port_ready(self, now: float) -> bool:
        return self.probe.port_ready(now, self.last.token, debugging=self.options.mode != "off")

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
        control = ControlSocket.claim(self.dir, previous, self.sel, self.control)
        stop_leftovers(previous, self.options.grace, self.say)
        self._take_options()  # started again by hand after tether.toml's mode changed
        self.start_at = time.monotonic()
        try:
            while not self.done:
                now = time.monotonic()
                run = self.run
                timeout = TICK_S if run is None or run.debugger.up is not None else 0.05
                if self.start_at is not None:
                    timeout = min(timeout, max(0.05, self.start_at - now))
                    if run is not None and run.phase is not Phase.ALIVE or run is None and now >= self.start_at:
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
                self.run.signal(signal.SIGKILL)
            self._drop_standby()
            self.done = True
            self._save()
            signal.set_wakeup_fd(-1)
            control.close()
        return 0

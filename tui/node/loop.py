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

State file (JSON): ``protocol_loop.LoopState`` (its status a ``protocol_loop.LoopStatus``).

This module is the command line; the loop itself is ``loopsupervisor.Supervisor`` and the rooms it
drives (``looptee``, ``looprun``, ``loopdebugger``, ``loopcontrol``).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import shutil
import sys
import time
from pathlib import Path

from tui.node import loopstate as ls
from tui.node.loopcmd import CommandError
from tui.node.loopoptions import MODES, Options, launch_for
from tui.node.loopsupervisor import Supervisor
from tui.node.protocol_loop import SCHEMA, LoopState, LoopStatus


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
                refused: LoopState = {
                    "schema": SCHEMA,
                    "status": LoopStatus.STOPPED,
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

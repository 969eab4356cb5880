"""The `tether` command: init, up, attach, down, doctor, status, sync, pull, demo.

Every command that reads tether.toml validates it first: a bad file prints every problem and exits
2 before anything else happens. Errors meant for the user print their fix and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tui import __version__
from tui.bringup import BringUpClock
from tui.config import ConfigError, Workspace, find_config, load_workspace
from tui.errors import TetherError
from tui.state import ConsoleLock, StateStore, UiPrefs, workspace_id


def _load(args: argparse.Namespace) -> Workspace:
    path = Path(args.config) if args.config else find_config(Path.cwd())
    return load_workspace(path)


def _print_event(event: object) -> None:
    message = getattr(event, "message", None)
    if message:
        print(message, file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    from tui.init import InitAnswers, ask_answers, write_config

    target = Path(args.config or "tether.toml")
    interactive = not args.yes and sys.stdin.isatty()
    defaults = InitAnswers.defaults_for(target.resolve().parent)
    overrides = {k: v for k, v in vars(args).items() if k in InitAnswers.flag_names() and v is not None}
    answers = ask_answers(defaults.with_overrides(overrides)) if interactive else defaults.with_overrides(overrides)
    write_config(target, answers, force=args.force)
    print(f"wrote {target}: check it, then `tether doctor` and `tether up`")
    return 0


def _clock(args: argparse.Namespace) -> BringUpClock | None:
    return BringUpClock(args.started) if args.verbose else None


def _run_console(
    workspace: Workspace,
    *,
    theme: str | None,
    attach: bool = False,
    demo: bool = False,
    clock: BringUpClock | None = None,
) -> int:
    # Refused before logging in: two consoles on one workspace would fight over its sync and run.
    with ConsoleLock(workspace_id(workspace.config_path)):
        code = _console(workspace, theme=theme, attach=attach, demo=demo, clock=clock)
    if clock is not None:
        print("bring-up stages (seconds since the command started):", file=sys.stderr)
        for line in clock.lines():
            print("  " + line, file=sys.stderr)
    return code


def _console(workspace: Workspace, *, theme: str | None, attach: bool, demo: bool, clock: BringUpClock | None) -> int:
    from tui.app import TetherApp
    from tui.session import Session

    session = Session(workspace, may_submit=not attach, clock=clock)
    asyncio.run(session.prepare())
    app = TetherApp(
        session,
        theme_name=theme or workspace.ui.theme or None,
        prefs=UiPrefs(),
        keys=workspace.ui.keys,
        terminal_alert=workspace.ui.terminal_alert,
        metrics=workspace.ui.metrics,
        long_lines=workspace.ui.long_lines,
    )
    result = app.run()
    if result == "detached" and demo:
        print("The demo is over: its run, its cluster and every file it made are being removed.")
    elif result == "detached":
        print(session.detach_message)
    elif result == "down":
        print("stopped: " + ", ".join(app.stopped) if app.stopped else "nothing was running")
    return app.return_code or 0


def cmd_up(args: argparse.Namespace) -> int:
    return _run_console(_load(args), theme=args.theme, clock=_clock(args))


def cmd_attach(args: argparse.Namespace) -> int:
    workspace = _load(args)
    # A direct node needs no record (attaching from another laptop works); a scheduled one does,
    # or attach would quietly allocate a new job.
    if workspace.scheduler.kind != "direct" and StateStore().load(workspace_id(workspace.config_path)) is None:
        raise TetherError(f"no session of {workspace.name} is known on this laptop", fix="start one with `tether up`")
    return _run_console(workspace, theme=args.theme, attach=True, clock=_clock(args))


def cmd_down(args: argparse.Namespace) -> int:
    from tui.session import Session

    workspace = _load(args)
    stopped = asyncio.run(Session(workspace).down())
    print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from tui.doctor import run_doctor

    workspace = _load(args)
    ok = asyncio.run(run_doctor(workspace, lambda check: print(check.render(), flush=True)))
    print("all checks passed" if ok else "some checks failed: see the fixes above")
    return 0 if ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from tui.sync.status import read_status

    workspace = _load(args)
    ws_id = workspace_id(workspace.config_path)
    record = StateStore().load(ws_id)
    sync = read_status(ws_id)
    status = {
        "workspace": workspace.name,
        "config": str(workspace.config_path),
        "session": None
        if record is None
        else {"login": record.login, "node": record.node, "scheduler": record.scheduler, "job_id": record.job_id},
        "sync": sync,
    }
    if args.json:
        print(json.dumps(status))
        return 0
    if record is None:
        print(f"{workspace.name}: no session (`tether up` starts one)")
    else:
        print(f"{workspace.name}: session on {record.node or record.login} ({record.scheduler})")
    if sync is not None:
        print(f"sync: {sync['state']}" + ("" if sync["running"] else " (last known; no sync runs now)"))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from tui.sync_cli import ProgressPrinter, run_sync

    workspace = _load(args)
    printer = ProgressPrinter(sys.stderr)

    def ready(engine: object) -> None:
        if args.watch:
            print(f"watching {workspace.local_root} (ctrl-c to stop)", file=sys.stderr, flush=True)
        else:
            print(f"{workspace.name}: the node is up to date", file=sys.stderr, flush=True)

    return asyncio.run(
        run_sync(
            workspace,
            watch=args.watch,
            allow_deletes=args.allow_deletes,
            sink=printer,
            on_ready=ready,
            keep_theirs=args.keep_theirs,
        )
    )


def cmd_pull(args: argparse.Namespace) -> int:
    from tui.sync_cli import ProgressPrinter, pull

    workspace = _load(args)
    asyncio.run(pull(workspace, args.path, ProgressPrinter(sys.stderr)))
    print(f"pulled {args.path} into {workspace.local_root}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tui.demo import demo_cluster
    from tui.session import Session

    with demo_cluster() as cluster:
        workspace = load_workspace(cluster.config_path)
        print(f"demo cluster up (sshd pid {cluster.sshd_pid}); project in {cluster.config_path.parent}", flush=True)
        try:
            return _run_console(workspace, theme=args.theme, demo=True, clock=_clock(args))
        finally:
            asyncio.run(Session(workspace).down())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether", description="A console for code that runs on a cluster node.")
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    parser.add_argument("-c", "--config", help="path to tether.toml (default: found in this folder or a parent)")
    # Not dest="command": init's answers are read from the parsed arguments by name, and its
    # `command` answer (the run command) must not pick up the subcommand's own name.
    commands = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    init = add("init", cmd_init, "write a commented tether.toml")
    init.add_argument("-y", "--yes", action="store_true", help="take the defaults without asking")
    init.add_argument("-f", "--force", action="store_true", help="overwrite an existing tether.toml")
    init.add_argument("--name")
    init.add_argument("--login", help="login host: an ssh_config alias or user@host[:port]")
    init.add_argument("--node", help="the node's host name (empty: the login host)")
    init.add_argument("--remote-root", dest="remote_root", help="where the code goes on the node, e.g. ~/work/NAME")
    init.add_argument("--command", dest="run_command", help="what to run, e.g. 'python train.py'")
    init.add_argument("--scheduler", choices=["direct", "slurm", "pbs", "kube"])
    for name, handler, text in (
        ("up", cmd_up, "connect, get the node and open the console"),
        ("attach", cmd_attach, "open the console on a session started earlier"),
        ("demo", cmd_demo, "try Tether on a throwaway local cluster (needs openssh-server)"),
    ):
        console = add(name, handler, text)
        console.add_argument("--theme", help="console theme (dark, light, ...)")
        console.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="time the bring-up's stages: in the console's log once the run's first line is shown, "
            "and on stderr when the console closes",
        )
    add("down", cmd_down, "stop the run, release the node, close the connections")
    add("doctor", cmd_doctor, "check every hop to the node and say how to fix what is broken")
    add("status", cmd_status, "show the workspace's session and sync state").add_argument("--json", action="store_true")
    sync = add("sync", cmd_sync, "copy the workspace to the node now (--watch: and keep it in sync)")
    sync.add_argument("--watch", action="store_true", help="keep watching and pushing changes until ctrl-c")
    sync.add_argument(
        "--allow-deletes",
        dest="allow_deletes",
        action="store_true",
        help="go on even when the push would delete more than delete_threshold of the node's files, "
        "or delete or replace files on the node that Tether did not write",
    )
    sync.add_argument(
        "--keep-theirs",
        dest="keep_theirs",
        action="store_true",
        help="move files on the node that Tether did not write, and that the sync would delete or "
        "replace, to .tether-backup/<date>/ in the remote root first",
    )
    pull = add("pull", cmd_pull, "bring a file or folder the run wrote on the node back to the laptop")
    pull.add_argument("path", help="relative to the workspace, e.g. outputs/ or outputs/model.pt")
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()  # `-v` counts the bring-up from here (the interpreter's own start is before)
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return ConfigError.exit_code
    except TetherError as exc:
        print(f"tether: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

"""`tether doctor`: walk laptop -> login -> scheduler -> node and say, for each broken link, how to fix it.

All node checks run in ONE remote command that prints ``key=value`` lines (a round trip costs on a
slow link); parsing that report is a pure function. The scheduler's checks live in
``tui.doctor_scheduler``; the doctor never takes a node: it checks the node of a job already held.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
import time

from tui.checks import Check, Report
from tui.config import Workspace
from tui.errors import TetherError
from tui.node.pyenv import PYTHON_ENV_PROBE, debugpy_install_fix
from tui.remote.agent_channel import environment_prelude, interpreter_probe
from tui.remote.pod import PodRoute
from tui.remote.scheduler.base import Allocation
from tui.remote.srun import SrunRoute, reach_node
from tui.remote.ssh import ControlMaster
from tui.route import Route

MIN_FREE_BYTES = 1 << 30


def local_rsync_check(version_output: str | None) -> Check:
    """rsync 3 is needed on the laptop; macOS ships rsync 2.6.9 or openrsync."""
    if version_output is None:
        return Check(
            "rsync (laptop)",
            False,
            "not found",
            "install rsync 3 (macOS: `brew install rsync`; Debian: `apt install rsync`)",
        )
    first = version_output.splitlines()[0] if version_output else ""
    if "openrsync" in version_output:
        return Check(
            "rsync (laptop)",
            False,
            f"openrsync found ({first.strip()})",
            "install rsync 3: `brew install rsync`, and put it first on PATH",
        )
    match = re.search(r"version\s+(\d+)\.(\d+)", first)
    if not match or int(match.group(1)) < 3:
        return Check(
            "rsync (laptop)",
            False,
            f"too old ({first.strip()})",
            "install rsync 3: `brew install rsync` (macOS ships 2.6.9)",
        )
    return Check("rsync (laptop)", True, first.strip())


def node_report_script(workspace: Workspace) -> str:
    """One remote command printing everything the doctor wants to know about the node."""
    run = workspace.run
    interpreter = shlex.quote(run.interpreter)
    remote_root = workspace.remote_root
    # The remote root may not exist yet: measure the nearest existing parent.
    root_expr = '"$HOME"' + shlex.quote(remote_root[1:]) if remote_root.startswith("~") else shlex.quote(remote_root)
    return "\n".join(
        [
            "echo host=$(hostname)",
            "echo tmux=$(command -v tmux || true)",
            "echo rsync=$(command -v rsync || true)",
            environment_prelude(tuple(run.env)),
            interpreter_probe(run.interpreter),
            'echo agent_python="$py"',
            'if [ -n "$py" ]; then echo agent_python_version=$("$py" -c "import sys; print(sys.version.split()[0])"); fi',
            f"echo run_python=$(command -v {interpreter} || true)",
            f"echo debugpy=$({interpreter} -c 'import debugpy; print(debugpy.__version__)' 2>/dev/null || true)",
            f"echo run_python_env=$({interpreter} -c {shlex.quote(PYTHON_ENV_PROBE)} 2>/dev/null || true)",
            f'p={root_expr}; while [ ! -e "$p" ]; do p=$(dirname "$p"); done',
            "echo disk_path=$p",
            "echo disk_free_kb=$(df -Pk \"$p\" | awk 'NR==2 {print $4}')",
        ]
    )


def _own_debugpy_needs() -> tuple[str, tuple[int, int] | None]:
    """The version of the debugpy Tether copies to nodes, and the oldest Python it runs on."""
    try:
        from importlib.metadata import PackageNotFoundError, metadata

        meta = metadata("debugpy")
    except (ImportError, PackageNotFoundError):
        return "", None
    fields = meta.json  # (a missing key reads as None here, where meta[key] will raise in later Pythons)
    match = re.search(r">=\s*(\d+)\.(\d+)", str(fields.get("requires_python") or ""))
    return str(fields.get("version") or ""), (int(match.group(1)), int(match.group(2))) if match else None


def debugpy_check(workspace: Workspace, values: dict[str, str]) -> Check:
    """debugpy for the run: the run's own, or Tether's copy as [debug] provide_debugpy allows."""
    python, run_python = workspace.run.interpreter, values.get("run_python", "")
    if values.get("debugpy"):
        return Check("debugpy", True, f"{values['debugpy']} importable by {run_python}")
    python_env = values.get("run_python_env", "")
    install = f"install it on the node (after your [run] env lines): {debugpy_install_fix(python, python_env)}"
    choice = workspace.debug.provide_debugpy
    missing = f"{run_python} cannot import debugpy"
    if choice == "never":
        return Check(
            "debugpy",
            False,
            f'{missing}, and [debug] provide_debugpy = "never"',
            f'set [debug] provide_debugpy = "auto" in tether.toml (Tether copies its own debugpy to the '
            f"node; no internet needed there), or {install}",
        )
    version, oldest = _own_debugpy_needs()
    found = re.match(r"(\d+)\.(\d+)", python_env)
    if oldest is not None and found is not None and (int(found.group(1)), int(found.group(2))) < oldest:
        return Check(
            "debugpy",
            False,
            f"{missing}, and Tether's own copy (debugpy {version}) needs Python >= {oldest[0]}.{oldest[1]}: "
            f"{run_python} is {found.group(0)}",
            f"set [run] interpreter to a newer python there, or {install}",
        )
    how = "copies" if choice == "auto" else "offers (in the console) to copy"
    return Check(
        "debugpy",
        True,
        f"{missing}: Tether {how} its own debugpy to the node when the run starts "
        f'([debug] provide_debugpy = "{choice}")',
    )


def parse_node_report(output: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            values[key] = value.strip()
    return values


def node_checks(workspace: Workspace, values: dict[str, str]) -> list[Check]:
    """Turn the node's report into checks, each failure with its fix."""
    host = values.get("host") or "the node"
    run = workspace.run
    checks: list[Check] = []
    if values.get("agent_python"):
        checks.append(
            Check(
                "python (agent)",
                True,
                f"{values['agent_python']} {values.get('agent_python_version', '')} on {host}".strip(),
            )
        )
    else:
        checks.append(
            Check(
                "python (agent)",
                False,
                f"no Python >= 3.10 on {host} (RHEL 8 ships 3.6, RHEL 9 3.9)",
                "set [run] interpreter to a newer python there (a conda env's, say), or add the env lines that provide one to [run] env",
            )
        )
    for tool, fix in (
        (
            "tmux",
            "install tmux on the node or load it in [run] env (e.g. `module load tmux`, or `conda install -c conda-forge tmux`)",
        ),
        ("rsync", "install rsync on the node, or ask the site's admins (sync needs it)"),
    ):
        found = values.get(tool, "")
        checks.append(Check(f"{tool} (node)", bool(found), found or f"not on PATH on {host}", "" if found else fix))
    if not values.get("run_python"):
        checks.append(
            Check(
                "run interpreter",
                False,
                f"{run.interpreter!r} not found on {host}",
                "fix [run] interpreter or the [run] env lines that provide it",
            )
        )
    else:
        checks.append(debugpy_check(workspace, values))
    free_kb = values.get("disk_free_kb", "")
    if free_kb.isdigit():
        free = int(free_kb) * 1024
        detail = f"{free / (1 << 30):.1f} GiB free at {values.get('disk_path', workspace.remote_root)}"
        checks.append(
            Check(
                "disk",
                free >= MIN_FREE_BYTES,
                detail,
                "" if free >= MIN_FREE_BYTES else "free some space or pick another remote_root (scratch)",
            )
        )
    else:
        checks.append(
            Check(
                "disk",
                False,
                "could not measure free space",
                f"check that {workspace.remote_root} is on a mounted filesystem",
            )
        )
    return checks


async def run_doctor(workspace: Workspace, report: Report) -> bool:
    """Run every check, reporting each as it completes; True when all passed."""
    results: list[Check] = []

    def emit(check: Check) -> None:
        results.append(check)
        report(check)

    emit(Check("config", True, f"{workspace.config_path} is valid"))
    rsync = shutil.which("rsync")
    version = subprocess.run([rsync, "--version"], capture_output=True, text=True).stdout if rsync else None
    emit(local_rsync_check(version))
    if workspace.scheduler.kube is not None:
        from tui.doctor_scheduler import kube_checks  # here: it builds on Check above

        # kubectl runs on this laptop: these need neither ssh nor the login host.
        checks = await kube_checks(workspace.scheduler.kube)
        for check in checks:
            emit(check)
        if all(check.ok for check in checks):
            route = Route(workspace)
            await _node_checks(route, await _reach_pod(route, emit), emit)
    elif shutil.which("ssh"):
        await _remote_checks(workspace, emit)
    else:
        emit(Check("ssh (laptop)", False, "not found", "install OpenSSH's client"))
    return all(check.ok for check in results)


async def _remote_checks(workspace: Workspace, emit: Report) -> None:
    """login -> scheduler -> node -> the node's tools; stops at the first broken hop."""
    route = Route(workspace)
    login = route.login_master()
    # Leave things as found: connections the doctor opens itself are closed again at the end.
    opened: list[ControlMaster] = [] if await login.pid() else [login]
    try:
        await _node_checks(route, await _reach_node(route, emit, opened), emit)
    finally:
        for master in reversed(opened):
            await master.stop()


async def _node_checks(route: Route, target: ControlMaster | None, emit: Report) -> None:
    """The node's tools, in one remote command, on the node ``target`` reaches (None: unreachable)."""
    if target is None:
        return
    result = await target.run(node_report_script(route.workspace), timeout=60)
    if not result.ok and not result.stdout:
        emit(
            Check(
                "node tools",
                False,
                f"the checks could not run on {target.name}: {result.stderr.strip()}",
                "run a command there by hand (ssh, srun or kubectl exec) to see why",
            )
        )
        return
    for check in node_checks(route.workspace, parse_node_report(result.stdout)):
        emit(check)


async def _reach_pod(route: Route, emit: Report) -> ControlMaster | None:
    """The pod the workspace would use (kube_checks found it running), reached with kubectl exec."""
    try:
        allocation = await asyncio.wait_for(route.scheduler.acquire(route.recorded_allocation(), lambda e: None), 60)
    except (TetherError, asyncio.TimeoutError) as exc:
        emit(Check("pod", False, str(exc) or "no running pod within 60 s", getattr(exc, "fix", "")))
        return None
    return PodRoute(route.kube_scheduler, allocation.node)


def _elapsed_ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


async def _reach_node(route: Route, emit: Report, opened: list[ControlMaster]) -> ControlMaster | None:
    """The master that reaches the node, with a check line per hop; None at the first failure."""
    login = route.login_master()
    started = time.perf_counter()
    try:
        await login.start()
    except TetherError as exc:
        emit(Check("login host", False, exc.message, exc.fix))
        return None
    emit(Check("login host", True, f"{login.name} reachable ({_elapsed_ms(started)})"))
    if not await _scheduler_ok(route, login, emit):
        return None
    try:
        allocation = await _held_allocation(route)
    except TetherError as exc:
        emit(Check("scheduler", False, exc.message, exc.fix))
        return None
    if allocation is None:
        kind = route.scheduler.kind
        emit(Check("node", True, f"no {kind} job is held now: the node is checked once `tether up` holds one"))
        return None
    node = route.node_master(allocation.node)
    if node is None:
        return login
    if not await node.pid():
        opened.append(node)
    started = time.perf_counter()
    try:
        reached = (
            await reach_node(
                node,
                login,
                job_id=allocation.job_id,
                node=allocation.node,
                access=route.node_access,
                sink=lambda event: None,
            )
            or node
        )
        await reached.start()
    except TetherError as exc:
        emit(Check("node", False, exc.message, exc.fix))
        return None
    if isinstance(reached, SrunRoute):
        emit(
            Check(
                "node",
                True,
                f"{reached.name} takes no ssh: reached as steps of job {reached.job_id} "
                f"(srun --overlap) through {login.name} ({_elapsed_ms(started)})",
            )
        )
    else:
        emit(Check("node", True, f"{node.name} reachable through {login.name} ({_elapsed_ms(started)})"))
    return reached


async def _scheduler_ok(route: Route, login: ControlMaster, emit: Report) -> bool:
    """The scheduler's own checks on the login host (slurm, pbs); False when one failed."""
    from tui.doctor_scheduler import login_host_checks  # here: it builds on Check above

    checks = await login_host_checks(route.workspace, route.scheduler, login)
    for check in checks:
        emit(check)
    return all(check.ok for check in checks)


async def _held_allocation(route: Route) -> Allocation | None:
    """The node the workspace holds now. Never ``acquire`` for a scheduled kind: with no live job
    it submits a holder job and waits for it, and a doctor must not take a node."""
    recorded = route.recorded_allocation()
    if route.workspace.scheduler.gives_node:
        if recorded is not None and recorded.job_id:
            # Look first: PBS's find() gives back a held or requeued job, and a doctor changes nothing.
            status = await route.scheduler.state(recorded.job_id)
            if status is not None and not status.running:
                return None
        return await route.scheduler.find(recorded)
    return await route.scheduler.acquire(recorded, lambda event: None)

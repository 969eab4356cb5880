"""`tether doctor`'s scheduler checks: the commands there, the options valid, the pod found.

Nothing here holds a node. Slurm's options are tried with ``sbatch --test-only`` (the controller
validates partition, account, qos, time and gres and says when the job would start, but no job
is made); PBS has no such dry run, so its queue is looked up with ``qstat -Q``. Each login-host
probe is ONE remote command printing ``key=value`` lines (a round trip costs on a slow link), and
reading it is pure. Kubernetes is asked from the laptop with the same calls ``KubeScheduler`` uses.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui.checks import Check
from tui.config import Workspace
from tui.config.scheduler import KubeOptions, PbsOptions, SlurmOptions
from tui.errors import TetherError
from tui.remote.scheduler.base import LoginShell, Scheduler
from tui.remote.scheduler.kube import KubectlFailed, KubeScheduler, assess_pod
from tui.remote.scheduler.kube_forward import KubeError
from tui.remote.scheduler.slurm import SlurmScheduler, sbatch_argv

SLURM_COMMANDS = ("sbatch", "squeue", "scancel", "srun")
PBS_COMMANDS = ("qsub", "qstat", "qdel")
TEST_ONLY = "test_only"  # the probe key of `sbatch --test-only`
QUEUE = "queue"  # the probe key of `qstat -Q QUEUE`
QUEUE_NAME_WIDTH = 16  # qstat -Q cuts longer queue names to its first column's width
PROBE_TIMEOUT = 60.0


# --- the login-host probe (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A command run on the login host only when ``tool`` is there; its status and output are reported."""

    key: str
    tool: str
    command: str


@dataclass
class ProbeReport:
    """What the login host said: where each tool is ("" when missing), each probe's status and lines."""

    found: dict[str, str] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    said: dict[str, list[str]] = field(default_factory=dict)

    def missing(self, tools: Sequence[str]) -> list[str]:
        return [tool for tool in tools if not self.found.get(tool)]

    def output(self, key: str) -> str:
        return "; ".join(line.strip() for line in self.said.get(key, []) if line.strip())


def probe_script(tools: Sequence[str], probes: Sequence[Probe]) -> str:
    """One shell command: ``found.TOOL=PATH`` per tool, then ``status.KEY=N`` and ``said.KEY=LINE``."""
    lines = [f'echo "found.{tool}=$(command -v {tool} || true)"' for tool in tools]
    for probe in probes:
        # Output is prefixed line by line, so a multi-line error keeps every line and login
        # banners or site wrappers' chatter cannot be mistaken for it.
        lines += [
            f"if command -v {probe.tool} >/dev/null 2>&1; then",
            f'  said=$({probe.command} 2>&1); echo "status.{probe.key}=$?"',
            f"  printf '%s\\n' \"$said\" | sed 's/^/said.{probe.key}=/'",
            "fi",
        ]
    return "\n".join(lines)


def parse_probe(output: str) -> ProbeReport:
    report = ProbeReport()
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        kind, dot, name = key.partition(".")
        if not (sep and dot and name):
            continue
        if kind == "found":
            report.found[name] = value.strip()
        elif kind == "status" and value.strip().lstrip("-").isdigit():
            report.status[name] = int(value)
        elif kind == "said":
            report.said.setdefault(name, []).append(value)
    return report


async def run_probe(login: LoginShell, script: str, *, input_bytes: bytes | None = None) -> ProbeReport | str:
    """The probe's report, or why it could not run (ssh failed, timed out)."""
    try:
        result = await login.run(script, input_bytes=input_bytes, timeout=PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        return f"the login host did not answer in {PROBE_TIMEOUT:.0f}s"
    except (TetherError, OSError) as exc:
        return str(exc)
    report = parse_probe(result.stdout)
    if not report.found:
        return (result.stderr or result.stdout).strip() or f"exit status {result.returncode}, no output"
    return report


def _probe_failed(name: str, why: str) -> Check:
    detail = f"the checks could not run on the login host: {why}"
    return Check(name, False, detail, "run `ssh` to the login host by hand to see why")


def commands_check(family: str, tools: Sequence[str], report: ProbeReport) -> Check:
    name = f"{family.lower()} commands"
    missing = report.missing(tools)
    if missing:
        return Check(
            name,
            False,
            f"not found on the login host: {', '.join(missing)}",
            f"make the {family} commands available in non-interactive shells there "
            f"(PATH or `module load` in ~/.bashrc), so that `ssh <login> command -v {tools[0]}` finds them",
        )
    return Check(name, True, ", ".join(tools) + " on the login host")


def _quoted_keys(keys: Sequence[str], values: Mapping[str, object]) -> str:
    """``partition (now "gpu")`` for each key, so the fix shows what to change."""
    parts = []
    for key in keys:
        value = values.get(key)
        parts.append(f'{key} (now "{value}")' if value not in (None, "", ()) else key)
    return ", ".join(parts)


# --- Slurm ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SbatchRefusal:
    """A kind of sbatch error: the [scheduler] keys that cause it and where to look for good values.

    ``keys`` are always named; ``also`` only when the workspace sets them (or when nothing else is
    named), so the fix does not send the user to options they never touched.
    """

    pattern: re.Pattern[str]
    keys: tuple[str, ...]
    also: tuple[str, ...]
    hint: str


def _refusal(pattern: str, keys: tuple[str, ...], also: tuple[str, ...], hint: str) -> SbatchRefusal:
    return SbatchRefusal(re.compile(pattern, re.IGNORECASE), keys, also, hint)


# Slurm's own messages (slurm_errno.c, and sbatch's option parser). The first match wins, so the
# account and policy messages, which also name a partition or time limits, come first. With
# --test-only sbatch prints the controller's answer as "allocation failure: <message>".
ASSOCIATIONS = "`sacctmgr show assoc user=$USER format=account,partition,qos` lists yours"
SBATCH_REFUSALS = (
    _refusal(r"Invalid account", ("account",), ("partition",), ASSOCIATIONS),
    _refusal(r"Invalid qos|QOS not permitted", ("qos",), (), ASSOCIATIONS),
    _refusal(
        r"accounting/QOS policy",
        (),
        ("time", "qos", "account", "gpus", "mem", "cpus_per_task"),
        "`sacctmgr show qos` shows the limits",
    ),
    _refusal(
        r"invalid partition|partition name|to use this partition|not in this partition",
        ("partition",),
        (),
        "`sinfo -s` on the login host lists the partitions",
    ),
    _refusal(r"time limit|--time", ("time",), (), "`sinfo -o '%P %l'` shows each partition's time limit"),
    _refusal(r"generic resource|gres", (), ("gpus", "gres"), "`sinfo -o '%P %G'` shows each partition's GPUs (gres)"),
    _refusal(r"feature specification", ("constraint",), (), "`sinfo -o '%P %f'` lists the features"),
    _refusal(r"Memory required", ("mem",), (), "`sinfo -o '%P %m'` shows the memory per node"),
    _refusal(r"node count", ("nodes",), (), "`sinfo -s` shows the nodes per partition"),
    _refusal(
        r"node configuration is not available",
        (),
        ("cpus_per_task", "mem", "gpus", "gres", "constraint", "nodes", "partition"),
        "no node of the partition has that much: `sinfo -o '%P %c %m %G %f'` shows what they have",
    ),
)
SLURM_KEYS = ("partition", "account", "qos", "time", "gpus", "gres", "cpus_per_task", "mem", "constraint", "nodes")
# "Job 12 to start at 2024-03-04T09:13:00 using 1 processors on nodes gpu01 in partition gpu"; with
# federation "... on cluster C using ..."; without a node list "... using 4 processors on gpu01".
_WILL_RUN = re.compile(
    r"Job (?P<job>\d+) to start at (?P<start>\S+)(?: on cluster (?P<cluster>\S+))? using (?P<cpus>\d+) "
    r"processors on (?:nodes )?(?P<nodes>\S+)(?: in partition (?P<partition>\S+))?"
)


def sbatch_test_argv(options: SlurmOptions, workspace: str) -> list[str]:
    """The holder job's sbatch with ``--test-only``: validated and scheduled on paper, never submitted."""
    argv = sbatch_argv(options, workspace)
    # standard times: "2024-03-04T09:13:00", whatever the user's SLURM_TIME_FORMAT says
    return ["env", "SLURM_TIME_FORMAT=standard", argv[0], "--test-only", *argv[1:]]


def slurm_probe_script(options: SlurmOptions, workspace: str) -> str:
    """The login-host command of the Slurm checks; the holder's batch script goes on its stdin."""
    test_only = Probe(TEST_ONLY, "sbatch", shlex.join(sbatch_test_argv(options, workspace)))
    return probe_script(SLURM_COMMANDS, [test_only])


def refusal_keys(error: str, options: SlurmOptions) -> tuple[tuple[str, ...], str]:
    """The [scheduler] keys an sbatch error points at, and where to look for good values."""
    values = _slurm_values(options)
    for refusal in SBATCH_REFUSALS:
        if refusal.pattern.search(error):
            named = refusal.keys + tuple(key for key in refusal.also if values.get(key) not in (None, ""))
            return (named or refusal.also), refusal.hint
    given = tuple(key for key in SLURM_KEYS if values.get(key) not in (None, ""))
    return given + (("extra",) if options.extra else ()), "run `sbatch --test-only` with them on the login host"


def _slurm_values(options: SlurmOptions) -> dict[str, Any]:
    """The keys as given; ``nodes = 1`` counts as not given, being the default no site refuses."""
    values = {key: getattr(options, key) for key in SLURM_KEYS}
    if values["nodes"] == 1:
        values["nodes"] = None
    return values


def sbatch_verdict(report: ProbeReport, options: SlurmOptions, config_name: str) -> Check | None:
    """``sbatch --test-only``'s verdict on the holder job's options; None when sbatch did not run."""
    if TEST_ONLY not in report.status:
        return None
    said = report.output(TEST_ONLY)
    if report.status[TEST_ONLY] != 0:
        keys, hint = refusal_keys(said, options)
        changes = _quoted_keys(keys, _slurm_values(options)) or "the options"
        return Check(
            "slurm options",
            False,
            f"sbatch --test-only refused the holder job: {said or 'no message'}",
            f"change {changes} under [scheduler] in {config_name}: {hint}",
        )
    match = _WILL_RUN.search(said)
    if match is None:  # accepted, in words this version does not know: show them
        return Check("slurm options", True, f"sbatch --test-only accepts the holder job: {said or 'no message'}")
    where = f"on {match['nodes']}" + (f" in partition {match['partition']}" if match["partition"] else "")
    when = f"it would start at {match['start']} {where}"
    return Check("slurm options", True, f"sbatch --test-only accepts the holder job ({when}); nothing was submitted")


def slurm_report_checks(report: ProbeReport, options: SlurmOptions, config_name: str) -> list[Check]:
    checks = [commands_check("Slurm", SLURM_COMMANDS, report)]
    verdict = sbatch_verdict(report, options, config_name)
    if verdict is not None:
        checks.append(verdict)
    return checks


async def slurm_checks(
    login: LoginShell, options: SlurmOptions, workspace: str, holder: str, config_name: str
) -> list[Check]:
    """The Slurm commands on the login host, and the holder job's options tried without submitting."""
    report = await run_probe(login, slurm_probe_script(options, workspace), input_bytes=holder.encode())
    if isinstance(report, str):
        return [_probe_failed("slurm commands", report)]
    return slurm_report_checks(report, options, config_name)


# --- PBS ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """A queue's line in ``qstat -Q``: enabled (takes jobs) and started (runs them)."""

    name: str
    enabled: bool
    started: bool
    kind: str = ""  # "Exec", "Route" (PBS Pro, maybe cut to "Exe*"/"Rou*"), "E"/"R" (Torque)


def parse_qstat_queues(text: str) -> list[QueueRow]:
    """The rows of ``qstat -Q``, read by the header's column names (PBS Pro and Torque differ)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header_at = next((i for i, line in enumerate(lines) if line.split()[:1] == ["Queue"]), None)
    if header_at is None:
        return []
    header = lines[header_at].split()
    if "Ena" not in header or "Str" not in header:
        return []
    enabled_at, started_at = header.index("Ena"), header.index("Str")
    kind_at = next((header.index(name) for name in ("Type", "T") if name in header), None)
    rows = []
    for line in lines[header_at + 1 :]:
        cells = line.split()
        if set(line.strip()) <= {"-", " "} or len(cells) <= max(enabled_at, started_at):
            continue
        kind = cells[kind_at] if kind_at is not None and kind_at < len(cells) else ""
        rows.append(QueueRow(cells[0], cells[enabled_at] == "yes", cells[started_at] == "yes", kind))
    return rows


def pbs_probe_script(options: PbsOptions) -> str:
    probes = [Probe(QUEUE, "qstat", shlex.join(["qstat", "-Q", options.queue]))] if options.queue else []
    return probe_script(PBS_COMMANDS, probes)


def queue_check(report: ProbeReport, queue: str, config_name: str) -> Check | None:
    """Whether the configured queue exists, takes jobs and runs them; None when qstat did not run."""
    if QUEUE not in report.status:
        return None
    said = report.output(QUEUE)
    change = f'change queue (now "{queue}") under [scheduler] in {config_name}: `qstat -Q` lists the queues'
    if report.status[QUEUE] != 0:
        if "Unknown queue" in said:
            return Check("pbs queue", False, f"qstat -Q {queue}: {said}", change)
        why = f"run `qstat -Q {queue}` on the login host to see why"
        return Check("pbs queue", False, f"qstat -Q {queue} failed: {said or 'no message'}", why)
    rows = parse_qstat_queues("\n".join(report.said.get(QUEUE, [])))
    row = next((r for r in rows if r.name == queue[:QUEUE_NAME_WIDTH]), None)
    if row is None:
        return Check("pbs queue", True, f"qstat -Q {queue} answered ({said or 'no rows'})")
    if not row.enabled:
        detail = f"queue {queue} is disabled: qsub refuses jobs for it"
        return Check("pbs queue", False, detail, f"{change}, or ask the site when it opens again")
    if not row.started:
        detail = f"queue {queue} is stopped: jobs wait in it but do not start"
        return Check("pbs queue", False, detail, f"{change}, or ask the site when it starts again")
    return Check("pbs queue", True, f"queue {queue} takes jobs and starts them")


def pbs_report_checks(report: ProbeReport, options: PbsOptions, config_name: str) -> list[Check]:
    checks = [commands_check("PBS", PBS_COMMANDS, report)]
    verdict = queue_check(report, options.queue, config_name) if options.queue else None
    if verdict is not None:
        checks.append(verdict)
    return checks


async def pbs_checks(login: LoginShell, options: PbsOptions, config_name: str) -> list[Check]:
    """The PBS commands on the login host and the configured queue (PBS has no dry-run submit)."""
    report = await run_probe(login, pbs_probe_script(options))
    if isinstance(report, str):
        return [_probe_failed("pbs commands", report)]
    return pbs_report_checks(report, options, config_name)


# --- Kubernetes (on the laptop) -------------------------------------------------------------------


def pod_check(pod: dict[str, Any], options: KubeOptions, cli_words: str) -> Check:
    """Whether the found pod can be used now, with what to do when it cannot."""
    view = assess_pod(pod, options.container, f"{cli_words} logs")
    picked = f" (picked by selector {options.selector})" if options.selector else ""
    if view.usable:
        return Check("pod", True, f"{view.name} is Running{picked}")
    if view.fatal is not None:
        return Check("pod", False, view.fatal.message, view.fatal.fix)
    return Check(
        "pod",
        False,
        f"{view.name} is {view.phase}{picked}: {view.detail}",
        f"`tether up` waits for it to run; see why it does not with `{cli_words} describe pod {view.name}`",
    )


def _namespace_words(options: KubeOptions) -> str:
    namespace = f"namespace {options.namespace}" if options.namespace else "the context's default namespace"
    return namespace + (f" (context {options.context})" if options.context else "")


async def kube_checks(options: KubeOptions, env: Mapping[str, str] | None = None) -> list[Check]:
    """kubectl/oc on this laptop, the namespace answering, the pod found and Running."""
    cli = options.cli
    path = shutil.which(cli, path=(os.environ if env is None else env).get("PATH"))
    if path is None:
        fix = f'install {cli}, or set cli = "kubectl" or "oc" under [scheduler]'
        return [Check(f"{cli} (laptop)", False, "not found on PATH", fix)]
    checks = [Check(f"{cli} (laptop)", True, path)]
    scheduler = KubeScheduler(options, env=env)
    where = _namespace_words(options)
    try:
        pod = await scheduler.current_pod()
    except KubectlFailed as exc:  # the API server did not answer, or refused this namespace
        return [*checks, Check("namespace", False, f"{where}: {exc.message}", exc.fix)]
    except KubeError as exc:  # it answered, but has no such pod
        return [*checks, Check("namespace", True, f"{where} answers"), Check("pod", False, exc.message, exc.fix)]
    cli_words = shlex.join(scheduler.base_argv())
    return [*checks, Check("namespace", True, f"{where} answers"), pod_check(pod, options, cli_words)]


# --- by kind --------------------------------------------------------------------------------------


async def login_host_checks(workspace: Workspace, scheduler: Scheduler, login: LoginShell) -> list[Check]:
    """The checks of a scheduler driven from the login host (slurm, pbs); none for the others."""
    config_name = workspace.config_path.name
    slurm, pbs = workspace.scheduler.slurm, workspace.scheduler.pbs
    if slurm is not None and isinstance(scheduler, SlurmScheduler):
        # The very batch script submit() sends: --test-only reads its #SBATCH lines too.
        return await slurm_checks(login, slurm, workspace.name, scheduler.holder, config_name)
    if pbs is not None:
        return await pbs_checks(login, pbs, config_name)
    return []

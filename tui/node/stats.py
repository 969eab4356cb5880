"""Agent capability ``tui.node.stats``: node CPU and memory, the run's processes, GPUs.

Read on the node (``/proc``, ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits``) every
``interval`` seconds, and sent as ``stats`` events that carry only the values that changed since
the last one (the first carries everything, with ``full``). Values are rounded to what the console
shows, so noise below that does not cross the link. Stdlib only.

Ops:   stats.watch {interval, workspace} -> {ok}: start (or retime) the sender
Event: stats {full?, node: {cpu, mem, memt}, procs: {pid: {cpu, mem, cmd}}, gone: [pid],
       gpus: {index: {name, util, mem, memt, temp, power}}, gpus_gone: [index], nogpu: reason}
The messages' types are ``protocol_stats``'s. The run's processes are those below the run pane
that ``tui.node.layout`` found (the agent's ``run_pane``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypedDict, TypeVar, cast

from tui.node.layoutstate import RunPane, read_state
from tui.node.protocol import Ok
from tui.node.protocol_layout import WORKSPACE_ENV
from tui.node.protocol_stats import WATCH, GpuFields, NodeFields, ProcessFields, StatsEvent, StatsWatch

if TYPE_CHECKING:
    from tui.node.agent import Agent

GPU_QUERY = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"
GPU_FIELDS = ("name", "util", "mem", "memt", "temp", "power")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
MIN_INTERVAL = 0.2

Fields = TypeVar("Fields", NodeFields, ProcessFields, GpuFields)


class Sample(TypedDict):
    """Everything one look at the node saw (``Sampler.message`` sends what changed of it)."""

    node: NodeFields
    procs: dict[str, ProcessFields]  # by pid
    gpus: dict[str, GpuFields]  # by nvidia-smi's index
    nogpu: str | None  # why there is no GPU


def gpu_argv() -> list[str]:
    return ["nvidia-smi", f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_gpu_csv(text: str) -> dict[str, GpuFields]:
    """nvidia-smi's CSV (no header, no units) -> {index: {name, util, mem, memt, temp, power}}."""
    gpus: dict[str, GpuFields] = {}
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 7:
            continue
        index, name = parts[0], ", ".join(parts[1 : len(parts) - 5])
        util, mem, memt, temp, power = (_number(p) for p in parts[-5:])
        gpus[index] = {
            "name": name,
            "util": None if util is None else round(util),
            "mem": None if mem is None else round(mem),
            "memt": None if memt is None else round(memt),
            "temp": None if temp is None else round(temp),
            "power": None if power is None else round(power),
        }
    return gpus


def read_gpus() -> tuple[dict[str, GpuFields], str]:
    """(GPUs, "") or ({}, why there is none)."""
    if shutil.which("nvidia-smi") is None:
        return {}, "nvidia-smi is not installed"
    try:
        result = subprocess.run(gpu_argv(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {}, f"nvidia-smi failed: {exc}"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return {}, f"nvidia-smi failed: {lines[-1] if lines else f'exit code {result.returncode}'}"
    gpus = parse_gpu_csv(result.stdout)
    return gpus, "" if gpus else "nvidia-smi lists no GPU"


def read_cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole node."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def read_memory() -> tuple[int, int]:
    """(used, total) MiB, used = total - available."""
    info = {}
    with open("/proc/meminfo") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0])
    total = info["MemTotal"]
    return round((total - info.get("MemAvailable", info.get("MemFree", 0))) / 1024), round(total / 1024)


def read_processes() -> dict[int, tuple[int, int, int]]:
    """{pid: (ppid, cpu jiffies, rss pages)} for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]))
    return out


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            text = " ".join(handle.read().replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        return ""
    home = os.path.expanduser("~")
    return text.replace(home + "/", "~/")[:80]


def descendants(processes: dict[int, tuple[int, int, int]], root: int, hidden: set[int] | None = None) -> list[int]:
    """``root`` and every process below it, but for ``hidden`` ones and what is below them."""
    hidden = hidden or set()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in processes and pid not in found and pid not in hidden:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return sorted(found)


def diff_section(old: Mapping[str, Fields], new: Mapping[str, Fields]) -> tuple[dict[str, Fields], list[str]]:
    """(per key, only the fields that changed; keys that are gone)."""
    changed: dict[str, Fields] = {}
    for key, fields in new.items():
        before: Mapping[str, object] = old.get(key, {})
        delta = {name: value for name, value in fields.items() if before.get(name, object()) != value}
        if delta:
            changed[key] = cast(Fields, delta)  # some of the fields of a ``Fields``: all are optional
    return changed, [key for key in old if key not in new]


class Sampler:
    """Takes samples and turns them into the smallest message that updates the laptop's view."""

    def __init__(self, run_pid: Callable[[], int | None] = lambda: None, hidden: Callable[[], set[int]] = set) -> None:
        """``run_pid``: the run pane's process; ``hidden``: the processes below it that are not
        the run's (the loop's standby)."""
        self._run_pid = run_pid
        self._hidden = hidden
        self._cpu: tuple[int, int] | None = None
        self._proc_jiffies: dict[int, tuple[int, float]] = {}
        self._sent: Sample = {"node": {}, "procs": {}, "gpus": {}, "nogpu": None}
        self._first = True

    def sample(self) -> Sample:
        busy, total = read_cpu_times()
        cpu = 0
        if self._cpu is not None and total > self._cpu[1]:
            cpu = round(100 * (busy - self._cpu[0]) / (total - self._cpu[1]))
        self._cpu = (busy, total)
        used, mem_total = read_memory()
        procs: dict[str, ProcessFields] = {}
        root = self._run_pid()
        if root:
            table = read_processes()
            now = time.monotonic()
            jiffies: dict[int, tuple[int, float]] = {}
            for pid in descendants(table, root, self._hidden()):
                _, ticks, rss = table[pid]
                jiffies[pid] = (ticks, now)
                before = self._proc_jiffies.get(pid)
                share = 0
                if before is not None and now > before[1]:
                    share = round(100 * (ticks - before[0]) / CLOCK_TICKS / (now - before[1]))
                procs[str(pid)] = {"cpu": share, "mem": round(rss * PAGE_MB), "cmd": command_line(pid)}
            self._proc_jiffies = jiffies
        gpus, reason = read_gpus()
        return {
            "node": {"cpu": cpu, "mem": used, "memt": mem_total},
            "procs": procs,
            "gpus": gpus,
            "nogpu": reason or None,
        }

    def message(self, sample: Sample) -> StatsEvent | None:
        out: StatsEvent = {"op": "stats"}
        if self._first:
            out["full"] = True
        sent_node: Mapping[str, object] = self._sent["node"]
        node = cast(NodeFields, {k: v for k, v in sample["node"].items() if sent_node.get(k) != v})
        if node:
            out["node"] = node
        procs, gone = diff_section(self._sent["procs"], sample["procs"])
        if procs:
            out["procs"] = procs
        if gone:
            out["gone"] = gone
        gpus, gpus_gone = diff_section(self._sent["gpus"], sample["gpus"])
        if gpus:
            out["gpus"] = gpus
        if gpus_gone:
            out["gpus_gone"] = gpus_gone
        if sample["nogpu"] != self._sent["nogpu"] or (self._first and sample["nogpu"]):
            out["nogpu"] = sample["nogpu"] or ""
        self._sent = sample
        self._first = False
        return out if len(out) > 1 else None


class Stats:
    def __init__(self, agent: Agent, run_pane: RunPane) -> None:
        self.agent = agent
        self.run_pane = run_pane
        self.interval = 2.0
        self._wake = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def watch(self, message: StatsWatch) -> Ok:
        self.start(float(message.get("interval", self.interval)))
        return {"op": "ok"}

    def start(self, interval: float) -> None:
        with self._lock:
            self.interval = max(MIN_INTERVAL, interval)
            self._wake.set()
            if self._started:
                return
            self._started = True
        self.agent.spawn("stats", self._loop)

    def _loop(self) -> None:
        sampler = Sampler(lambda: self.run_pane.pid, self.run_pane.standby_pids)
        while self.agent.running:
            self._wake.clear()
            message = sampler.message(sampler.sample())
            if message is not None:
                self.agent.send(message)
            self._wake.wait(self.interval)

    def autostart(self) -> None:
        workspace = os.environ.get(WORKSPACE_ENV)
        state = read_state(workspace) if workspace else {}
        if state.get("interval"):
            # Wait briefly for the layout capability to find the run pane, then start.
            deadline = time.monotonic() + 2
            while self.run_pane.pid is None and time.monotonic() < deadline:
                time.sleep(0.02)
            self.start(float(state["interval"]))


def register(agent: Agent) -> None:
    stats = Stats(agent, agent.run_pane)
    agent.register(WATCH.name, stats.watch)
    agent.on_hello(lambda: agent.spawn("stats-autostart", stats.autostart))

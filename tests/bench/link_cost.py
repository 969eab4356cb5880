"""Link cost of the node panels (issue 4): bytes on the ssh link, and reattach latency.

    sudo python3 tests/bench/link_cost.py            # full: 60 s per variant, about 3 minutes
    sudo python3 tests/bench/link_cost.py --smoke    # a few seconds (tests/test_bench_smoke_link.py)

On the testbed (login sshd + compute node in a network namespace), one run prints a line per
second in the workspace's tmux session (panes: run, htop, `watch -n 2` of the stand-in
nvidia-smi). Over the same window, three clients each reach the node through their own TCP relay
in front of the login sshd, and each relay counts the bytes that cross it (both directions):
  (a) dashboard: Tether's session (agent channel: new output lines, changed stats, pings);
  (b) attach:    `ssh -t compute01 tmux attach` to the same session in a 200x50 pty;
  (c) info:      the information alone: one ssh channel with JSON lines, new output lines every
                 second and, every 2 s, only the values that changed among node CPU% and memory,
                 CPU% and memory of each of the run's processes, and per GPU utilisation, memory,
                 temperature and power (rounded as the dashboard shows them).
Measured without and with ssh compression. Reattach: with the masters up, the time from a new
session's start to the dashboard showing the live state (layout, output history, node stats,
GPU), through a relay adding 50 ms each way and through one adding none.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import DelayRelay, bench_parser, bench_workspace, relay_ssh_config, run_benchmark, wait_for
from node_helpers import clean_node, install_standin_nvidia_smi
from testbed import Testbed

from tui.config import load_workspace
from tui.events import GpuStats, LayoutChanged, NodeStats, OutputLines
from tui.session import Session

RUN = """import itertools, random, time
random.seed(1)
for step in itertools.count():
    print(f"step {step:5d}  loss {2.5 / (1 + step / 50) + random.random() / 100:.4f}  lr 3.0e-04  {random.uniform(11, 13):.1f} it/s", flush=True)
    time.sleep(1)
"""

# (c): the information alone, as small as JSON lines get. Same sources and rounding as the agent.
INFO = r"""
import json, os, subprocess, sys, time
log = os.path.expanduser(sys.argv[1])
panes = subprocess.run(["tmux", "list-panes", "-s", "-t", "=" + sys.argv[2], "-F", "#{@tether-pane} #{pane_pid}"],
                       capture_output=True, text=True).stdout.split()
root = int(panes[panes.index("run") + 1])
f = open(log, "rb"); f.seek(0, 2); rest = b""; sent = {}; cpu0 = None; jif = {}
def out(o): sys.stdout.write(json.dumps(o, separators=(",", ":")) + "\n"); sys.stdout.flush()
def values():
    global cpu0, jif
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    busy, total = sum(v) - v[3] - v[4], sum(v)
    r = {"cpu": 0 if cpu0 is None else round(100 * (busy - cpu0[0]) / max(1, total - cpu0[1]))}; cpu0 = (busy, total)
    m = dict((l.split(":")[0], int(l.split()[1])) for l in open("/proc/meminfo"))
    r["mem"] = round((m["MemTotal"] - m["MemAvailable"]) / 1024)
    procs = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try: s = open(f"/proc/{p}/stat", "rb").read()
            except OSError: continue
            fl = s[s.rindex(b")") + 2:].split(); procs[int(p)] = (int(fl[1]), int(fl[11]) + int(fl[12]), int(fl[21]))
    tree, todo, now, new = [], [root], time.monotonic(), {}
    while todo:
        p = todo.pop()
        if p in procs and p not in tree: tree.append(p); todo += [c for c, x in procs.items() if x[0] == p]
    for p in tree:
        new[p] = (procs[p][1], now); b = jif.get(p)
        r[f"c{p}"] = round(100 * (procs[p][1] - b[0]) / os.sysconf("SC_CLK_TCK") / (now - b[1])) if b else 0
        r[f"m{p}"] = round(procs[p][2] * os.sysconf("SC_PAGE_SIZE") / 1048576)
    jif = new
    q = "index,utilization.gpu,memory.used,temperature.gpu,power.draw"
    for line in subprocess.run(["nvidia-smi", "--query-gpu=" + q, "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout.splitlines():
        i, u, mu, t, pw = [x.strip() for x in line.split(",")]
        r.update({f"u{i}": round(float(u)), f"g{i}": round(float(mu)), f"t{i}": round(float(t)), f"w{i}": round(float(pw))})
    return r
tick = 0
while True:
    data = rest + f.read(); *lines, rest = data.split(b"\n")
    if lines: out({"l": [l.decode(errors="replace").rstrip("\r") for l in lines]})
    if tick % 2 == 0:
        v = values(); changed = {k: x for k, x in v.items() if sent.get(k) != x}; sent.update(v)
        if changed: out(changed)
    tick += 1; time.sleep(1)
"""


def write_workspace(folder: Path, testbed: Testbed, ssh_config: Path, env_line: str) -> Path:
    run = (
        'command = "python3 run.py"',
        f'env = [{env_line}, "export NVIDIA_SMI_STANDIN_VARY=1"]',
        "[layout]",
        'panes = ["run", "htop", "gpu"]',
        "[ui]",
        "stats_interval = 2.0",
    )
    return bench_workspace(folder, testbed, ssh_config, name="bench", remote_root="~/work/bench", run=run)


@dataclass
class Window:
    name: str
    relay: DelayRelay
    start: int = 0

    def mark(self) -> None:
        self.start = self.relay.bytes

    def rate(self, seconds: float) -> float:
        return (self.relay.bytes - self.start) / seconds / 1024


def live(events: list) -> bool:
    kinds = {type(e) for e in events}
    history = any(isinstance(e, OutputLines) and e.history for e in events)
    return history and {LayoutChanged, NodeStats, GpuStats} <= kinds


def attach_in_pty(config: Path, testbed: Testbed) -> tuple[subprocess.Popen, threading.Thread]:
    """`ssh -t compute01 tmux attach` in a 200x50 pseudo-terminal whose screen is thrown away."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        ["ssh", "-F", str(config), "-tt", testbed.node_alias, "tmux -u attach-session -t =tether-bench"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(master, 65536):
                pass
        os.close(master)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return proc, reader


async def measure_bytes(
    testbed: Testbed, folder: Path, env_line: str, seconds: float, compression: bool
) -> dict[str, float]:
    relays = {name: DelayRelay(testbed.login_port) for name in ("dashboard", "attach", "info")}
    configs = {name: relay_ssh_config(testbed, relay, folder, compression) for name, relay in relays.items()}
    workspace = load_workspace(
        write_workspace(folder / f"ws-{int(compression)}", testbed, configs["dashboard"], env_line)
    )
    session, events = Session(workspace), []
    task = asyncio.create_task(session.run(events.append))
    attach = info = None
    try:
        await wait_for(lambda: live(events) or task.done(), 60)
        if task.done():
            task.result()
        attach, _ = attach_in_pty(configs["attach"], testbed)
        info = subprocess.Popen(
            [
                "ssh",
                "-F",
                str(configs["info"]),
                testbed.node_alias,
                f"{env_line.strip(chr(34))}; export NVIDIA_SMI_STANDIN_VARY=1; {testbed.plain_python} - ~/.cache/tether/runs/bench/run.log tether-bench",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(folder / "info.stderr", "wb"),
        )
        info.stdin.write(INFO.encode())
        info.stdin.close()
        threading.Thread(target=lambda: [None for _ in info.stdout], daemon=True).start()
        await asyncio.sleep(3)  # logins and first screens are done: measure the steady state
        windows = [Window(name, relay) for name, relay in relays.items()]
        for window in windows:
            window.mark()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        rates = {window.name: window.rate(elapsed) for window in windows}
        if attach.poll() is not None or info.poll() is not None:
            raise RuntimeError(
                f"benchmark: the attach ({attach.poll()}) or info ({info.poll()}) client ended early: "
                f"{(folder / 'info.stderr').read_text()[-2000:]}"
            )
        return rates
    finally:
        for proc in (attach, info):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        await session.down()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        for relay in relays.values():
            relay.close()


async def reattach_seconds(testbed: Testbed, folder: Path, env_line: str, delay: float, samples: int) -> float:
    relay = DelayRelay(testbed.login_port, delay)
    config = relay_ssh_config(testbed, relay, folder, compression=False)
    workspace = load_workspace(write_workspace(folder / f"re-{int(delay * 1000)}", testbed, config, env_line))
    times = []
    try:
        first, events = Session(workspace), []
        task = asyncio.create_task(first.run(events.append))
        await wait_for(lambda: live(events) or task.done(), 60)
        await first.detach()
        for _ in range(samples):
            again, events = Session(workspace), []  # `tether attach`: the masters are up
            started = time.monotonic()
            task = asyncio.create_task(again.run(events.append))
            await wait_for(lambda: live(events) or task.done(), 60)
            times.append(time.monotonic() - started)
            await again.detach()
        await Session(workspace).down()
    finally:
        relay.close()
    return statistics.median(times)


async def bench(testbed: Testbed, seconds: float, samples: int, compression_variants: tuple[bool, ...]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    clean_node(testbed)
    testbed.node_run_as_user("mkdir -p ~/work/bench && cat > ~/work/bench/run.py", input=RUN, check=True)
    env_line = install_standin_nvidia_smi(testbed)
    result: dict = {"seconds": seconds}
    try:
        for compression in compression_variants:
            rates = await measure_bytes(testbed, folder, env_line, seconds, compression)
            result["compression" if compression else "plain"] = rates
        plain = await reattach_seconds(testbed, folder, env_line, 0.0, samples)
        delayed = await reattach_seconds(testbed, folder, env_line, 0.05, samples)
        result["reattach"] = {
            "no_delay_s": plain,
            "delay_50ms_s": delayed,
            "extra_round_trips": (delayed - plain) / 0.1,
        }
    finally:
        clean_node(testbed)
    return result


def table(result: dict) -> str:
    rows = [
        f"link cost over {result['seconds']:.0f} s (KB/s through the login relay, both directions)",
        f"{'variant':<12}{'(a) dashboard':>15}{'(b) attach':>12}{'(c) info':>10}{'a/c':>7}{'b/c':>7}",
    ]
    for key in ("plain", "compression"):
        if key in result:
            r = result[key]
            rows.append(
                f"{key:<12}{r['dashboard']:>15.2f}{r['attach']:>12.2f}{r['info']:>10.2f}"
                f"{r['dashboard'] / r['info']:>7.2f}{r['attach'] / r['info']:>7.2f}"
            )
    re_ = result["reattach"]
    rows.append(
        f"reattach to live dashboard: {re_['no_delay_s'] * 1000:.0f} ms direct, {re_['delay_50ms_s'] * 1000:.0f} ms "
        f"with 50 ms each way: {re_['extra_round_trips']:.1f} extra round trips (goal <= 3)"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, "a few seconds, no compression variant")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    seconds, samples, variants = (3.0, 1, (False,)) if args.smoke else (args.seconds, 3, (False, True))
    return run_benchmark("link_cost", lambda testbed, _: bench(testbed, seconds, samples, variants), table)


if __name__ == "__main__":
    sys.exit(main())

"""What watching a run costs (issue 14): the console's CPU on the laptop and the loop's on the node,
beside a tmux client attached to the same output.

    sudo python3 tests/bench/console_cpu.py            # full: 60 s loud, 60 s silent
    sudo python3 tests/bench/console_cpu.py --smoke    # 3 s each (tests/test_bench_smoke_console_cpu.py)

On the testbed, the run prints 2 lines a second while ~/bench-loud exists on the node, and nothing
once it is gone. In the same run, over the same windows:
  console: `tether up` in a laptop terminal (a private tmux server, 120x36): the console's process
           and any process it started that is still running, from /proc, in % of one core (the
           ssh master and mux clients are not its children: their cost is not counted);
  loop:    the run's debug loop on the node (its output tee and supervision), from the node's /proc;
  tmux:    `tmux attach` to the run's own tmux session, in a pty on the node, with the dashboard's
           layout on screen: the client people keep open today, the floor for showing that output.
Goals (issue 14): console <= 2% while the run prints, <= 0.3% while it is silent; loop <= 0.5%.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import bench_parser, run_benchmark
from conftest import LaptopTerminal
from node_helpers import clean_node, write_workspace
from testbed import Testbed
from testbed.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
RUN = """import itertools, os, time
for i in itertools.count():
    if os.path.exists(os.path.expanduser('~/bench-loud')):
        print('step', i, 'loss', round(1 / (i + 1), 4), flush=True)
    time.sleep(0.5)
"""
# Sums utime+stime (in ticks) of each pid given and of every live descendant, from /proc; a pid
# given as "=PID" counts alone.
TREE_TICKS = r"""
import os, sys
children = {}
for name in os.listdir('/proc'):
    if name.isdigit():
        try:
            fields = open(f'/proc/{name}/stat').read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(name), int(fields[11]) + int(fields[12])))
def ticks(pid):
    try:
        fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12]) + sum(ticks(c) for c, _ in children.get(pid, []))
def alone(pid):
    try:
        fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])
print(' '.join(str(alone(p[1:]) if p.startswith('=') else ticks(int(p))) for p in sys.argv[1:]))
"""


ATTACH = """import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    os.environ["TERM"] = "xterm-256color"  # the node's plain environment has none: tmux needs one to draw
    os.execvp("tmux", ["tmux", "attach", "-r", "-t", sys.argv[1]])
while True:
    try:
        if not os.read(fd, 65536):
            break
    except OSError:
        break
"""
ATTACHED = 'ps -u $(id -u) -o pid=,args= | awk \'$2 == "tmux" && $3 == "attach" {print $1}\''


def local_ticks(*pids: int | str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", TREE_TICKS, *map(str, pids)], capture_output=True, text=True, check=True
    )
    return [int(word) for word in out.stdout.split()]


def node_ticks(testbed: Testbed, *pids: int | str) -> list[int]:
    script = TREE_TICKS.replace("'", "'\"'\"'")
    out = testbed.node_run_as_user(f"{testbed.plain_python} -c '{script}' {' '.join(map(str, pids))}", check=True)
    return [int(word) for word in out.stdout.split()]


def console_pid(terminal: LaptopTerminal) -> int:
    """The console's python: the child of the terminal pane's shell."""
    shell = int(terminal("display-message", "-p", "#{pane_pid}").strip())
    found = subprocess.run(["pgrep", "-P", str(shell), "-f", "[-]m tui"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else 0


def loop_pid(testbed: Testbed) -> int:
    out = testbed.node_run_as_user("find ~/.cache/tether/runs -name state.json -exec cat {} +")
    found = re.findall(r'"loop_pid": (\d+)', out.stdout)
    return int(found[0]) if found else 0


def runlog_pid(testbed: Testbed) -> int:
    """The process writing the run's log (the tee's other end)."""
    out = testbed.node_run_as_user("pgrep -n -u $(id -u) -f 'tui[.]node[.]runlog write'").stdout.split()
    return int(out[0]) if out else 0


def percent(before: list[int], after: list[int], seconds: float) -> list[float]:
    return [round(100 * (b - a) / TICKS / seconds, 3) for a, b in zip(before, after)]


def window(testbed: Testbed, console: int, loop: tuple[int, int], client: int, seconds: float) -> dict[str, float]:
    """CPU % over ``seconds``: the loop and the log writer each alone (the run and its debugger,
    the loop's children, are the user's cost, not the loop's)."""
    node = (f"={loop[0]}", f"={loop[1]}", client)
    start = time.monotonic()
    laptop0, node0 = local_ticks(console), node_ticks(testbed, *node)
    time.sleep(seconds)  # the window being measured: nothing of the benchmark runs meanwhile
    laptop1, node1 = local_ticks(console), node_ticks(testbed, *node)
    took = time.monotonic() - start
    (console_pct,), (loop_pct, log_pct, tmux_pct) = percent(laptop0, laptop1, took), percent(node0, node1, took)
    return {"console": console_pct, "loop": round(loop_pct + log_pct, 3), "tmux": tmux_pct}


async def bench(testbed: Testbed, scratch: Path, seconds: float) -> dict:
    clean_node(testbed)
    project = scratch / "ws"
    project.mkdir()
    (project / "run.py").write_text(RUN)
    config = write_workspace(project, testbed, extra='command = "python3 run.py"')
    testbed.node_run_as_user("touch ~/bench-loud", check=True)
    terminal = LaptopTerminal()
    try:
        terminal.run_tether("-c", str(config), "up")
        wait_until(lambda: "loss" in terminal.screen(), 60, 0.05, "the run's output in the console")
        console = wait_until(lambda: console_pid(terminal), 10, 0.05, "the console's pid")
        loop = (
            wait_until(lambda: loop_pid(testbed), 20, 0.05, "the loop's pid on the node"),
            wait_until(lambda: runlog_pid(testbed), 20, 0.05, "the run log's writer on the node"),
        )
        session = (
            "tether-"
            + json.loads(
                subprocess.run(
                    [sys.executable, "-m", "tui", "-c", str(config), "status", "--json"],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                ).stdout
            )["workspace"]
        )
        # tmux attach in a 120x36 pty on the node, whose output is read and dropped, as a terminal would.
        testbed.node_run_as_user(
            f"nohup {testbed.plain_python} -c {shlex.quote(ATTACH)} ={session} </dev/null >/dev/null 2>&1 &"
        )
        client = int(
            wait_until(
                lambda: testbed.node_run_as_user(ATTACHED).stdout.strip(),
                10,
                0.05,
                "the tmux client on the node",
            )
        )
        time.sleep(min(3.0, seconds))  # let the console settle after its bring-up before measuring
        loud = window(testbed, console, loop, client, seconds)
        testbed.node_run_as_user("rm -f ~/bench-loud", check=True)
        time.sleep(1.0)  # the last line drawn
        silent = window(testbed, console, loop, client, seconds)
    finally:
        testbed.node_run_as_user(f"rm -f ~/bench-loud; kill $({ATTACHED}) 2>/dev/null; true")
        terminal.close()
        subprocess.run(
            [sys.executable, "-m", "tui", "-c", str(config), "down"], cwd=ROOT, timeout=120, capture_output=True
        )
    return {"seconds": seconds, "loud": loud, "silent": silent}


def table(result: dict) -> str:
    loud, silent = result["loud"], result["silent"]
    rows = [
        f"CPU in % of one core, {result['seconds']:.0f} s windows (run printing 2 lines/s, then silent):",
        "| process | run printing | run silent | goal |",
        "|---|---|---|---|",
        f"| console (laptop, its process tree) | {loud['console']:.2f} | {silent['console']:.2f} | <= 2 / <= 0.3 |",
        f"| debug loop and its log writer (node) | {loud['loop']:.2f} | {silent['loop']:.2f} | <= 0.5 |",
        f"| tmux attach (node), the floor | {loud['tmux']:.2f} | {silent['tmux']:.2f} | |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, "3 s windows")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    seconds = 3.0 if args.smoke else args.seconds
    return run_benchmark("console_cpu", lambda testbed, scratch: bench(testbed, scratch, seconds), table)


if __name__ == "__main__":
    sys.exit(main())

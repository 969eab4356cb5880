"""Bring-up over a slow link (issue 14): `tether up` to the run's first line, beside the floor.

    sudo python3 tests/bench/bringup.py            # full: 100 ms RTT, 300 files + 2 MiB, 3 runs each
    sudo python3 tests/bench/bringup.py --smoke    # no delay, a few files, 1 run (tests/test_bench_smoke_bringup.py)

On the testbed (login sshd + compute node in a network namespace), with a relay in front of the
login sshd holding every chunk 50 ms each way, in the same run and from a cold start each time (no
ssh master, nothing of the workspace on the node):
  tether: `tether -c tether.toml up -v` in a laptop terminal (a private tmux server, 120x36), from
          the command's start to the run's first line drawn on that terminal; `-v`'s stages say
          where the time went (they count from the CLI's main(), after the interpreter's start);
  floor:  what a person types without Tether: a cold `rsync -a` of the workspace to the node, then
          `ssh node python train.py` to its first line, each logging in through the relay.
Goal (issue 14): tether <= 1.2x floor. Prints the stages, the table, then one JSON line.
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import DelayRelay, bench_parser, bench_workspace, private_state_dirs, ratio, relay_ssh_config, run_benchmark
from conftest import LaptopTerminal
from node_helpers import clean_node
from testbed import Testbed
from testbed.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
MARKER = "bench-first-line"
TRAIN = f"""import time
print({MARKER!r}, flush=True)
while True:
    time.sleep(1)
"""
REMOTE = "work/bench-bringup"
FLOOR_REMOTE = "work/bench-bringup-floor"
STAGE = re.compile(r"^\s+(\d+\.\d\d) s  \(\+\d+\.\d\d\)  (.+)$")


def make_project(folder: Path, files: int, big_bytes: int) -> None:
    for index in range(files):
        package = folder / "pkg" / f"m{index % 20:02d}"
        package.mkdir(parents=True, exist_ok=True)
        (package / f"f{index:04d}.py").write_text(f"# module {index}\nVALUE = {index}\n" + "x = 1\n" * 40)
    (folder / "data.bin").write_bytes(os.urandom(big_bytes))
    (folder / "train.py").write_text(TRAIN)


def floor_once(testbed: Testbed, project: Path, ssh_config: Path) -> float:
    testbed.node_run_as_user(f"rm -rf ~/{FLOOR_REMOTE}", check=True)
    ssh = ["ssh", "-F", str(ssh_config), "-o", "ControlMaster=no", "-o", "ControlPath=none"]
    started = time.monotonic()
    subprocess.run(
        ["rsync", "-a", "--mkpath", "-e", shlex.join(ssh), f"{project}/", f"{testbed.node_alias}:{FLOOR_REMOTE}/"],
        check=True,
        timeout=120,
    )
    command = f"cd {FLOOR_REMOTE} && exec {testbed.node_python} train.py"
    run = subprocess.Popen([*ssh, testbed.node_alias, command], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert run.stdout is not None
        line = run.stdout.readline().decode()
        took = time.monotonic() - started
        assert MARKER in line, line
    finally:
        run.kill()
        run.wait()
    return took


def tether(config: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "tui", "-c", str(config), *args], cwd=ROOT, check=True, timeout=120)


def tether_once(testbed: Testbed, config: Path) -> tuple[float, dict[str, float]]:
    """Seconds from `tether up -v`'s start to the first line on the terminal, and -v's stages."""
    clean_node(testbed)
    testbed.node_run_as_user(f"rm -rf ~/{REMOTE} ~/.cache/tether/sync", check=True)
    private_state_dirs()  # no master, no record: a cold start (the tmux server below inherits these)
    terminal = LaptopTerminal()
    try:
        started = time.monotonic()
        terminal.run_tether("-c", str(config), "up", "-v")
        wait_until(lambda: MARKER in terminal.screen(), 120, 0.005, "the run's first line on the terminal")
        took = time.monotonic() - started
        terminal("send-keys", "q")
        wait_until(lambda: terminal.EXITED in terminal.screen(), 60, 0.05, "the console closed")
        screen = terminal.screen()
    finally:
        terminal.close()
        tether(config, "down")
    stages = {match.group(2): float(match.group(1)) for line in screen.splitlines() if (match := STAGE.match(line))}
    return took, stages


async def bench(testbed: Testbed, scratch: Path, *, delay: float, files: int, big: int, runs: int) -> dict:
    project = scratch / "ws"
    make_project(project, files, big)
    relay = DelayRelay(testbed.login_port, delay)
    try:
        ssh_config = relay_ssh_config(testbed, relay, scratch, compression=False)
        config = bench_workspace(
            project,
            testbed,
            ssh_config,
            name="bench-bringup",
            remote_root=f"~/{REMOTE}",
            run=('command = "python train.py"',),
        )
        floors, tethers, stages = [], [], []
        for _ in range(runs):  # interleaved, so that a slow moment of the machine falls on both
            floors.append(floor_once(testbed, project, ssh_config))
            took, seen = tether_once(testbed, config)
            tethers.append(took)
            stages.append(seen)
    finally:
        relay.close()
    floor, measured = statistics.median(floors), statistics.median(tethers)
    middle = stages[tethers.index(sorted(tethers)[len(tethers) // 2])]
    return {
        "rtt_ms": round(2000 * delay),
        "files": files + 2,
        "mib": round(big / 2**20, 2),
        "runs": runs,
        "tether_s": round(measured, 3),
        "floor_s": round(floor, 3),
        "ratio": ratio(measured, floor, 2),
        "tether_all_s": [round(t, 3) for t in tethers],
        "floor_all_s": [round(t, 3) for t in floors],
        "stages_s": middle,
    }


def table(result: dict) -> str:
    lines = ["bring-up stages of the median tether run (seconds since tether's main(); `tether up -v`):"]
    previous = 0.0
    for name, at in sorted(result["stages_s"].items(), key=lambda item: item[1]):
        lines.append(f"  {at:6.2f}  +{at - previous:5.2f}  {name}")
        previous = at
    lines += [
        "",
        f"RTT {result['rtt_ms']} ms, {result['files']} files + {result['mib']} MiB, median of {result['runs']}:",
        "| what | seconds | all runs |",
        "|---|---|---|",
        f"| tether up -> run's first line on the terminal | {result['tether_s']:.2f} | {result['tether_all_s']} |",
        f"| floor: cold rsync, then ssh node python train.py | {result['floor_s']:.2f} | {result['floor_all_s']} |",
        f"| ratio (goal <= 1.2x) | {result['ratio']:.2f}x | |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, "no delay, 20 files, 1 run")
    parser.add_argument("--rtt-ms", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.smoke:
        options = {"delay": 0.0, "files": 20, "big": 64 * 1024, "runs": 1}
    else:
        options = {"delay": args.rtt_ms / 2000, "files": 300, "big": 2 * 2**20, "runs": args.runs}
    return run_benchmark("bringup", lambda testbed, scratch: bench(testbed, scratch, **options), table)


if __name__ == "__main__":
    sys.exit(main())

"""Sync benchmark (issue 3): Tether against the floor, a plain `rsync -az --delete -e ssh` of
exactly the changed paths started right after the change, over the same ControlMaster.

    sudo python3 tests/bench/sync.py            # full: about 4 minutes
    sudo python3 tests/bench/sync.py --smoke    # tiny sizes, 2 repetitions (tests/test_bench_smoke_sync.py)

On the testbed (login sshd + compute node in a network namespace, needs root). "On the node" is
checked on the node's private home (its backing folder, polled from here), for Tether and the
floor alike. Tether and the floor use separate local folders and remote roots, so neither sees
the other's changes.
  W1  append a line to a 10 KB file in a 2,000-file tree; until the node has the new bytes
      (p50, p95), on loopback and through a relay adding 50 ms each way (100 ms round trip)
  W2  rewrite 1,000 files at once; until the last one is right on the node (median of 4)
  W3  first sync of 10,000 files (about 150 MB) to an empty remote root (median of 3)
      (W2 and W3 alternate which side goes first and flush dirty pages before each run: the node's
      filesystem work dominates both, and writeback left by the step before would skew them)
  W4  a one-line change in the middle of a 50 MB file: bytes that crossed the node's link
  W5  `tether sync --watch` idle for 60 s on a 50,000-file tree: CPU seconds and peak memory
Prints a table, then one JSON line with every figure and every ratio Tether/floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, DelayRelay, bench_parser, bench_workspace, percentile, ratio, relay_ssh_config, run_benchmark
from testbed import Testbed

from tui.config import load_workspace
from tui.events import Notice
from tui.session import Session
from tui.sync.engine import SyncEngine
from tui.sync.rsync import files_from, remote_of
from tui.sync_cli import sync_target

FULL = {
    "w1_files": 2000,
    "w1_reps": 25,
    "w2_files": 1000,
    "w2_reps": 4,
    "w3_files": 10000,
    "w3_size": 15000,
    "w4_mb": 50,
    "w5_files": 50000,
    "w5_idle": 60.0,
    "w3_reps": 3,
}
SMOKE = {
    "w1_files": 50,
    "w1_reps": 2,
    "w2_files": 20,
    "w2_reps": 2,
    "w3_files": 200,
    "w3_size": 5000,
    "w4_mb": 2,
    "w5_files": 300,
    "w5_idle": 2.0,
    "w3_reps": 1,
}


def write_config(folder: Path, testbed: Testbed, remote: str, ssh_config: Path) -> Path:
    return bench_workspace(folder, testbed, ssh_config, name=folder.name, remote_root=f"~/{remote}")


def make_tree(folder: Path, count: int, size: int, *, prefix: str = "src") -> list[str]:
    paths = []
    for i in range(count):
        rel = f"{prefix}/d{i // 100:03d}/f{i:05d}.py"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size // 2).hex().encode()[:size])
        paths.append(rel)
    return paths


def wait_node(check, timeout: float = 120.0) -> float:
    """Poll (in this thread) until ``check()``; returns the time it became true."""
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the node never got the change")
        time.sleep(0.0002)
    return time.perf_counter()


def same_size(local: Path, node: Path):  # noqa: ANN201
    def check() -> bool:
        with contextlib.suppress(OSError):
            return node.stat().st_size == local.stat().st_size
        return False

    return check


def same_bytes(pairs: list[tuple[Path, Path]]):  # noqa: ANN201
    remaining = list(pairs)

    def check() -> bool:
        nonlocal remaining
        still = []
        for local, node in remaining:
            try:
                if node.read_bytes() != local.read_bytes():
                    still.append((local, node))
            except OSError:
                still.append((local, node))
        remaining = still
        return not remaining

    return check


class Side:
    """One side of the comparison: a local folder, its remote root, how it pushes."""

    def __init__(self, name: str, local: Path, remote: str, node_home: Path) -> None:
        self.name, self.local, self.remote = name, local, remote
        self.node_root = node_home / remote

    def node(self, rel: str) -> Path:
        return self.node_root / rel


def floor_rsync(master, local: Path, remote_root: str, paths: list[str] | None) -> subprocess.Popen:  # noqa: ANN001
    remote = remote_of(master, remote_root)
    env = {**os.environ, **master.settings.extra_env}
    if paths is None:
        argv = ["rsync", "-az", "--delete", "-e", remote.shell, f"{local}/", remote.spec()]
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if len(paths) == 1:
        argv = ["rsync", "-az", "--delete", "-e", remote.shell, str(local / paths[0]), remote.spec(paths[0])]
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    argv = ["rsync", "-az", "--delete", "--files-from=-", "--from0", "-e", remote.shell, f"{local}/", remote.spec()]
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.stdin.write(files_from(paths))  # type: ignore[union-attr]
    proc.stdin.close()  # type: ignore[union-attr]
    return proc


def veth_bytes(testbed: Testbed) -> int:
    veth = testbed.network.plan.host_veth  # type: ignore[union-attr]
    base = Path(f"/sys/class/net/{veth}/statistics")
    return int((base / "rx_bytes").read_text()) + int((base / "tx_bytes").read_text())


async def quiet_disk() -> None:
    """Write back every dirty page first: the last step's writes must not slow the next one down."""
    await asyncio.to_thread(os.sync)
    await asyncio.sleep(0.3)


async def in_thread(fn, *args):  # noqa: ANN001, ANN201
    return await asyncio.to_thread(fn, *args)


def report(event: object) -> None:
    """The engine's notices go to stderr (stdout is the table and the JSON line)."""
    if isinstance(event, Notice):
        print(f"tether: {event.message}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def engine_for(testbed: Testbed, folder: Path, remote: str, ssh_config: Path):  # noqa: ANN201
    workspace = load_workspace(write_config(folder, testbed, remote, ssh_config))
    session = Session(workspace)
    await session.prepare()
    try:
        async with sync_target(session.route, lambda e: None) as target:
            engine = SyncEngine(workspace, target, report)
            try:
                yield engine
            finally:
                await engine.close()
    finally:
        await session.down()


async def w1(testbed: Testbed, base: Path, ssh_config: Path, cfg: dict, tag: str) -> dict:
    """Append a line to a 10 KB file; until the node has the new bytes."""
    home = testbed.node.home_backing_dir
    tether, floor = (
        Side("tether", base / f"w1{tag}-t", f"work/w1{tag}-t", home),
        Side("floor", base / f"w1{tag}-f", f"work/w1{tag}-f", home),
    )
    for side in (tether, floor):
        make_tree(side.local, cfg["w1_files"], 1000)
        (side.local / "target.py").write_bytes(b"# x\n" * 2500)
    times: dict[str, list[float]] = {"tether": [], "floor": []}
    async with engine_for(testbed, tether.local, tether.remote, ssh_config) as engine:
        await engine.start()
        master = engine.target.master
        proc = await in_thread(lambda: floor_rsync(master, floor.local, f"{testbed.home}/{floor.remote}", None).wait())
        assert proc == 0
        for rep in range(cfg["w1_reps"]):
            for side in (tether, floor):
                local = side.local / "target.py"
                started = time.perf_counter()
                with open(local, "a") as out:
                    out.write(f"line {rep}\n")
                if side is floor:
                    rsync = floor_rsync(master, floor.local, f"{testbed.home}/{floor.remote}", ["target.py"])
                done = await in_thread(wait_node, same_size(local, side.node("target.py")))
                times[side.name].append((done - started) * 1000)
                if side is floor:
                    await in_thread(rsync.wait)
                else:
                    await engine.wait_synced(timeout=30)
                await asyncio.sleep(0.05)
    return {f"{n}_p50_ms": round(statistics.median(v), 1) for n, v in times.items()} | {
        f"{n}_p95_ms": round(percentile(v, 0.95), 1) for n, v in times.items()
    }


async def w2_w4(testbed: Testbed, base: Path, ssh_config: Path, cfg: dict) -> dict:
    home = testbed.node.home_backing_dir
    tether, floor = Side("tether", base / "w2-t", "work/w2-t", home), Side("floor", base / "w2-f", "work/w2-f", home)
    paths = []
    for side in (tether, floor):
        paths = make_tree(side.local, cfg["w2_files"], 2000)
        big = side.local / "big.bin"
        with open(big, "wb") as out:
            for i in range(cfg["w4_mb"] * 1024 * 16):  # 64-byte lines
                out.write(f"{i:08d} {os.urandom(27).hex()}\n".encode())
    result: dict = {}
    async with engine_for(testbed, tether.local, tether.remote, ssh_config) as engine:
        await engine.start()
        master = engine.target.master
        assert (
            await in_thread(lambda: floor_rsync(master, floor.local, f"{testbed.home}/{floor.remote}", None).wait())
            == 0
        )
        w2: dict[str, list[float]] = {"tether": [], "floor": []}
        for rep in range(cfg["w2_reps"]):  # W2: a branch switch rewrites every file
            for side in (tether, floor) if rep % 2 == 0 else (floor, tether):
                await quiet_disk()
                started = time.perf_counter()
                for rel in paths:  # a new size each time: rsync's quick check sees whole seconds only
                    (side.local / rel).write_bytes(os.urandom(1000).hex().encode() + b"#" * (rep + 1))
                if side is floor:
                    rsync = floor_rsync(master, floor.local, f"{testbed.home}/{floor.remote}", paths)
                done = await in_thread(wait_node, same_bytes([(side.local / p, side.node(p)) for p in reversed(paths)]))
                w2[side.name].append((done - started) * 1000)
                if side is floor:
                    await in_thread(rsync.wait)
                else:
                    await engine.wait_synced(timeout=60)
        for name, values in w2.items():
            result[f"w2_{name}_ms"] = round(statistics.median(values), 1)
        await asyncio.sleep(2.5)  # a ping or two settle
        for side in (tether, floor):  # W4: one line in the middle of the big file
            big = side.local / "big.bin"
            middle = big.stat().st_size // 2 // 64 * 64
            before = veth_bytes(testbed)
            with open(big, "r+b") as out:
                out.seek(middle)
                out.write(f"{0:08d} {'changed line'.ljust(54, '!')}\n".encode())
            if side is floor:
                rsync = floor_rsync(master, floor.local, f"{testbed.home}/{floor.remote}", ["big.bin"])
                await in_thread(rsync.wait)
            else:
                await engine.wait_synced(timeout=60)
            await in_thread(wait_node, same_bytes([(big, side.node("big.bin"))]))
            result[f"w4_{side.name}_kb"] = round((veth_bytes(testbed) - before) / 1024, 1)
    return result


async def w3(testbed: Testbed, base: Path, ssh_config: Path, cfg: dict) -> dict:
    """First sync of many files to an empty remote root (median of ``w3_reps``, order alternating)."""
    home = testbed.node.home_backing_dir
    local = base / "w3"
    make_tree(local, cfg["w3_files"], cfg["w3_size"])
    runs: dict[str, list[float]] = {"tether": [], "floor": []}
    async with engine_for(testbed, local, "work/w3-t", ssh_config) as engine:
        await engine.target.start()
        master = engine.target.master
        for rep in range(cfg["w3_reps"]):
            for name in ("floor", "tether") if rep % 2 == 0 else ("tether", "floor"):
                for root in ("w3-t", "w3-f"):
                    shutil.rmtree(home / "work" / root, ignore_errors=True)
                testbed.node_run_as_user("rm -rf ~/.cache/tether/sync; mkdir -p ~/work/w3-f")
                engine.node.opened_on = None  # the next push opens (and creates) the root again
                await quiet_disk()
                started = time.perf_counter()
                if name == "floor":
                    assert (
                        await in_thread(lambda: floor_rsync(master, local, f"{testbed.home}/work/w3-f", None).wait())
                        == 0
                    )
                else:
                    await engine.sync_once()
                runs[name].append(time.perf_counter() - started)
    return {
        "w3_tether_s": round(statistics.median(runs["tether"]), 2),
        "w3_floor_s": round(statistics.median(runs["floor"]), 2),
        "w3_mb": round(sum(p.stat().st_size for p in local.rglob("*") if p.is_file()) / 1e6, 1),
    }


def w5(testbed: Testbed, base: Path, cfg: dict) -> dict:
    """`tether sync --watch` as a user runs it: CPU while idle, peak memory over its life."""
    local = base / "w5"
    make_tree(local, cfg["w5_files"], 200)
    write_config(local, testbed, "work/w5", testbed.ssh_config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "sync", "--watch"],
        cwd=local,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "watching" in line:
                break
        else:
            raise RuntimeError(f"tether sync --watch ended early ({proc.wait()})")
        time.sleep(1.0)

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before = cpu()
        time.sleep(cfg["w5_idle"])
        used = cpu() - before
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak_kb = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    finally:
        proc.send_signal(2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        if proc.poll() is None:
            proc.kill()
    return {
        "w5_files": cfg["w5_files"],
        "w5_idle_s": cfg["w5_idle"],
        "w5_cpu_s": round(used, 3),
        "w5_peak_mb": round(peak_kb / 1024, 1),
    }


async def bench(testbed: Testbed, base: Path, cfg: dict) -> dict:
    result = {"w1_loopback": await w1(testbed, base, testbed.ssh_config, cfg, "l")}
    relay = DelayRelay(testbed.login_port, 0.05)
    try:
        result["w1_100ms"] = await w1(testbed, base, relay_ssh_config(testbed, relay, base), cfg, "r")
    finally:
        relay.close()
    result |= await w2_w4(testbed, base, testbed.ssh_config, cfg)
    result |= await w3(testbed, base, testbed.ssh_config, cfg)
    result |= await asyncio.to_thread(w5, testbed, base, cfg)
    result["ratios"] = {
        "w1_loopback_p50": ratio(result["w1_loopback"]["tether_p50_ms"], result["w1_loopback"]["floor_p50_ms"], 2),
        "w1_100ms_p50": ratio(result["w1_100ms"]["tether_p50_ms"], result["w1_100ms"]["floor_p50_ms"], 2),
        "w2": ratio(result["w2_tether_ms"], result["w2_floor_ms"], 2),
        "w3": ratio(result["w3_tether_s"], result["w3_floor_s"], 2),
        "w4": ratio(result["w4_tether_kb"], result["w4_floor_kb"], 2),
    }
    return result


def table(r: dict) -> str:
    l1, l2 = r["w1_loopback"], r["w1_100ms"]
    rows = [
        (
            "W1 loopback p50 / p95 (ms)",
            f"{l1['tether_p50_ms']} / {l1['tether_p95_ms']}",
            f"{l1['floor_p50_ms']} / {l1['floor_p95_ms']}",
            r["ratios"]["w1_loopback_p50"],
        ),
        (
            "W1 100 ms RTT p50 / p95 (ms)",
            f"{l2['tether_p50_ms']} / {l2['tether_p95_ms']}",
            f"{l2['floor_p50_ms']} / {l2['floor_p95_ms']}",
            r["ratios"]["w1_100ms_p50"],
        ),
        ("W2 rewrite files (ms)", r["w2_tether_ms"], r["w2_floor_ms"], r["ratios"]["w2"]),
        (f"W3 first sync {r['w3_mb']} MB (s)", r["w3_tether_s"], r["w3_floor_s"], r["ratios"]["w3"]),
        ("W4 one line in a big file (KB on the link)", r["w4_tether_kb"], r["w4_floor_kb"], r["ratios"]["w4"]),
        (
            f"W5 idle {r['w5_idle_s']:.0f} s, {r['w5_files']} files",
            f"{r['w5_cpu_s']} CPU-s, {r['w5_peak_mb']} MB peak",
            "-",
            "-",
        ),
    ]
    width = max(len(str(row[0])) for row in rows)
    lines = [f"{'workload'.ljust(width)}  {'tether':>28}  {'floor':>16}  tether/floor"]
    lines += [f"{str(a).ljust(width)}  {str(b):>28}  {str(c):>16}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = bench_parser(__doc__, "tiny sizes and 2 repetitions (a few seconds)").parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    return run_benchmark(
        "sync",
        lambda testbed, base: bench(testbed, base, cfg),
        table,
        who="the sync benchmark",
        head={"smoke": args.smoke},
        remove_scratch=True,
    )


if __name__ == "__main__":
    sys.exit(main())

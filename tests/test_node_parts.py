"""The node panels' pure parts, without a testbed: the run log, GPU CSV, stats diffs, pane
commands, and the laptop's merging of the agent's messages into whole snapshots."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from tui.config import load_workspace
from tui.events import GpuStats, LayoutChanged, NodeStats, Notice, OutputLines, RunProcesses
from tui.node import passenv, runlog
from tui.node.panes import pane_command, script_command
from tui.node.protocol_layout import session_name
from tui.node.stats import Sampler, diff_section, parse_gpu_csv
from tui.remote.panels import NodePanels, attach_command, layout_request

# Captured from a real node (driver 550): fields index,name,utilization.gpu,memory.used,
# memory.total,temperature.gpu,power.draw with --format=csv,noheader,nounits.
REAL_CSV = """0, NVIDIA H100 80GB HBM3, 97, 40213, 81559, 64, 512.38
1, NVIDIA A100-SXM4-40GB, 0, 4, 40960, 31, [N/A]
"""


def test_gpu_csv_parses_real_lines_and_not_available_values():
    gpus = parse_gpu_csv(REAL_CSV)
    assert gpus["0"] == {
        "name": "NVIDIA H100 80GB HBM3",
        "util": 97,
        "mem": 40213,
        "memt": 81559,
        "temp": 64,
        "power": 512,
    }
    assert gpus["1"]["power"] is None and gpus["1"]["name"] == "NVIDIA A100-SXM4-40GB"
    assert parse_gpu_csv("garbage\n") == {}


def test_stats_send_only_what_changed():
    changed, gone = diff_section(
        {"1": {"cpu": 5, "mem": 10}, "2": {"cpu": 0}}, {"1": {"cpu": 6, "mem": 10}, "3": {"cpu": 1}}
    )
    assert changed == {"1": {"cpu": 6}, "3": {"cpu": 1}} and gone == ["2"]

    sampler = Sampler()
    base = {
        "node": {"cpu": 3, "mem": 100, "memt": 1000},
        "procs": {},
        "gpus": {},
        "nogpu": "nvidia-smi is not installed",
    }
    first = sampler.message(base)
    assert first["full"] and first["node"] == base["node"] and first["nogpu"]
    assert sampler.message(dict(base)) is None  # nothing changed: nothing crosses the link
    moved = sampler.message({**base, "node": {"cpu": 4, "mem": 100, "memt": 1000}})
    assert moved == {"op": "stats", "node": {"cpu": 4}}


def test_missing_programs_get_a_plain_message():
    none = lambda name: None
    command, note = pane_command({"name": "gpu"}, "/w", {}, "compute01", which=none)
    assert note == "no GPU on compute01: nvidia-smi is not installed there" and "printf" in command
    command, note = pane_command({"name": "htop"}, "/w", {}, "compute01", which=none)
    assert "htop is not installed on compute01" in note
    command, note = pane_command({"name": "viz", "command": "nvtop -d 5"}, "/w", {}, "n1", which=none)
    assert "nvtop is not installed on n1" in note
    assert pane_command({"name": "logs", "command": "cd out && tail -F x"}, "/w", {}, "n1", which=none)[1] == ""
    assert pane_command({"name": "shell"}, "/w", {}, "n1", which=none) == (None, "")
    run, note = pane_command(
        {"name": "run"},
        "/w",
        {"command": "python t.py", "env": ["module load cuda"], "prefix": "apptainer exec img.sif"},
        "n1",
    )
    assert "module load cuda\napptainer exec img.sif python t.py\n" in run and note == ""


def test_run_log_pages_tails_and_rotates(tmp_path: Path):
    log = tmp_path / "run.log"
    for generation in range(3):
        log.write_bytes(b"".join(b"old %d-%d\r\n" % (generation, i) for i in range(100)))
        runlog.rotate(log)
    log.write_bytes(b"\x1b[32mgreen\x1b[0m\r\nloading 10%\rloading 100%\r\nunfinished")
    page = runlog.page(log, None, 2)
    assert page.lines == ["green", "loading 100%"]
    older = runlog.page(log, page.start, 3)
    assert older.lines == ["old 2-97", "old 2-98", "old 2-99"]  # across the rotated file's end
    assert runlog.page(log, 0, 5).lines == [] and len(runlog.log_files(log)) == 4

    tail = runlog.Tail(log)
    assert tail.start(history=1) == ["loading 100%"]
    with open(log, "ab") as handle:
        handle.write(b" now\nnext\n")
    assert tail.read_new() == ["unfinished now", "next"]
    with open(log, "ab") as handle:
        handle.write(b"last of the old file\n")
    runlog.rotate(log)
    log.write_bytes(b"first of the new file\n")
    assert tail.read_new() == ["last of the old file", "first of the new file"]


def test_the_writer_rotates_past_its_limit(tmp_path: Path):
    log = tmp_path / "run.log"
    read, write = os.pipe()
    os.write(write, b"".join(b"line %04d\n" % i for i in range(300)))
    os.close(write)
    runlog.write_forever(log, read, max_bytes=1000, keep=2)
    assert [p.name for p in runlog.log_files(log, keep=2)] == ["run.log.2", "run.log.1", "run.log"]
    assert runlog.page(log, None, 1).lines == ["line 0299"]


def test_panels_merge_the_agents_messages_into_snapshots(tmp_path: Path):
    (tmp_path / "tether.toml").write_text(
        '[workspace]\nname = "w1"\nremote_root = "~/w1"\n[connection]\nlogin = "hpc"\n'
    )
    workspace = load_workspace(tmp_path / "tether.toml")
    assert session_name("w1") == "tether-w1" and attach_command(workspace) == "tmux -u attach-session -t =tether-w1"
    assert [p["name"] for p in layout_request(workspace)["panes"]] == ["run", "htop", "gpu", "shell"]
    events: list = []
    panels = NodePanels(workspace, events.append)
    panels.handle(
        {
            "op": "layout",
            "session": "tether-w1",
            "host": "n1",
            "generation": 1,
            "panes": [{"name": "run", "id": "%1", "pid": 10}],
        }
    )
    panels.handle({"op": "output", "lines": ["a", "b"], "history": True})
    panels.handle(
        {
            "op": "stats",
            "full": True,
            "node": {"cpu": 5, "mem": 10, "memt": 100},
            "procs": {"10": {"cpu": 1, "mem": 3, "cmd": "python t.py"}},
            "nogpu": "nvidia-smi is not installed",
        }
    )
    panels.handle(
        {
            "op": "stats",
            "procs": {"10": {"cpu": 2}},
            "gpus": {"0": {"name": "G", "util": 9, "mem": 1, "memt": 2, "temp": 3, "power": 4}},
            "nogpu": "",
        }
    )
    panels.handle({"op": "layout", "session": "tether-w1", "host": "n1", "generation": 2, "panes": []})
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["LayoutChanged", "OutputLines", "NodeStats"]
    assert events[1] == OutputLines(("a", "b"), history=True)
    assert [e for e in events if isinstance(e, NodeStats)][0].cpu_percent == 5
    processes = [e for e in events if isinstance(e, RunProcesses)]
    assert processes[-1].processes[0].cpu_percent == 2 and processes[-1].processes[0].command == "python t.py"
    gpus = [e for e in events if isinstance(e, GpuStats)]
    assert gpus[0].reason == "no GPU on n1 (nvidia-smi is not installed)" and gpus[-1].gpus[0].utilization == 9
    assert any(isinstance(e, Notice) and "rebuilt" in e.message for e in events)
    assert isinstance(events[-1], LayoutChanged) and events[-1].generation == 2


def test_run_pane_command_parses_in_any_login_shell(tmp_path: Path):
    """tmux starts the run pane's command with the user's shell: for tcsh or fish users it must be
    a plain `exec PROGRAM SCRIPT` (no ${...}), and the sh-syntax script itself runs under /bin/sh."""
    script = tmp_path / "run it.sh"
    script.write_text('echo "ran by $0 with ${HOME:+a home}"\n')
    for login_shell, runner in (
        ("/bin/tcsh", "/bin/sh"),
        ("/usr/bin/fish", "/bin/sh"),
        ("/bin/bash", "/bin/bash"),
        ("", "/bin/sh"),
    ):
        command = script_command(script, {"SHELL": login_shell})
        assert command == f"exec {runner} '{script}'"
        assert "${" not in command and "$(" not in command
    done = subprocess.run(
        ["/bin/sh", "-c", script_command(script, {"SHELL": "/bin/tcsh"})], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"ran by {script} with a home\n"


def test_pass_env_values_go_through_a_fifo_into_the_scripts_shell(tmp_path: Path):
    """The run script's first line takes the values from the agent's FIFO: quoted for sh, and
    nothing is left on disk but an empty special file, removed once read."""
    fifo = tmp_path / "pass_env0.fifo"
    passenv.make_fifo(fifo)
    assert stat.S_IMODE(fifo.stat().st_mode) == 0o600
    values = {"TOKEN": 'it\'s $(rm -rf /) "quoted"\nline2', "bad name": "left out"}
    offered: list[bool] = []
    writer = threading.Thread(target=lambda: offered.append(passenv.offer(fifo, values, print, timeout=10)))
    writer.start()
    script = tmp_path / "run.sh"
    script.write_text(passenv.reader_line(fifo, sys.executable, str(ROOT)) + '\nprintf "%s" "$TOKEN"\n')
    done = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, check=True, timeout=20)
    writer.join(10)
    assert done.stdout == values["TOKEN"] and offered == [True]
    assert not fifo.exists()
    # Run again by hand: no FIFO any more, the script goes on without the values, and says so.
    again = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, check=True, timeout=20)
    assert again.stdout == "" and "no values were handed over" in again.stderr


def test_pass_env_offer_gives_up_when_no_script_reads(tmp_path: Path):
    fifo = tmp_path / "pass_env0.fifo"
    passenv.make_fifo(fifo)
    logged: list[str] = []
    assert passenv.offer(fifo, {"TOKEN": "x"}, logged.append, timeout=0.2) is False
    assert not fifo.exists() and "no run script took the values" in logged[0]

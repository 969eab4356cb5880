"""Launchers under the debug loop (issue 15, done-when 3): ``torchrun``, ``accelerate launch`` and
``deepspeed`` run as the modules their console scripts call, under (guarded) debugpy, with the
interpreter their script names; debugpy follows the workers each starts, so every rank is
debuggable, and a restart restarts the whole launch.

The end-to-end test runs a stand-in ``torchrun`` (tests/fixtures/launchers/torch: PyTorch cannot be
installed here; it starts one worker interpreter per local rank with RANK set, as torchrun does)
under the real loop in a tmux pane, and the console's own debuggers attach to every worker.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path

import pytest
from test_loop import ROOT, Pane, alive, run_processes, wait_for

from tui.debug.breakpoints import DebugMemory
from tui.debug.ranks import RankDebuggers
from tui.events import DebugStatus
from tui.node import loopstate as ls
from tui.node.loopcmd import CommandError, build_launch, script_python

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORKER = FIXTURES / "launcher_worker.py"
WORKER_LINE = next(n for n, text in enumerate(WORKER.read_text().splitlines(), 1) if "# WORKER LINE" in text)
DEBUGPY = ("-X", "frozen_modules=off", "-m", "tether_debugguard", "--listen", "127.0.0.1:7000")
ENV_PYTHON = "/opt/env/bin/python3.11"


@pytest.mark.parametrize(
    "command, module, name",
    [
        (["torchrun", "--nproc_per_node=4", "train.py", "--lr", "3"], "torch.distributed.run", "torchrun"),
        (["/opt/env/bin/torchrun", "--nnodes=1", "train.py"], "torch.distributed.run", "torchrun"),
        (
            ["accelerate", "launch", "--num_processes", "2", "train.py"],
            "accelerate.commands.launch",
            "accelerate launch",
        ),
        (["deepspeed", "--num_gpus", "2", "train.py", "--deepspeed"], "deepspeed.launcher.runner", "deepspeed"),
    ],
)
def test_a_launcher_runs_as_its_module_under_debugpy_with_its_own_python(command, module, name) -> None:
    skip = 2 if command[0] == "accelerate" else 1
    launch = build_launch(command, "attach", 7000, python="/usr/bin/python3", resolve=lambda _: ENV_PYTHON)
    assert launch.argv == (ENV_PYTHON, *DEBUGPY, "-m", module, *command[skip:])
    assert launch.name == name
    # Its script not found (or no Python script): the run's python; mode wait waits as for a script.
    fallback = build_launch(command, "wait", 7000, python="/usr/bin/python3", resolve=lambda _: None)
    assert fallback.argv[0] == "/usr/bin/python3" and "--wait-for-client" in fallback.argv
    assert build_launch(command, "off", 7000).argv == tuple(command)  # no debugger: as given


def test_the_python_module_forms_and_other_commands() -> None:
    module = build_launch(["python", "-m", "torch.distributed.run", "--nproc_per_node=2", "t.py"], "attach", 7000)
    assert module.argv[-4:] == ("-m", "torch.distributed.run", "--nproc_per_node=2", "t.py")
    with pytest.raises(CommandError, match="torchrun, accelerate launch, deepspeed"):
        build_launch(["accelerate", "config"], "attach", 7000)  # not a launch
    with pytest.raises(CommandError, match="--mode off"):
        build_launch(["bash", "run.sh"], "attach", 7000)


def test_a_console_script_names_its_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = {
        "torchrun": f"#!{ENV_PYTHON}\nfrom torch.distributed.run import main\n",
        "deepspeed": "#!/usr/bin/env -S python3 -u\nfrom deepspeed.launcher.runner import main\n",
        "accelerate": "#!/bin/bash\nexec something\n",
    }
    for script, text in scripts.items():
        (tmp_path / script).write_text(text)
        (tmp_path / script).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert script_python("torchrun") == ENV_PYTHON
    assert script_python("deepspeed") == "python3"
    assert script_python("accelerate") is None  # not Python: the run's python is used
    assert script_python("missing") is None


def standin_torchrun(folder: Path) -> Path:
    """A ``torchrun`` console script as pip writes it, in this interpreter's name."""
    folder.mkdir(parents=True)
    script = folder / "torchrun"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom torch.distributed.run import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return folder


def start_torchrun(pane: Pane, tmp_path: Path, nproc: int) -> None:
    bin_folder = standin_torchrun(tmp_path / "bin")
    loop = [sys.executable, "-m", "tui.node.loop", "--state", str(pane.state), "--port", str(pane.port)]
    command = ["torchrun", f"--nproc_per_node={nproc}", str(WORKER)]
    path = f"{bin_folder}:{os.environ['PATH']}"
    python_path = f"{FIXTURES / 'launchers'}:{ROOT}"
    pane.type(f"PATH={shlex.quote(path)} PYTHONPATH={shlex.quote(python_path)} {shlex.join([*loop, '--', *command])}")


def workers_stopped(group: RankDebuggers, count: int) -> list[str] | None:
    """The workers' labels once ``count`` of them stopped at the worker line, else None."""
    views = [d.view for d in group.processes() if d.process]
    stopped = [
        v
        for v in views
        if v.status is DebugStatus.STOPPED
        and v.stop is not None
        and v.stop.top is not None
        and v.stop.top.frame.line == WORKER_LINE
    ]
    return sorted(v.label.split(" (")[0] for v in stopped) if len(stopped) == count else None


async def wait_async(check, what: str, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


async def test_torchrun_under_the_loop_every_rank_debuggable_and_restarted_as_one(pane: Pane, tmp_path: Path):
    start_torchrun(pane, tmp_path, 2)
    first = pane.wait_state("running", lambda s: s["status"] == "running")
    assert "torch.distributed.run" in first["argv"] and first["name"] == "torchrun"
    wait_for(lambda: "rank 0 step" in pane.text() and "rank 1 step" in pane.text(), "both ranks' output")

    memory = DebugMemory(tmp_path / "debug.json")
    memory.toggle(WORKER.name, WORKER_LINE)

    async def connect(rank: int):
        return await asyncio.open_connection("127.0.0.1", pane.port)

    group = RankDebuggers(memory, FIXTURES, lambda: str(FIXTURES), connect, lambda event: None)
    try:
        group.debugger(0).start()
        labels = await wait_async(lambda: workers_stopped(group, 2), "both workers to stop at the breakpoint")
        assert labels == ["rank 0", "rank 1"]
        await group.resume_all()
    finally:
        await group.close()

    old = run_processes(first)
    assert len(old) >= 3  # the launcher, its two workers (and debugpy's adapter)
    ls.send_control(pane.state, "restart")
    second = pane.wait_state("restarted", lambda s: s["status"] == "running" and s["pid"] != first["pid"])
    wait_for(lambda: not [pid for pid in old if alive(pid)], "every process of the first launch to end")
    assert second["restarts"] == first["restarts"] + 1
    wait_for(lambda: pane.text().count("rank 1 step 40 ") >= 2, "the new launch's workers to run")

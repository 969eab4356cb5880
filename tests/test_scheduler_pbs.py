"""The pbs scheduler: pure qstat/qsub parsing, and allocate/find/release against STAND-IN commands.

No PBS server can run here. The commands run through a local login shell (``/bin/sh -c``, as sshd
would run them on the login host) with PATH pointing at STAND-IN ``qsub``/``qstat``/``qdel``
executables (tests/fixtures/standins/standin.py) that replay captured-format fixtures from
tests/fixtures/pbs and record how they were called. The quoting and parsing path is the real one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from standins import PBS_TOOLS, LocalLoginShell, StandIns, fixture_body, install_standins

from tui.config.scheduler import PbsOptions
from tui.errors import TetherError
from tui.events import Progress
from tui.remote.scheduler.base import Allocation, holder_script
from tui.remote.scheduler.pbs import (
    PbsScheduler,
    format_elapsed,
    job_name,
    parse_exec_host,
    parse_job_id,
    parse_qstat_full,
    parse_walltime,
    qsub_argv,
    seconds_left,
)

NOW = 1_000_000.0


# --- stand-ins ----------------------------------------------------------------------------------


@pytest.fixture
def standins(tmp_path: Path) -> StandIns:
    return install_standins(tmp_path, PBS_TOOLS, "PBS")


OPTIONS = PbsOptions(queue="gpu", resources="select=1:ncpus=4:ngpus=2", walltime="04:00:00", account="proj-42")


def scheduler(standins: StandIns, options: PbsOptions = OPTIONS) -> tuple[PbsScheduler, LocalLoginShell]:
    shell = LocalLoginShell(standins)
    return PbsScheduler(shell, options, "demo", poll_interval=0.01, clock=lambda: NOW), shell


# --- pure parsing ---------------------------------------------------------------------------------


def test_qstat_full_queued_joins_tab_continuations_without_a_separator():
    info = parse_qstat_full(fixture_body("pbs/qstat_f_queued.txt"))
    assert info["Job Id"] == "1234.pbs-server"
    assert info["job_state"] == "Q"
    assert info["comment"] == "Not Running: Insufficient amount of resource: ngpus"
    # PBS Pro wraps at a fixed width, even inside a word ("nc" + "pus").
    assert info["Resource_List.select"] == "1:ncpus=4:ngpus=2:mem=32gb:mpiprocs=1:ompthreads=4:model=a100"
    assert info["Submit_arguments"].endswith("-l select=1:ncpus=4:ngpus=2 -l walltime=04:00:00")
    assert "PBS_O_PATH=/opt/pbs/bin:/usr/local/bin:/usr/bin:/bin," in info["Variable_List"]
    assert info["Resource_List.walltime"] == "04:00:00"
    assert "exec_host" not in info and "resources_used.walltime" not in info


def test_qstat_full_running_pbspro():
    info = parse_qstat_full(fixture_body("pbs/qstat_f_running.txt"))
    assert info["job_state"] == "R"
    assert info["exec_host"] == "gpu-node07/0*4+gpu-node08/0*4"
    assert info["comment"] == (
        "Job run at Tue Mar 04 at 09:13 on (gpu-node07:ncpus=4:ngpus=2:mem=33554432kb)"
        "+(gpu-node08:ncpus=4:ngpus=2:mem=33554432kb)"
    )
    assert info["resources_used.walltime"] == "00:10:00"


def test_qstat_full_torque_forms():
    info = parse_qstat_full(fixture_body("pbs/qstat_f_running_torque.txt"))
    assert (info["Job Id"], info["exec_host"], info["Walltime.Remaining"]) == ("548.moab", "n003/0-1", "3593")
    multi = parse_qstat_full(fixture_body("pbs/qstat_f_running_torque_multinode.txt"))
    assert multi["exec_host"].endswith("+node46/6+node46/7+node47/0+node47/1")


def test_qstat_full_reads_only_the_first_job_and_tolerates_space_indented_continuations():
    text = "Job Id: 1.s\n    job_state = R\n    comment = a long\n           tail\nJob Id: 2.s\n    job_state = Q\n"
    assert parse_qstat_full(text) == {"Job Id": "1.s", "job_state": "R", "comment": "a longtail"}
    assert parse_qstat_full("") == {}


@pytest.mark.parametrize(
    ("exec_host", "hosts"),
    [
        ("node01/0*4+node02/0*4", ["node01", "node02"]),  # PBS Pro: host/vnode*ncpus
        ("node01/0+node01/1", ["node01"]),  # Torque: one entry per core
        ("node01/0-3", ["node01"]),  # Torque 6: core ranges
        ("n003/0-1", ["n003"]),
        ("gpu-node07.cluster.example/24", ["gpu-node07.cluster.example"]),
        ("node01/0+node01/1+\n\tnode02/0", ["node01", "node02"]),
        ("", []),
    ],
)
def test_parse_exec_host(exec_host: str, hosts: list[str]):
    assert parse_exec_host(exec_host) == hosts


def test_parse_exec_host_of_the_wrapped_torque_fixture():
    info = parse_qstat_full(fixture_body("pbs/qstat_f_running_torque_multinode.txt"))
    assert parse_exec_host(info["exec_host"]) == ["node46", "node47"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("04:00:00", 14400),
        ("48:00:00", 172800),
        ("30:00", 1800),
        ("59", 59),
        ("1:02:03:04", 93784),
        ("00:00:14", 14),
        ("3600", 3600),
    ],
)
def test_parse_walltime(text: str, seconds: int):
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize("text", ["", "4h", "1:2:3:4:5", "-1:00", "aa:bb"])
def test_parse_walltime_rejects_what_is_not_a_walltime(text: str):
    with pytest.raises(ValueError):
        parse_walltime(text)


def test_seconds_left_is_requested_minus_used():
    assert seconds_left(parse_qstat_full(fixture_body("pbs/qstat_f_running.txt"))) == 4 * 3600 - 600
    # Torque right after the start has no resources_used yet: the whole walltime is left.
    assert seconds_left(parse_qstat_full(fixture_body("pbs/qstat_f_running_torque.txt"))) == 3600
    assert seconds_left(parse_qstat_full(fixture_body("pbs/qstat_f_running_torque_multinode.txt"))) == 48 * 3600 - 14
    assert seconds_left({"job_state": "R"}) is None
    assert seconds_left({"Resource_List.walltime": "01:00:00", "resources_used.walltime": "02:00:00"}) == 0


def test_qsub_argv_carries_every_option():
    options = PbsOptions(
        queue="gpu",
        resources="nodes=1:ppn=4:gpus=2",
        walltime="04:00:00",
        account="proj-42",
        extra=("-V", "-W group_list=hpc"),
    )
    assert qsub_argv(options, "demo") == [
        "qsub", "-N", "tether-demo", "-j", "oe", "-o", "/dev/null", "-S", "/bin/sh",
        "-q", "gpu", "-A", "proj-42", "-l", "nodes=1:ppn=4:gpus=2", "-l", "walltime=04:00:00",
        "-V", "-W", "group_list=hpc",
    ]  # fmt: skip
    assert qsub_argv(PbsOptions(), "demo") == [
        "qsub",
        "-N",
        "tether-demo",
        "-j",
        "oe",
        "-o",
        "/dev/null",
        "-S",
        "/bin/sh",
    ]


def test_job_name_keeps_only_characters_pbs_accepts():
    assert job_name("my ws/é") == "tether-my-ws--"
    assert len(job_name("x" * 400)) == 236


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [
        ("1234.pbs-server\n", "1234.pbs-server"),
        ("548.moab\n", "548.moab"),
        ("Your job uses 2 GPUs; accounting to proj-42\n99.sched.example.org\n", "99.sched.example.org"),
        ("1234[].pbs-server\n", "1234[].pbs-server"),
        ("77\n", "77"),
        ("qsub: Unknown queue\n", None),
        ("", None),
    ],
)
def test_parse_job_id(stdout: str, job_id: str | None):
    assert parse_job_id(stdout) == job_id


def test_format_elapsed():
    assert (format_elapsed(5), format_elapsed(65), format_elapsed(7265)) == ("0:05", "1:05", "2:01:05")


# --- allocate / find / release through the stand-ins ---------------------------------------------


async def test_allocate_waits_from_queued_to_running_with_progress(standins: StandIns):
    standins.replay = {
        "QSUB": "pbs/qsub_jobid.txt",
        "QSTAT": "pbs/qstat_f_queued.txt,pbs/qstat_f_queued.txt,pbs/qstat_f_running.txt",
    }
    pbs, shell = scheduler(standins)
    events: list[object] = []

    allocation = await pbs.allocate(events.append)

    assert allocation == Allocation(node="gpu-node07", job_id="1234.pbs-server", ends_at=NOW + 4 * 3600 - 600)
    assert allocation.time_left(now=NOW) == 4 * 3600 - 600
    messages = [e.message for e in events if isinstance(e, Progress)]
    assert messages[0] == "PBS job 1234.pbs-server submitted, waiting for a node"
    queued = [m for m in messages if "queued (Q)" in m]
    assert len(queued) == 2
    assert all(m.startswith("PBS job 1234.pbs-server queued (Q) for 0:0") for m in queued)
    assert all(m.endswith(": Not Running: Insufficient amount of resource: ngpus") for m in queued)

    (qsub,) = standins.calls("qsub")
    assert qsub["argv"] == qsub_argv(OPTIONS, "demo")[1:]
    assert qsub["stdin"] == holder_script()
    assert [c["argv"] for c in standins.calls("qstat")] == [["-f", "1234.pbs-server"]] * 3
    assert standins.calls("qdel") == []
    assert shell.commands[0].startswith("qsub -N tether-demo -j oe -o /dev/null -S /bin/sh -q gpu -A proj-42 -l ")


async def test_options_with_shell_characters_reach_qsub_intact(standins: StandIns):
    standins.replay = {"QSUB": "pbs/qsub_jobid.txt", "QSTAT": "pbs/qstat_f_running.txt"}
    options = PbsOptions(
        resources="select=1:ncpus=4:mem=8gb;touch pwned", account="a b", extra=("-W group_list='x y'",)
    )
    pbs, _ = scheduler(standins, options)
    await pbs.allocate(lambda event: None)
    (qsub,) = standins.calls("qsub")
    assert qsub["argv"] == qsub_argv(options, "demo")[1:]
    assert "-l" in qsub["argv"] and "select=1:ncpus=4:mem=8gb;touch pwned" in qsub["argv"]
    assert ["-W", "group_list=x y"] == qsub["argv"][-2:]
    assert not Path("pwned").exists()


async def test_torque_exec_host_range_and_walltime(standins: StandIns):
    standins.replay = {"QSUB": "pbs/qsub_jobid.txt", "QSTAT": "pbs/qstat_f_running_torque.txt"}
    pbs, _ = scheduler(standins)
    allocation = await pbs.allocate(lambda event: None)
    assert (allocation.node, allocation.ends_at) == ("n003", NOW + 3600)


async def test_qsub_refusal_is_a_clear_error(standins: StandIns):
    standins.replay = {"QSUB": "pbs/qsub_unknown_queue.txt"}
    pbs, _ = scheduler(standins)
    with pytest.raises(TetherError) as caught:
        await pbs.allocate(lambda event: None)
    assert caught.value.message == "qsub refused the holder job: qsub: Unknown queue"
    assert "queue" in caught.value.fix and "tether.toml" in caught.value.fix
    assert standins.calls("qstat") == []


async def test_missing_qsub_says_so(standins: StandIns):
    if any(Path(d, "qsub").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("this machine has a real qsub")
    (standins.bin / "qsub").unlink()
    standins.system_path = "/usr/bin:/bin"  # sh, but no qsub anywhere: "command not found", 127
    pbs, _ = scheduler(standins)
    with pytest.raises(TetherError, match="qsub was not found on the login host"):
        await pbs.allocate(lambda event: None)


async def test_job_vanishing_while_queued_fails_and_is_cleaned_up(standins: StandIns):
    standins.replay = {
        "QSUB": "pbs/qsub_jobid.txt",
        "QSTAT": "pbs/qstat_f_queued.txt,pbs/qstat_unknown_job.txt",
        "QDEL": "pbs/qdel_unknown_job.txt",
    }
    pbs, _ = scheduler(standins)
    with pytest.raises(TetherError, match="vanished before it started"):
        await pbs.allocate(lambda event: None)
    assert [c["argv"] for c in standins.calls("qdel")] == [["1234.pbs-server"]]


async def test_cancelled_allocation_deletes_the_queued_job(standins: StandIns):
    standins.replay = {"QSUB": "pbs/qsub_jobid.txt", "QSTAT": "pbs/qstat_f_queued.txt", "QDEL": "pbs/qdel_ok.txt"}
    pbs, _ = scheduler(standins)
    queued = asyncio.Event()

    def sink(event: object) -> None:
        if isinstance(event, Progress) and "queued (Q)" in event.message:
            queued.set()

    task = asyncio.create_task(pbs.allocate(sink))
    await asyncio.wait_for(queued.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [c["argv"] for c in standins.calls("qdel")] == [["1234.pbs-server"]]


RECORDED = Allocation(node="gpu-node07", job_id="1234.pbs-server", ends_at=NOW)


async def test_find_returns_the_recorded_job_while_it_runs(standins: StandIns):
    standins.replay = {"QSTAT": "pbs/qstat_f_running.txt"}
    pbs, _ = scheduler(standins)
    assert await pbs.find(RECORDED) == Allocation("gpu-node07", "1234.pbs-server", NOW + 4 * 3600 - 600)
    assert [c["argv"] for c in standins.calls("qstat")] == [["-f", "1234.pbs-server"]]


@pytest.mark.parametrize("gone", ["pbs/qstat_unknown_job.txt", "pbs/qstat_job_finished.txt"])
async def test_find_on_a_vanished_job_is_none(standins: StandIns, gone: str):
    standins.replay = {"QSTAT": gone}
    pbs, _ = scheduler(standins)
    assert await pbs.find(RECORDED) is None
    assert standins.calls("qdel") == []


async def test_find_gives_back_a_recorded_job_that_is_queued_again(standins: StandIns):
    standins.replay = {"QSTAT": "pbs/qstat_f_queued.txt", "QDEL": "pbs/qdel_ok.txt"}
    pbs, _ = scheduler(standins)
    assert await pbs.find(RECORDED) is None
    assert [c["argv"] for c in standins.calls("qdel")] == [["1234.pbs-server"]]


async def test_find_without_a_recorded_job_asks_nothing(standins: StandIns):
    pbs, shell = scheduler(standins)
    assert await pbs.find(None) is None
    assert await pbs.find(Allocation(node="n1")) is None
    assert shell.commands == []


async def test_acquire_allocates_anew_when_the_recorded_job_is_gone(standins: StandIns):
    standins.replay = {"QSUB": "pbs/qsub_jobid.txt", "QSTAT": "pbs/qstat_unknown_job.txt,pbs/qstat_f_running.txt"}
    pbs, _ = scheduler(standins)
    allocation = await pbs.acquire(RECORDED, lambda event: None)
    assert allocation.node == "gpu-node07"
    assert len(standins.calls("qsub")) == 1


async def test_release_calls_qdel_with_the_job_id(standins: StandIns):
    standins.replay = {"QDEL": "pbs/qdel_ok.txt"}
    pbs, shell = scheduler(standins)
    await pbs.release(RECORDED)
    assert [c["argv"] for c in standins.calls("qdel")] == [["1234.pbs-server"]]
    assert shell.commands == ["qdel 1234.pbs-server"]


async def test_release_of_an_ended_job_is_quiet(standins: StandIns):
    standins.replay = {"QDEL": "pbs/qdel_unknown_job.txt"}
    pbs, _ = scheduler(standins)
    await pbs.release(RECORDED)  # no error: the node is already given back
    await pbs.release(Allocation(node="gpu-node07"))  # no job id: nothing to do
    assert len(standins.calls("qdel")) == 1

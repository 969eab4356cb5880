"""The slurm scheduler: pure squeue/sbatch parsing, then allocate/find/release against a REAL Slurm.

The real tests use the testbed's single-node cluster (tests/testbed/slurm.py: munged, slurmctld,
slurmd inside compute01's namespaces) and talk to it exactly as production does: every command
goes through a real ssh ControlMaster to the testbed's login host, built from a tether.toml the
way Session builds it, and the login shell finds the cluster through SLURM_CONF. No mocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from testbed import Testbed
from testbed.slurm import SlurmCluster
from workspaces import load_test_workspace

from tui.config.scheduler import SlurmOptions
from tui.errors import TetherError
from tui.events import Progress
from tui.remote.scheduler.base import (
    HOLDER_TMUX_SESSION,
    MAX_POLL_FAILURES,
    Allocation,
    growing_delays,
    holder_script,
    poll,
)
from tui.remote.scheduler.slurm import (
    SlurmScheduler,
    job_name,
    parse_job_id,
    sbatch_argv,
    squeue_command,
    srun_command,
    srun_prefix,
    waiting_message,
)
from tui.remote.scheduler.slurm_status import (
    GONE,
    JobStatus,
    expand_nodelist,
    first_host,
    parse_slurm_duration,
    parse_slurm_time,
    parse_squeue,
    parse_squeue_line,
)
from tui.remote.ssh import ControlMaster, Hop, SshSettings, rsync_shell
from tui.route import destination_of

# --- pure parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1-02:03:04", 93784),  # %L: days-hours:minutes:seconds
        ("2:03:04", 7384),  # hours:minutes:seconds
        ("03:04", 184),  # minutes:seconds
        ("9:58", 598),
        ("0:00", 0),
        ("365-00:00:00", 365 * 86400),
        ("30", 1800),  # --time: a bare number is minutes
        ("2-12", 2 * 86400 + 12 * 3600),  # --time: days-hours
        ("2-12:30", 2 * 86400 + 12 * 3600 + 1800),  # --time: days-hours:minutes
        (" 10:00 ", 600),
    ],
)
def test_parse_slurm_duration(text: str, seconds: int):
    assert parse_slurm_duration(text) == seconds


@pytest.mark.parametrize("text", ["UNLIMITED", "INFINITE", "NOT_SET", "INVALID", "N/A", "NONE", ""])
def test_slurm_durations_without_a_value(text: str):
    assert parse_slurm_duration(text) is None


@pytest.mark.parametrize("text", ["4h", "1:2:3:4", "-1", "a-01:00", "1-"])
def test_parse_slurm_duration_rejects_what_is_not_a_duration(text: str):
    with pytest.raises(ValueError):
        parse_slurm_duration(text)


def test_parse_slurm_time_reads_standard_timestamps_as_local_time():
    assert parse_slurm_time("2024-03-04T09:13:00") == time.mktime((2024, 3, 4, 9, 13, 0, 0, 0, -1))
    for text in ("N/A", "NONE", "Unknown", "", "09:13:00"):
        assert parse_slurm_time(text) is None


@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("compute01", ["compute01"]),
        ("gpu[01-03]", ["gpu01", "gpu02", "gpu03"]),
        ("gpu[01-03,07]", ["gpu01", "gpu02", "gpu03", "gpu07"]),
        ("gpu[8-11]", ["gpu8", "gpu9", "gpu10", "gpu11"]),
        ("n[1-2]-ib[3-4]", ["n1-ib3", "n1-ib4", "n2-ib3", "n2-ib4"]),
        ("a1,b[2-3],c", ["a1", "b2", "b3", "c"]),
        ("node-a.example,node-b.example", ["node-a.example", "node-b.example"]),
        ("(Resources)", []),
        ("", []),
    ],
)
def test_expand_nodelist(nodelist: str, hosts: list[str]):
    assert expand_nodelist(nodelist) == hosts
    assert first_host(nodelist) == (hosts[0] if hosts else None)


def test_first_host_does_not_expand_a_huge_list():
    assert first_host("n[000001-999999],m[1-999999]") == "n000001"


RUNNING_LINE = "1234|RUNNING|10:00|9:58|2024-03-04T09:13:00|2024-03-04T09:23:00|gpu[07-08]|None"
PENDING_LINE = "1235|PENDING|4:00:00|4:00:00|2024-03-04T10:00:00|2024-03-04T14:00:00||Resources"
HELD_LINE = "1236|PENDING|UNLIMITED|UNLIMITED|N/A|NONE||JobHeldUser"


def test_parse_squeue_line_running():
    status = parse_squeue_line(RUNNING_LINE)
    assert status == JobStatus(
        job_id="1234",
        state="RUNNING",
        reason="",
        nodes="gpu[07-08]",
        time_limit=600,
        time_left=598,
        start=parse_slurm_time("2024-03-04T09:13:00"),
        end=parse_slurm_time("2024-03-04T09:23:00"),
    )
    assert status.running and not status.waiting and not status.ended
    assert status.node == "gpu07"
    assert status.ends_at(now=1000.0) == 1598.0
    assert status.describe() == "Slurm job 1234 running on gpu[07-08]"


def test_parse_squeue_line_pending_and_held():
    pending = parse_squeue_line(PENDING_LINE)
    assert (pending.state, pending.reason, pending.nodes, pending.node) == ("PENDING", "Resources", "", None)
    assert pending.waiting and pending.start == parse_slurm_time("2024-03-04T10:00:00")
    held = parse_squeue_line(HELD_LINE)
    assert (held.time_limit, held.time_left, held.start, held.end) == (None, None, None, None)
    assert held.ends_at(now=5.0) is None  # no time limit: the job does not end by itself
    assert held.describe() == "Slurm job 1236 pending: JobHeldUser (held by you (scontrol release ID))"


def test_a_reason_with_the_separator_stays_whole():
    status = parse_squeue_line("7|PENDING|1:00|1:00|N/A|N/A||odd|reason")
    assert status.reason == "odd|reason"


def test_parse_squeue_picks_the_job_among_other_lines():
    stdout = f"site banner: maintenance on Friday\n{PENDING_LINE}\n{RUNNING_LINE}\n"
    assert parse_squeue(stdout, "1234").state == "RUNNING"
    assert parse_squeue(stdout, "999") is None
    with pytest.raises(ValueError):
        parse_squeue_line("1|RUNNING")


def test_ended_and_requeued_jobs_are_described():
    cancelled = JobStatus("5", "CANCELLED")
    assert cancelled.ended and cancelled.describe() == "Slurm job 5 was cancelled"
    assert JobStatus("5", "PREEMPTED").describe() == "Slurm job 5 was preempted"
    assert JobStatus("5", "TIMEOUT").describe() == "Slurm job 5 reached its time limit"
    assert JobStatus("5", GONE).ended
    requeued = JobStatus("5", "PENDING", reason="BeginTime")
    assert requeued.describe(previous="RUNNING").startswith("Slurm job 5 was requeued (pending): BeginTime")
    assert JobStatus("5", "SUSPENDED").waiting


def test_waiting_message_shows_state_reason_wait_and_expected_start():
    now = parse_slurm_time("2024-03-04T09:50:00")
    assert now is not None
    message = waiting_message(parse_squeue_line(PENDING_LINE), waited=65, now=now)
    assert message == (
        "Slurm job 1235 pending for 1:05: Resources (waiting for resources to free up); expected start 10:00 (in 10:00)"
    )
    assert waiting_message(parse_squeue_line(HELD_LINE), waited=3, now=now).endswith(
        "for 0:03: JobHeldUser (held by you (scontrol release ID))"
    )


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [
        ("1234\n", "1234"),
        ("1234;cluster2\n", "1234"),
        ("NOTE: your job uses 2 GPUs\n77\n", "77"),
        ("sbatch: error: Batch job submission failed\n", None),
        ("", None),
    ],
)
def test_parse_job_id(stdout: str, job_id: str | None):
    assert parse_job_id(stdout) == job_id


def test_sbatch_argv_names_options_as_slurm_does():
    options = SlurmOptions(
        partition="gpu",
        account="proj-42",
        qos="normal",
        time="04:00:00",
        gpus="a100:2",
        gres="gpu:1",
        cpus_per_task=8,
        mem="32G",
        constraint="a100&ib",
        nodes=2,
        extra=("--exclusive", "--comment 'two words'"),
    )
    assert sbatch_argv(options, "demo") == [
        "sbatch", "--parsable", "--job-name=tether-demo", "--output=/dev/null",
        "--partition=gpu", "--account=proj-42", "--qos=normal", "--time=04:00:00", "--gpus=a100:2",
        "--gres=gpu:1", "--cpus-per-task=8", "--mem=32G", "--constraint=a100&ib", "--nodes=2",
        "--exclusive", "--comment", "two words",
    ]  # fmt: skip
    assert sbatch_argv(SlurmOptions(job_name="mine"), "demo") == [
        "sbatch", "--parsable", "--job-name=mine", "--output=/dev/null", "--nodes=1",
    ]  # fmt: skip
    assert job_name("my ws/é") == "tether-my-ws--"


def test_srun_prefix_and_command():
    assert srun_prefix("42") == "srun --jobid=42 --overlap --quit-on-interrupt --unbuffered --nodes=1 --ntasks=1"
    assert srun_prefix("42", "gpu07").endswith(" --nodelist=gpu07")
    assert srun_command("42", "echo 'hi' && hostname") == (
        "srun --jobid=42 --overlap --quit-on-interrupt --unbuffered --nodes=1 --ntasks=1 /bin/sh -c 'echo '\"'\"'hi'\"'\"' && hostname'"
    )
    assert squeue_command("42") == "env SLURM_TIME_FORMAT=standard squeue -h -t all -j 42 -o '%i|%T|%l|%L|%S|%e|%N|%r'"


async def test_holder_script_starts_the_tmux_server_and_ends_it_with_the_job(tmp_path: Path):
    """The batch script, run for real by sh: it starts the workspace's tmux server (so the run
    belongs to the job), and when the job ends (Slurm sends TERM) the server ends with it."""
    env = {**os.environ, "TMUX_TMPDIR": str(tmp_path)}
    holder = await asyncio.create_subprocess_exec("sh", "-c", holder_script("tether-hold-test"), env=env)

    async def sessions() -> str:
        tmux = await asyncio.create_subprocess_exec(
            "tmux",
            "-L",
            "tether-hold-test",
            "list-sessions",
            "-F",
            "#{session_name}",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await tmux.communicate()
        return out.decode()

    try:
        for _ in range(100):
            if await sessions():
                break
            await asyncio.sleep(0.05)
        assert (await sessions()).split() == [HOLDER_TMUX_SESSION]
        assert holder.returncode is None  # it keeps the allocation
        holder.terminate()
        assert await asyncio.wait_for(holder.wait(), 10) == 0
        assert await sessions() == ""  # the server went with the job
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


T = TypeVar("T")


# --- against the real Slurm -----------------------------------------------------------------------


@dataclasses.dataclass
class Site:
    """The testbed's Slurm seen from the laptop: a login master and the workspace's options."""

    cluster: SlurmCluster
    testbed: Testbed
    login: ControlMaster
    options: SlurmOptions
    workspace: str

    def user_squeue(self) -> str:
        """What plain `squeue` shows the user on the login host."""
        return self.cluster.user_run("squeue -h").stdout

    def scheduler(self, **changes: Any) -> SlurmScheduler:
        options = dataclasses.replace(self.options, **changes)
        return SlurmScheduler(self.login, options, self.workspace, poll_interval=0.5, first_poll=0.1)


@pytest.fixture(scope="module")
def site(slurm: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    testbed = slurm.testbed
    workspace = load_test_workspace(
        tmp_path_factory.mktemp("slurm-ws"),
        testbed,
        node="",
        extra='[scheduler]\nkind = "slurm"\npartition = "debug"\ntime = "00:10:00"\nmem = "100M"\n',
    )
    assert workspace.connection.node_from_scheduler
    options = workspace.scheduler.slurm
    assert options is not None and options.time == "00:10:00"
    # As Session builds it: the login hop from [connection], the master's socket in a short dir.
    control_dir = Path(tempfile.mkdtemp(prefix="ts-", dir="/tmp"))
    connection = workspace.connection
    settings = SshSettings(ssh_config=connection.ssh_config, connect_timeout=connection.connect_timeout)
    login = ControlMaster(settings, Hop(destination_of(connection.login), control_dir / "l"))
    try:
        yield Site(slurm, testbed, login, options, workspace.name)
    finally:
        asyncio.run(login.stop())
        shutil.rmtree(control_dir, ignore_errors=True)


@pytest.fixture
async def cluster(site: Site) -> AsyncIterator[Site]:
    """The site with the login master up; every job is cancelled after the test, pass or fail."""
    await site.login.start()
    try:
        yield site
    finally:
        await asyncio.to_thread(site.cluster.cancel_all)


async def until(condition: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    """Poll an async condition with a deadline (no bare sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def progress_messages(events: list[object]) -> list[str]:
    return [event.message for event in events if isinstance(event, Progress)]


async def no_jobs(site: Site) -> bool:
    return not await asyncio.to_thread(site.cluster.jobs)


async def test_allocate_finds_compute01_with_time_left_and_release_leaves_no_job(cluster: Site):
    scheduler = cluster.scheduler()
    events: list[object] = []
    started = time.monotonic()

    allocation = await scheduler.allocate(events.append)

    running_after = time.monotonic() - started
    assert allocation.node == "compute01" and allocation.job_id
    left = allocation.time_left()
    assert left is not None and 590 <= left <= 600, left  # time = "00:10:00"
    messages = progress_messages(events)
    assert messages[0] == f"Slurm job {allocation.job_id} submitted, waiting for a node"
    assert messages[-1] == f"Slurm job {allocation.job_id} running on compute01"
    assert running_after < 15, running_after
    # The options reached sbatch as Slurm names them.
    shown = cluster.cluster.run(["squeue", "-h", "-j", allocation.job_id, "-o", "%j|%P|%l|%m|%u"]).stdout.strip()
    assert shown == f"tether-tbws|debug|10:00|100M|{cluster.testbed.user}"

    status = await scheduler.state(allocation.job_id)
    assert status.running and status.node == "compute01" and status.describe().endswith("running on compute01")

    await scheduler.release(allocation)
    assert cluster.user_squeue() == ""  # `tether down` leaves no job in squeue: not even COMPLETING
    assert (await scheduler.state(allocation.job_id)).state in ("CANCELLED", GONE)
    await scheduler.release(allocation)  # again: an ended job counts as released
    # The holder printed nothing anywhere: no slurm-*.out in the user's home on the node.
    assert cluster.testbed.node_run_as_user("ls ~ | grep -c '^slurm-' || true").stdout.strip() == "0"


async def test_srun_only_path_and_ssh_to_the_node_while_the_job_runs(cluster: Site, tmp_path: Path):
    scheduler = cluster.scheduler()
    allocation = await scheduler.allocate(lambda event: None)
    assert allocation.job_id

    # Sites whose nodes take no ssh: the command runs inside the job, through the login shell.
    hostname = await cluster.login.run(f"{srun_prefix(allocation.job_id)} hostname", timeout=30)
    assert (hostname.returncode, hostname.stdout) == (0, "compute01\n"), hostname.stderr
    wrapped = await cluster.login.run(srun_command(allocation.job_id, 'echo "$SLURM_JOB_ID" on $(hostname)'))
    assert wrapped.stdout == f"{allocation.job_id} on compute01\n", wrapped.stderr
    failed = await cluster.login.run(srun_command(allocation.job_id, "echo out; exit 3"))
    assert (failed.returncode, failed.stdout) == (3, "out\n")  # the exit status comes back
    # stdin streams to the command (the agent channel's way in).
    echoed = await cluster.login.run(f"{srun_prefix(allocation.job_id)} cat", input_bytes=b'{"op": "ping"}\n' * 3)
    assert echoed.stdout == '{"op": "ping"}\n' * 3, echoed.stderr

    # Sync without ssh to the node: rsync's server runs through srun, rsync rides on the login master.
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("print('synced through srun')\n")
    (source / "blob.bin").write_bytes(os.urandom(1_000_000))
    login = cluster.login
    rsync = await asyncio.create_subprocess_exec(
        "rsync", "-a", "--delete", "-e", rsync_shell(login.settings, login.hop),
        f"--rsync-path={srun_prefix(allocation.job_id)} rsync", f"{source}/",
        f"{login.hop.destination.host}:srun-sync/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, rsync_err = await asyncio.wait_for(rsync.communicate(), 30)
    assert rsync.returncode == 0, rsync_err.decode()
    digest = hashlib.sha256((source / "blob.bin").read_bytes()).hexdigest()
    on_node = cluster.testbed.node_run_as_user("cat srun-sync/train.py; sha256sum < srun-sync/blob.bin")
    assert on_node.stdout == f"print('synced through srun')\n{digest}  -\n", on_node.stderr
    assert cluster.testbed.login_run_as_user("test -e srun-sync").returncode != 0  # on the node only
    cluster.testbed.node_run_as_user("rm -rf srun-sync")

    # Sites that allow ssh to a node you hold a job on: the node's sshd lets the user in (through
    # the login host), and Slurm works there too.
    ssh = cluster.testbed.ssh_argv("compute01", f"hostname; squeue -h -j {allocation.job_id} -o %N")
    proc = await asyncio.create_subprocess_exec(
        *ssh, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (proc.returncode, out.decode()) == (0, "compute01\ncompute01\n"), err.decode()

    await scheduler.release(allocation)
    await until(lambda: no_jobs(cluster), 10, "the job to leave squeue")


async def test_a_waiting_job_shows_reason_and_expected_start_then_runs(cluster: Site):
    # The node has 2 CPUs: the first job takes both, so the second waits for Resources.
    blocker_scheduler = cluster.scheduler(cpus_per_task=2)
    blocker = await blocker_scheduler.allocate(lambda event: None)
    events: list[object] = []
    waiting = asyncio.create_task(cluster.scheduler(cpus_per_task=2).allocate(events.append))
    try:

        async def reason_and_start_shown() -> bool:
            assert not waiting.done(), waiting
            return any("Resources" in m and "expected start" in m for m in progress_messages(events))

        await until(reason_and_start_shown, 15, "a progress line with the reason and the expected start")
        await blocker_scheduler.release(blocker)
        allocation = await asyncio.wait_for(waiting, 20)
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError, TetherError):
            await waiting

    assert allocation.node == "compute01" and allocation.job_id != blocker.job_id
    messages = progress_messages(events)
    pending = [m for m in messages if m.startswith(f"Slurm job {allocation.job_id} pending for 0:")]
    assert pending, messages
    assert any("Resources (waiting for resources to free up)" in m for m in pending), pending
    # The blocker ends 10 minutes after it started: that is the expected start the backfill gives.
    assert any(re.search(r"; expected start \d\d:\d\d \(in (9:[0-5]\d|10:00)\)$", m) for m in pending), pending
    assert messages[-1] == f"Slurm job {allocation.job_id} running on compute01"
    states = [m.split()[3] for m in messages if m.startswith(f"Slurm job {allocation.job_id} ")]
    assert states[0] == "submitted," and "pending" in states and states[-1] == "running"
    await cluster.scheduler().release(allocation)


async def test_a_held_job_shows_its_reason_and_cancelling_the_wait_cancels_the_job(cluster: Site):
    events: list[object] = []
    waiting = asyncio.create_task(cluster.scheduler(extra=("--hold",)).allocate(events.append))

    async def held_shown() -> bool:
        return any("JobHeldUser" in m for m in progress_messages(events))

    await until(held_shown, 10, "the held reason in the progress")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await until(lambda: no_jobs(cluster), 10, "the cancelled wait to cancel its job")
    assert any(m.endswith("JobHeldUser (held by you (scontrol release ID))") for m in progress_messages(events))


async def test_more_cpus_than_the_node_has_waits_with_the_partition_reason(cluster: Site):
    events: list[object] = []
    waiting = asyncio.create_task(cluster.scheduler(cpus_per_task=cluster.cluster.cpus + 2).allocate(events.append))

    async def reason_shown() -> bool:
        return any("PartitionConfig" in m for m in progress_messages(events))

    try:
        await until(reason_shown, 10, "the PartitionConfig reason in the progress")
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    await until(lambda: no_jobs(cluster), 10, "the job to be cancelled")


async def test_reattach_reuses_the_live_job_and_a_scancel_from_outside_is_seen(cluster: Site):
    allocation = await cluster.scheduler().allocate(lambda event: None)
    assert allocation.job_id
    recorded = Allocation(node=allocation.node, job_id=allocation.job_id)  # as the state file keeps it

    # Reattach: a new scheduler (a new `tether attach`) finds the same job, nothing is submitted.
    again = cluster.scheduler()
    found = await again.find(recorded)
    assert found is not None and (found.node, found.job_id) == ("compute01", allocation.job_id)
    assert found.ends_at is not None and abs(found.ends_at - (allocation.ends_at or 0)) < 5
    reused = await again.acquire(recorded, lambda event: None)
    assert reused.job_id == allocation.job_id
    assert cluster.cluster.jobs() == [allocation.job_id]

    # The user (or an administrator) cancels the job from another terminal.
    cancel = cluster.cluster.user_run(f"scancel {allocation.job_id}")
    assert cancel.returncode == 0, cancel.stderr
    seen_at = time.monotonic()

    async def ended() -> JobStatus | None:
        status = await again.state(allocation.job_id or "")
        return status if status.ended else None

    status = await until(ended, 10, "the cancelled job to show as ended")
    assert isinstance(status, JobStatus)
    assert time.monotonic() - seen_at < 10
    assert status.state in ("CANCELLED", "COMPLETING")
    final = await until(lambda: _final_state(again, allocation.job_id or ""), 10, "CANCELLED")
    assert (
        final is not None
        and final.state == "CANCELLED"
        and final.describe() == f"Slurm job {allocation.job_id} was cancelled"
    )
    assert await again.find(recorded) is None


async def _final_state(scheduler: SlurmScheduler, job_id: str) -> JobStatus | None:
    status = await scheduler.state(job_id)
    return status if status.state != "COMPLETING" else None


async def test_a_requeued_job_is_waited_for_not_submitted_again(cluster: Site):
    scheduler = cluster.scheduler()
    allocation = await scheduler.allocate(lambda event: None)
    assert allocation.job_id
    requeue = cluster.cluster.run(["scontrol", "requeue", allocation.job_id])
    assert requeue.returncode == 0, requeue.stderr

    async def pending_again() -> JobStatus | None:
        status = await scheduler.state(allocation.job_id or "")
        return status if status.waiting else None

    status = await until(pending_again, 10, "the requeued job to be pending")
    assert isinstance(status, JobStatus)
    assert status.describe(previous="RUNNING").startswith(f"Slurm job {allocation.job_id} was requeued (pending)")
    assert await scheduler.find(Allocation(node="compute01", job_id=allocation.job_id)) is None
    # A requeued job waits a while (BeginTime); let it start soon, as an administrator could. Not
    # in the same second as the requeue: slurmd would refuse the job's new credential as revoked.
    events: list[object] = []
    waiting = asyncio.create_task(
        scheduler.acquire(Allocation(node="compute01", job_id=allocation.job_id), events.append)
    )
    try:

        async def acquire_is_waiting() -> bool:
            return bool(progress_messages(events))

        await until(acquire_is_waiting, 10, "acquire to wait for the requeued job")
        assert "waiting for it to run again" in progress_messages(events)[0]
        cluster.cluster.run(["scontrol", "update", f"JobId={allocation.job_id}", "StartTime=now+2"])
        reused = await asyncio.wait_for(waiting, 20)
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError, TetherError):
            await waiting
    assert (reused.job_id, reused.node) == (allocation.job_id, "compute01")
    assert cluster.cluster.jobs() == [allocation.job_id]  # the same job, no second submission
    await scheduler.release(reused)


async def test_sbatch_refusal_is_a_clear_error_and_leaves_no_job(cluster: Site):
    with pytest.raises(TetherError) as caught:
        await cluster.scheduler(gpus="1").allocate(lambda event: None)  # the testbed has no GPUs
    assert (
        caught.value.message
        == "sbatch refused the holder job: sbatch: error: Invalid generic resource (gres) specification"
    )
    assert "gpus" in caught.value.fix and "--gpus=1" in caught.value.fix
    assert await no_jobs(cluster)


async def test_nodelist_expansion_matches_scontrol_show_hostnames(cluster: Site):
    for nodelist in ("gpu[01-03,07]", "n[1-2]-ib[3-4],x", "a[8-11]"):
        shown = cluster.cluster.run(["scontrol", "show", "hostnames", nodelist])
        assert shown.returncode == 0, shown.stderr
        assert expand_nodelist(nodelist) == shown.stdout.split()


def test_scheduler_for_a_slurm_workspace(tmp_path):
    from tui.config import parse_workspace
    from tui.remote.scheduler import scheduler_for

    text = '[workspace]\nremote_root = "~/w"\n[connection]\nlogin = "hpc"\n[scheduler]\nkind = "slurm"\npartition = "gpu"\n'
    workspace = parse_workspace(text, tmp_path / "tether.toml")
    assert isinstance(scheduler_for(workspace, login=None), SlurmScheduler)  # type: ignore[arg-type]


async def test_poll_reports_failed_tries_and_gives_up_after_too_many_in_a_row():
    """The waits of every holder-job scheduler: a failed squeue/qstat/kubectl is said and tried again,
    an answer resets the count, and MAX_POLL_FAILURES failures in a row end the wait."""
    answers: list[object] = [TetherError("a"), TetherError("b"), "pending", *[TetherError("c")] * MAX_POLL_FAILURES]
    slept: list[float] = []

    async def probe() -> object:
        answer = answers.pop(0)
        if isinstance(answer, TetherError):
            raise answer
        return answer

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    events: list[object] = []
    seen = []
    with pytest.raises(TetherError, match="c"):
        async for answer in poll(probe, events.append, sleep, growing_delays(0.25, 1.0)):
            seen.append(answer)
    assert seen == ["pending"]
    assert [e.message for e in events if isinstance(e, Progress)] == ["a; retrying", "b; retrying"] + [
        "c; retrying"
    ] * 4
    assert slept == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]  # quick first, then at most the interval

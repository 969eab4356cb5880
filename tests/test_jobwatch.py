"""JobWatch's words and timing, fed with the Slurm scheduler's own JobStatus (pure)."""

from tui.events import AllocationChanged, JobState, Notice
from tui.remote.jobwatch import JobWatch
from tui.remote.scheduler.slurm_status import JobStatus


def notices(events: list[object]) -> list[Notice]:
    return [e for e in events if isinstance(e, Notice)]


def allocations(events: list[object]) -> list[AllocationChanged]:
    return [e for e in events if isinstance(e, AllocationChanged)]


def test_changes_are_said_once_and_the_last_minutes_only_by_the_console():
    events: list[object] = []
    now = 1_000_000.0
    watch = JobWatch(None, "42", events.append, clock=lambda: now)  # type: ignore[arg-type]
    running = JobStatus("42", "RUNNING", nodes="compute01", time_limit=3600, time_left=3000)
    assert not watch.observe(running)
    assert not watch.observe(running)
    said = notices(events)
    assert [n.message for n in said] == ["Slurm job 42 running on compute01"]
    watch.observe(JobStatus("42", "RUNNING", nodes="compute01", time_limit=3600, time_left=590))
    # The last ten minutes: the header hears the end moved; the warning is the console's (JobAlerts).
    assert notices(events) == said and allocations(events)[-1].ends_at == now + 590
    assert watch.observe(JobStatus("42", "PREEMPTED"))
    said = notices(events)
    assert said[-1].level == "error" and "was preempted" in said[-1].message
    assert "press A" in said[-1].message  # the console's key, not a round trip through the shell


def test_the_header_hears_of_each_state_and_of_an_end_that_moved():
    events: list[object] = []
    clock = [1_000_000.0]
    watch = JobWatch(None, "42", events.append, clock=lambda: clock[0], node="compute01")  # type: ignore[arg-type]

    def poll(state: str, left: int | None = None, limit: int | None = 3600) -> None:
        watch.observe(JobStatus("42", state, nodes="compute01", time_limit=limit, time_left=left))

    poll("RUNNING", 3000)
    assert allocations(events) == [AllocationChanged("42", "compute01", 1_003_000.0, JobState.RUNNING)]
    clock[0] += 5
    poll("RUNNING", 2995)  # the same end, counted down: nothing new for the header
    clock[0] += 5
    poll("RUNNING", 2980)  # squeue's rounding: 10 s is no news either
    assert len(allocations(events)) == 1
    poll("RUNNING", 3600)  # the time limit was raised (scontrol update): the end moved 10 min
    assert allocations(events)[-1].ends_at == clock[0] + 3600
    poll("PENDING", 3600)  # requeued
    assert (allocations(events)[-1].state, allocations(events)[-1].detail) == (JobState.WAITING, "pending")
    poll("RUNNING", 3600, limit=None)  # and running again, now without a limit
    assert allocations(events)[-1] == AllocationChanged("42", "compute01", None, JobState.RUNNING)
    poll("CANCELLED")
    assert allocations(events)[-1] == AllocationChanged("42", "compute01", None, JobState.ENDED)
    assert len(allocations(events)) == 5

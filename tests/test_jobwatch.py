"""JobWatch's words and timing, fed with the Slurm scheduler's own JobStatus (pure)."""

from tui.events import Notice
from tui.remote.jobwatch import JobWatch
from tui.remote.scheduler.slurm import JobStatus


def test_changes_are_said_once_and_the_end_is_warned_10_minutes_ahead():
    said: list[Notice] = []
    now = 1_000_000.0
    watch = JobWatch(None, "42", said.append, clock=lambda: now)  # type: ignore[arg-type]
    running = JobStatus("42", "RUNNING", nodes="compute01", time_limit=3600, time_left=3000)
    assert not watch.observe(running)
    assert not watch.observe(running)
    assert [n.message for n in said] == ["Slurm job 42 running on compute01"]
    watch.observe(JobStatus("42", "RUNNING", nodes="compute01", time_limit=3600, time_left=590))
    assert said[-1].level == "warning" and "ends in 10 min" in said[-1].message
    assert watch.observe(JobStatus("42", "PREEMPTED"))
    assert said[-1].level == "error" and "was preempted" in said[-1].message and "tether up" in said[-1].message

"""The console's top line: workspace, chain of hops, the job's time left, and what the link
supervisor says."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Label

from tui.durations import describe_duration
from tui.events import JOB_ENDING_S, AllocationChanged, JobState, LinkChanged, LinkState

LAPTOP = "laptop"
"""The first hop is always the machine the console runs on; ``session.chain`` lists the rest."""


def describe_chain(chain: tuple[str, ...]) -> str:
    """``("login", "compute01")`` -> ``"laptop → login → compute01"``."""
    return " → ".join((LAPTOP, *chain))


def describe_link(link: LinkChanged) -> str:
    """The words the header shows for a link state, with the event's detail where it helps."""
    state = link.state
    if state is LinkState.UP:
        # The round trip is what the user wants to know while up; the detail adds nothing.
        return "up" if link.rtt_ms is None else f"up {round(link.rtt_ms)} ms"
    if state is LinkState.CONNECTING:
        text = "connecting…"
    elif state is LinkState.RECONNECTING:
        text = f"reconnecting (attempt {link.attempt})" if link.attempt else "reconnecting"
    else:
        text = state.value
    return f"{text} — {link.detail}" if link.detail else text


def counts_down(allocation: AllocationChanged | None) -> bool:
    """The job runs and has an end: its time left is shown and ticks."""
    return (
        allocation is not None
        and allocation.job_id is not None
        and allocation.ends_at is not None
        and allocation.state in (JobState.RUNNING, JobState.UNWATCHED)
    )


def describe_allocation(allocation: AllocationChanged | None, now: float) -> str:
    """``job 12 · 4 h 32 min left``, ``job 12 · ended``, ``job 12 · pending``; "" without a job."""
    if allocation is None or allocation.job_id is None:
        return ""
    job = f"job {allocation.job_id}"
    if allocation.state is JobState.ENDED:
        return f"{job} · ended"
    if counts_down(allocation):
        assert allocation.ends_at is not None
        return f"{job} · {describe_duration(allocation.ends_at - now)} left"
    if allocation.state in (JobState.RUNNING, JobState.UNWATCHED):
        return job  # no time limit
    return f"{job} · {allocation.detail or allocation.state.value}"


def allocation_class(allocation: AllocationChanged | None, now: float) -> str:
    """``-ended``, ``-ending`` (under ``JOB_ENDING_S`` left), ``-waiting`` (not running), or ""."""
    if allocation is None or allocation.job_id is None:
        return ""
    if allocation.state is JobState.ENDED:
        return "-ended"
    if counts_down(allocation):
        assert allocation.ends_at is not None
        return "-ending" if allocation.ends_at - now < JOB_ENDING_S else ""
    return "" if allocation.state in (JobState.RUNNING, JobState.UNWATCHED) else "-waiting"


def state_class(state: LinkState) -> str:
    """The CSS class a state gets, e.g. ``-needs-password``."""
    return "-" + state.name.lower().replace("_", "-")


class LinkStatus(Widget):
    """The link state, coloured by how worried the user should be."""

    DEFAULT_CSS = """
    LinkStatus {
        width: auto;
        max-width: 60%;
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &.-up { color: $text-success; }
        &.-connecting, &.-reconnecting { color: $text-warning; }
        &.-needs-password { color: $text-warning; text-style: bold; }
        &.-lost { color: $text-error; text-style: bold; }
        &.-closed { color: $text-muted; }
    }
    """

    link: reactive[LinkChanged] = reactive(LinkChanged(LinkState.CONNECTING), layout=True)
    """The last LinkChanged event; the console starts connecting as soon as it is mounted."""

    def render(self) -> str:
        return f"● {describe_link(self.link)}"

    def watch_link(self, link: LinkChanged) -> None:
        for state in LinkState:
            self.set_class(state is link.state, state_class(state))


class JobClock(Widget):
    """The scheduler's job and its time left, counted down here once a second: the node is asked
    only when the job changes (``AllocationChanged``). Hidden without a job (direct hosts)."""

    DEFAULT_CSS = """
    JobClock {
        display: none;
        width: auto;
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        color: $text-muted;
        &.-shown { display: block; }
        &.-waiting { color: $text-warning; }
        &.-ending { color: $text-warning; text-style: bold; }
        &.-ended { color: $text-error; text-style: bold; }
    }
    """

    STATE_CLASSES = ("-waiting", "-ending", "-ended")

    allocation: reactive[AllocationChanged | None] = reactive(None, layout=True)
    """The last AllocationChanged event; None until the session names a job."""

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._timer: Timer | None = None

    def on_mount(self) -> None:
        self._timer = self.set_interval(1.0, self._tick, pause=True)
        self._follow(self.allocation)

    def render(self) -> str:
        return describe_allocation(self.allocation, self._clock())

    def watch_allocation(self, allocation: AllocationChanged | None) -> None:
        self._follow(allocation)

    def _follow(self, allocation: AllocationChanged | None) -> None:
        self.set_class(allocation is not None and allocation.job_id is not None, "-shown")
        self._tick()
        if self._timer is not None:
            if counts_down(allocation):
                self._timer.resume()
            else:
                self._timer.pause()

    def _tick(self) -> None:
        shown = allocation_class(self.allocation, self._clock())
        for name in self.STATE_CLASSES:
            self.set_class(name == shown, name)
        self.refresh(layout=True)  # the text gets shorter as time runs out

    @property
    def text(self) -> str:
        """What the clock shows now, without styling."""
        return describe_allocation(self.allocation, self._clock())


class LinkHeader(Horizontal):
    """Workspace name, the hops from the laptop to the node, and the link state."""

    DEFAULT_CSS = """
    LinkHeader {
        dock: top;
        height: 1;
        background: $panel;
        #workspace { padding: 0 1; text-style: bold; color: $text-primary; }
        #chain { width: 1fr; padding: 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    }
    """

    def __init__(self, workspace: str, chain: tuple[str, ...], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._workspace = workspace
        self._chain = chain

    def compose(self) -> ComposeResult:
        yield Label(self._workspace, id="workspace")
        yield Label(describe_chain(self._chain), id="chain")
        yield JobClock()
        yield LinkStatus()

    def show_link(self, link: LinkChanged) -> None:
        """Show a new link state (the app calls this for every LinkChanged)."""
        self.query_one(LinkStatus).link = link

    def show_allocation(self, allocation: AllocationChanged) -> None:
        """Show the job behind the node (the app calls this for every AllocationChanged)."""
        self.query_one(JobClock).allocation = allocation

    def show_chain(self, chain: tuple[str, ...]) -> None:
        """Show the hops again: a scheduler names the node only once the job runs."""
        if chain != self._chain:
            self._chain = chain
            self.query_one("#chain", Label).update(describe_chain(chain))

    @property
    def job_text(self) -> str:
        """The job and its time left as shown ("" without a job), for tests and screen readers."""
        return self.query_one(JobClock).text

    @property
    def link_text(self) -> str:
        """The link state as shown, without styling (for tests and screen readers)."""
        return describe_link(self.query_one(LinkStatus).link)

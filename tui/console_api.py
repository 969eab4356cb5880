"""The contract between the console (Textual) and the core session it shows.

The app depends only on this protocol, so UI tests can drive it with a scripted session and the
real ``tui.session.Session`` can evolve without touching widgets.
"""

from __future__ import annotations

from typing import Protocol

from tui.events import EventSink, OutputPage


class ConsoleSession(Protocol):
    """What the console needs from a workspace session."""

    @property
    def title(self) -> str:
        """The workspace name shown in the header."""

    @property
    def chain(self) -> tuple[str, ...]:
        """The hops from the laptop to the node, e.g. ("login", "compute01")."""

    async def run(self, sink: EventSink) -> None:
        """Connect and supervise the link until cancelled, reporting events to ``sink``."""

    async def detach(self) -> None:
        """Leave the console: everything on the node keeps running."""

    async def down(self, sink: EventSink) -> list[str]:
        """Stop everything the session runs (the run, tmux, the job, the connections); returns
        what was stopped, for the user."""

    async def reconnect_now(self) -> None:
        """While the link waits between reconnect attempts: try again at once. Optional: the
        console shows its key only for sessions that have it."""

    def answer_prompt(self, answer: str | None) -> None:
        """Reply to a PasswordPrompt event (None cancels)."""

    def attach_argv(self) -> list[str] | None:
        """argv that attaches the node's tmux session in this terminal (`ssh -t ... tmux attach`);
        None while the node is not connected."""

    async def rebuild_layout(self) -> None:
        """Kill the workspace's tmux session (and the run) on the node and lay it out again."""

    async def restart_run(self) -> object:
        """Restart the run on the node (every rank's debug loop)."""

    async def stop_run(self) -> object:
        """Stop the run; its loops wait for a restart."""

    async def provide_debugpy(self) -> str:
        """Copy Tether's own debugpy to the node for a run whose python has none; restart the run."""

    async def allocate_again(self) -> None:
        """The job has ended: forget it and reconnect at once, so the scheduler gives a new one.
        Raises TetherError (shown to the user) where there is no job to replace or it still runs."""

    async def allow_sync_deletes(self) -> None:
        """Release a sync halt: do what it held back (the deletes, or the node's own files deleted
        or replaced)."""

    def pause_sync(self) -> None:
        """Hold edits on the laptop (still watched, none lost) until ``resume_sync``."""

    def resume_sync(self) -> None:
        """Send what was held back while paused, and go on syncing."""

    async def rescan_sync(self) -> None:
        """Compare both trees again; sync goes on if no safety rule holds any more."""

    async def keep_sync_theirs(self) -> str:
        """The node's own files a halt named move to the remote root's backup folder; sync goes
        on. Returns that folder ("" when the halt was of another kind)."""

    async def page_output(self, before: int | None, count: int) -> OutputPage:
        """A page of the run's whole log on the node, ``count`` lines ending at byte ``before``
        (None: the end)."""

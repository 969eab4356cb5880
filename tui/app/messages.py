"""Textual messages that carry core events (``tui.events``) into the console.

The core reports through a plain ``EventSink`` callable and knows nothing of Textual. ``EventForwarder``
is that sink on the console side: it wraps each event in one of the messages below and posts it to
the app. ``post_message`` is the one thread-safe way into Textual, so the core may call the sink from
any thread (an ssh reader thread, an asyncio task, a watchdog observer).
"""

from __future__ import annotations

from textual.message import Message
from textual.message_pump import MessagePump

from tui.events import (
    AllocationChanged,
    DebuggerWaiting,
    DebugOutput,
    DebugView,
    GpuStats,
    LayoutChanged,
    LinkChanged,
    NodeStats,
    Notice,
    OutputLines,
    PasswordPrompt,
    Progress,
    RunProcesses,
    RunState,
    SyncConflict,
    SyncHaltReport,
    SyncProgress,
    SyncStatus,
)


class LinkUpdated(Message):
    """The link supervisor reported a new link state."""

    def __init__(self, link: LinkChanged) -> None:
        super().__init__()
        self.link = link


class AllocationUpdated(Message):
    """The session acquired a job, or the job's state or end time changed."""

    def __init__(self, allocation: AllocationChanged) -> None:
        super().__init__()
        self.allocation = allocation

    def can_replace(self, message: Message) -> bool:
        # Whole snapshots: a newer one waiting in the queue makes this one moot.
        return isinstance(message, AllocationUpdated)


class NoticePosted(Message):
    """The core has something for the user to read."""

    def __init__(self, notice: Notice) -> None:
        super().__init__()
        self.notice = notice


class ProgressReported(Message):
    """A step of long work moved on."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        # A fast producer (rsync percentages) must not flood the queue: when a newer report for
        # the same task is already waiting, this one is dropped unseen.
        return isinstance(message, ProgressReported) and message.progress.task == self.progress.task


class PasswordRequested(Message):
    """ssh asks for a secret; the app must answer through ``ConsoleSession.answer_prompt``."""

    def __init__(self, prompt: PasswordPrompt) -> None:
        super().__init__()
        self.prompt = prompt


class OutputReceived(Message):
    """New lines of the run's output (never coalesced: every line counts)."""

    def __init__(self, output: OutputLines) -> None:
        super().__init__()
        self.output = output


class NodeUpdated(Message):
    """A new snapshot of one node panel: ``NodeStats``, ``RunProcesses``, ``GpuStats`` or ``LayoutChanged``."""

    def __init__(self, snapshot: NodeStats | RunProcesses | GpuStats | LayoutChanged) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        # Snapshots are whole: a newer one of the same kind makes a waiting older one moot.
        return isinstance(message, NodeUpdated) and type(message.snapshot) is type(self.snapshot)


class RunUpdated(Message):
    """A new snapshot of the run's ranks (``RunState``) or a breakpoint() waiting (``DebuggerWaiting``)."""

    def __init__(self, event: RunState | DebuggerWaiting) -> None:
        super().__init__()
        self.event = event


class DebugUpdated(Message):
    """The console's debugger of a rank changed (``DebugView``) or relayed output (``DebugOutput``)."""

    def __init__(self, event: DebugView | DebugOutput) -> None:
        super().__init__()
        self.event = event


class UnhandledEvent(Message):
    """An event this console version does not show yet (newer core, dashboards still to come)."""

    def __init__(self, event: object) -> None:
        super().__init__()
        self.event = event


def message_for(event: object) -> Message:
    """The message that carries ``event``; unknown events are wrapped, never dropped silently."""
    if isinstance(event, LinkChanged):
        return LinkUpdated(event)
    if isinstance(event, AllocationChanged):
        return AllocationUpdated(event)
    if isinstance(event, Notice):
        return NoticePosted(event)
    if isinstance(event, Progress):
        return ProgressReported(event)
    if isinstance(event, PasswordPrompt):
        return PasswordRequested(event)
    if isinstance(event, OutputLines):
        return OutputReceived(event)
    if isinstance(event, (NodeStats, RunProcesses, GpuStats, LayoutChanged)):
        return NodeUpdated(event)
    if isinstance(event, (RunState, DebuggerWaiting)):
        return RunUpdated(event)
    if isinstance(event, (DebugView, DebugOutput)):
        return DebugUpdated(event)
    if isinstance(event, (SyncStatus, SyncProgress, SyncConflict, SyncHaltReport)):
        return SyncReported(event)
    return UnhandledEvent(event)


class SyncReported(Message):
    """The mirror on the node changed state, made progress, or kept a conflict copy."""

    def __init__(self, event: SyncStatus | SyncProgress | SyncConflict | SyncHaltReport) -> None:
        super().__init__()
        self.event = event


class EventForwarder:
    """An ``EventSink`` that posts each core event to ``target`` as a Textual message."""

    def __init__(self, target: MessagePump) -> None:
        self._target = target

    def __call__(self, event: object) -> None:
        # post_message returns False once the app is closing; late events are then moot.
        self._target.post_message(message_for(event))

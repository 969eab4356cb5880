"""The console's own keys: every binding has an id (``tether.<action>``) so ``[ui.keys]`` remaps it
(``App.set_keymap``), and the actions that the app enables and dims by state (see ``check_action``)."""

from __future__ import annotations

from textual.binding import Binding, BindingType

NEW_JOB_ACTION = "allocate_again"
SYNC_HALT_ACTION = "sync_halt"
RECONNECT_ACTION = "reconnect_now"

APP_BINDINGS: tuple[BindingType, ...] = (
    Binding(
        "question_mark",
        "help",
        "Help",
        key_display="?",
        tooltip="Show every key and what it does",
        id="tether.help",
    ),
    Binding(
        "q",
        "detach",
        "Detach",
        tooltip="Leave the console; everything keeps running on the node",
        id="tether.detach",
    ),
    Binding(
        "a",
        "attach",
        "Attach tmux",
        tooltip="Suspend the console and attach the tmux session on the node; detach (C-b d) to return",
        id="tether.attach",
    ),
    Binding("l", "logs", "Logs", tooltip="Page through the run's whole output, kept on the node", id="tether.logs"),
    Binding(
        "r",
        "restart_run",
        "Restart",
        tooltip="Restart the debuggee on the node (like Ctrl-C in the run pane)",
        id="tether.restart",
    ),
    Binding(
        "x",
        "stop_run",
        "Stop",
        tooltip="Stop the debuggee; the loop waits, r starts it again",
        id="tether.stop",
    ),
    Binding("t", "cycle_theme", "Theme", tooltip="Switch to the next Tether theme", id="tether.theme"),
    Binding(
        "b",
        "debug",
        "Debug",
        tooltip="Open the debugger: breakpoints (F9), stack, variables, a console (F5 continue, F10 over)",
        id="tether.debug",
    ),
    # Shown only where the scheduler gives jobs; dimmed while the job runs (see check_action).
    Binding(
        "A",
        NEW_JOB_ACTION,
        "New job",
        key_display="A",
        tooltip="The job has ended: forget it, ask the scheduler for a new one and reconnect",
        id="tether.new_job",
    ),
    # Shown only while the link waits between reconnect attempts (see check_action).
    Binding(
        "R",
        RECONNECT_ACTION,
        "Reconnect now",
        key_display="R",
        tooltip="The link waits before its next try (the wait grows to 30 s): try again at once",
        id="tether.reconnect",
    ),
    # Shown only while sync is halted on a safety rule (see check_action).
    Binding(
        "s",
        SYNC_HALT_ACTION,
        "Sync halt",
        tooltip="Sync is halted: see what would go and allow it, keep the node's files, or rescan",
        id="tether.sync_halt",
    ),
    # Declared here (Textual adds an id-less one otherwise) so the palette key is remappable too.
    Binding(
        "ctrl+p",
        "command_palette",
        "Commands",
        show=False,
        priority=True,
        tooltip="Open the command palette",
        id="tether.palette",
    ),
)

"""The pdb screen: breakpoint() in a run whose python has no debugpy waits in pdb on the node, on
a Unix socket only its owner reaches; the console carries it over the agent's channel. The lines
pdb writes, and a line to answer it; Escape leaves it (pdb sees the console go and lets the run
go on, as after ``c``; it never quits the run)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, RichLog, Static

from tui.app.widgets.footer import FittingFooter
from tui.app.widgets.history_input import HistoryInput

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PdbScreen(Screen[None]):
    DEFAULT_CSS = """
    PdbScreen #pdb-status { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    PdbScreen #pdb-log { height: 1fr; border: round $primary 50%; background: $surface; }
    PdbScreen #pdb-input { height: 1; border: none; padding: 0 1; background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", key_display="Esc")]

    def __init__(self, open_stream: Callable[[], Awaitable[Streams]], rank: int, where: str) -> None:
        super().__init__()
        self._open = open_stream
        self.rank = rank
        self.where = where
        self._writer: asyncio.StreamWriter | None = None
        self.ended = False

    def compose(self) -> ComposeResult:
        yield Static(f"rank {self.rank} · pdb at {self.where} (no debugpy for this run's python)", id="pdb-status")
        yield RichLog(id="pdb-log", wrap=True, markup=False, max_lines=5000)
        yield HistoryInput(placeholder="a pdb command: p x, n, s, c (continue), where", id="pdb-input")
        yield FittingFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one(RichLog).border_title = "pdb on the node"
        self.query_one(HistoryInput).focus()
        self._talk()

    @work(exclusive=True, group="pdb")
    async def _talk(self) -> None:
        log = self.query_one(RichLog)
        try:
            reader, self._writer = await self._open()
        except Exception as exc:  # noqa: BLE001 - said where the user looks
            log.write(Text(f"cannot open the pdb: {exc}", style="red"))
            return
        while line := await reader.readline():
            text = line.decode("utf-8", "replace").rstrip("\n")
            log.write(Text(text, style="bold") if text.startswith("(Pdb)") else text)
        self.ended = True
        self._writer = None
        log.write(Text("pdb let go: the run goes on.", style="dim"))
        self.query_one("#pdb-status", Static).update(f"rank {self.rank} · the run goes on (pdb ended)")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value
        event.input.value = ""
        self.query_one(HistoryInput).remember(text)
        if self._writer is None:
            self.notify("pdb is not connected.", title="pdb", severity="warning")
            return
        self.query_one(RichLog).write(Text(f"> {text}", style="dim"))
        self._writer.write(text.encode() + b"\n")

    def action_back(self) -> None:
        if self._writer is not None:
            self._writer.close()  # pdb reads the end and goes on, as after c
        self.dismiss(None)

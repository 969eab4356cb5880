"""Reading the console's screen in pilot tests."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable

from textual.app import App
from textual.command import CommandList
from textual.pilot import Pilot

from tui.app.widgets import LinkStatus
from tui.app.widgets.link_header import describe_link


def screen_text(app: App) -> str:
    """Everything on the terminal as plain text (from the SVG screenshot, a public API)."""
    svg = app.export_screenshot()
    body = svg.split("</style>", 1)[-1]  # drop the CSS block, keep the drawn text
    return html.unescape(re.sub(r"<[^>]+>", "", body)).replace("\xa0", " ")


def header_state(app: App) -> str:
    return describe_link(app.query_one(LinkStatus).link)


async def wait_until(pilot: Pilot, condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let the app work until ``condition`` holds; fail after ``seconds`` (never a bare sleep)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {seconds} s: {condition}")
        await pilot.pause(0.02)


async def run_from_palette(app: App, pilot: Pilot, command: str) -> None:
    """Open the command palette, type ``command``, wait until it is the top hit, run it."""
    await pilot.press("ctrl+p")
    await pilot.pause()
    await pilot.press(*command)

    def found() -> bool:  # the palette searches in the background: wait for our command on top
        hits = app.screen.query(CommandList)
        return (
            bool(hits)
            and hits.first().option_count > 0
            and str(hits.first().get_option_at_index(0).prompt).startswith(command)
        )

    await wait_until(pilot, found)
    await pilot.press("enter")
    await pilot.pause()

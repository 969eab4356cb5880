"""``while_open``: the guard on the app's core-event handlers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from textual.app import App

A = TypeVar("A", bound=App[Any])
M = TypeVar("M")


def while_open(handler: Callable[[A, M], None]) -> Callable[[A, M], None]:
    """Run a core-event handler only while the console is open.

    The core posts from its own threads, so events can still be queued when the console closes;
    by then the dashboard's widgets are being removed and there is nothing left to show them on.
    """

    @wraps(handler)
    def handle(app: A, message: M) -> None:
        if app.is_running:
            handler(app, message)

    return handle

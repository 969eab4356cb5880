"""Deadline-based waiting: tests poll a condition instead of sleeping a fixed time."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.01,
    what: str = "",
) -> T:
    """Return the first truthy value of ``predicate()``; raise TimeoutError at the deadline.

    The predicate is always tried once more after the deadline, so a slow machine that
    reaches the condition exactly at the limit does not fail spuriously.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= deadline
        result = predicate()
        if result:
            return result
        if last:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what or predicate!r}")
        time.sleep(interval)


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just considered free; the caller must bind it soon (racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

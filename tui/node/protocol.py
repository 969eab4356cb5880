"""The agent protocol: JSON objects, one per line, over the agent's ssh channel.

Shared by the node agent and the laptop side, so stdlib only (it is shipped to the node).

Requests carry an ``id`` and an ``op``; the reply carries the same ``id``. Messages without an
``id`` are events (the agent's ``hello``, later pane output and stats). Version 1 knows:
  hello  (agent -> laptop, first line): protocol, version, python, host, pid
  ping   -> pong {time}
  bye    -> bye, then the agent exits
  error  (agent -> laptop): {error}, with the request's id when it had one
Later capabilities (sync, tmux, stats, the debug loop) add their own ops; an agent that does not
know an op answers with an error and keeps going.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1

# Lines longer than this are refused rather than buffered without end.
MAX_LINE_BYTES = 16 * 1024 * 1024


class MalformedMessage(ValueError):
    """A line that is not a JSON object with an ``op``."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line of compact JSON."""
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse one line; raises MalformedMessage with a short reason."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessage("not a JSON object")
    if not isinstance(message.get("op"), str):
        raise MalformedMessage("no 'op' field")
    return message

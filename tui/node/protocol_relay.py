"""The relay's messages: ``relay.open``, ``relay.send`` and ``relay.close``, the ``relay.data``
and ``relay.closed`` events, as both ends see them (``tui.node.relay`` says what they do).

Types and constants only, stdlib only: shipped to the node and imported by the laptop too.
"""

from __future__ import annotations

from typing import TypedDict

from tui.node.protocol import Op

SEND = "relay.send"  # no id and no reply, like CLOSE
CLOSE = "relay.close"
DATA = "relay.data"
CLOSED = "relay.closed"


class RelayTarget(TypedDict, total=False):
    """Where a stream goes on the node: a port on 127.0.0.1, or a run's pdb socket."""

    port: int
    dap: bool  # the stream is a debug adapter's: the node answers each stop's requests itself
    pdb: str  # the pdb socket's path


class _Stream(TypedDict):
    stream: str  # named by the laptop, unique on the channel


class RelayOpen(_Stream, RelayTarget):
    pass


class RelayOpened(_Stream):
    op: str  # "relay.opened"


class RelayClose(_Stream):
    op: str  # CLOSE


class RelayClosed(_Stream):
    op: str  # CLOSED


class RelaySend(_Stream):
    op: str  # SEND
    data: str  # base64


class RelayData(_Stream):
    op: str  # DATA
    data: str  # base64


OPEN: Op[RelayOpen, RelayOpened] = Op("relay.open")

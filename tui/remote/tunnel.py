"""Local port forwards to the node: the debug port(s) and [ports] (tensorboard ...).

Each forward is added to the node's ControlMaster with ``ssh -O forward`` (about 10 ms, no new
login) and listens on 127.0.0.1 only: on a shared laptop or a VPN, a forward on every interface
would hand the debugger (and so code execution on the node) to anyone who can reach it. The node
side is 127.0.0.1 too, where debugpy listens. A new master after a reconnect has no forwards, so
``Tunnels`` re-adds them whenever the link comes back up.

A pod's forwards are ``kubectl port-forward``s, restarted by themselves when they drop
(``kept_forward``). Where the node is reached through Slurm steps rather than ssh, a forward is a
``PortRelay``: it listens on the laptop and carries each connection over the agent's channel. Both
keep listening across reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass

from tui.errors import TetherError
from tui.events import EventSink, LinkChanged, LinkState, Notice
from tui.node.protocol import Message
from tui.remote.agent_channel import AgentChannel
from tui.remote.relay import PortRelay
from tui.remote.scheduler.kube_forward import ForwardChanged, ForwardState
from tui.remote.ssh import ControlMaster, KeptForward, control_argv, run_argv

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Forward:
    """laptop 127.0.0.1:local -> node 127.0.0.1:remote."""

    name: str
    remote_port: int
    local_port: int

    @property
    def spec(self) -> str:
        return f"{LOOPBACK}:{self.local_port}:{LOOPBACK}:{self.remote_port}"


class TunnelError(TetherError):
    pass


def free_local_port(preferred: int = 0) -> int:
    """``preferred`` when it is free on 127.0.0.1, else a port the kernel picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            found: int = probe.getsockname()[1]
            return found
    raise TunnelError("no free local port on 127.0.0.1")


def accepts(port: int, timeout: float = 0.5) -> bool:
    """Whether something listens on 127.0.0.1:port (the forward's laptop end)."""
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=timeout):
        return True
    return False


class Tunnels:
    """The workspace's forwards, kept in place across reconnects."""

    def __init__(
        self,
        master: Callable[[], ControlMaster],
        sink: EventSink = lambda event: None,
        *,
        agent: Callable[[], AgentChannel | None] = lambda: None,
        remembered: dict[str, tuple[int, int]] | None = None,
        on_ports: Callable[[dict[str, tuple[int, int]]], None] = lambda ports: None,
    ) -> None:
        """``remembered``: name -> (laptop port, node port) of an earlier console of this session
        (the session record), taken again so the laptop ports stay the same across `tether attach`;
        ``on_ports`` is told the forwards' ports whenever they change, to remember them."""
        self._master = master  # read anew each time: a reconnect may bring a new master
        self._sink = sink
        self._agent = agent
        self._remembered: dict[str, tuple[int, int]] = dict(remembered or {})
        self._on_ports = on_ports
        self._forwards: dict[str, Forward] = {}
        self._relays: dict[str, PortRelay] = {}
        self._kept: dict[str, KeptForward] = {}
        self._restoring: asyncio.Task[None] | None = None

    @property
    def forwards(self) -> tuple[Forward, ...]:
        return tuple(self._forwards.values())

    async def add(self, name: str, remote_port: int, local_port: int = 0) -> Forward:
        """Forward ``remote_port`` on the node to a local port (``local_port`` if free)."""
        existing = self._forwards.get(name)
        if existing is not None and existing.remote_port == remote_port:
            await self._request(existing)
            return existing
        if existing is not None:
            await self.remove(name)
            local_port = local_port or existing.local_port  # keep the laptop port (launch.json names it)
        remembered = self._remembered.get(name)
        if remembered is not None:
            local_port = local_port or remembered[0]
            # An earlier console's forward may still listen on the master (a crash, a master kept by
            # ControlPersist): cancel it, or it would keep the port and a second listener would pile up.
            await self._cancel_stale(Forward(name, remembered[1], remembered[0]))
        forward = Forward(name, remote_port, free_local_port(local_port))
        await self._request(forward)
        self._forwards[name] = forward
        self._tell_port(forward, wanted=local_port)
        return forward

    def _tell_port(self, forward: Forward, *, wanted: int) -> None:
        """Say where the forward listens on the laptop, and remember it for the next console."""
        taken = f" (127.0.0.1:{wanted} was taken)" if wanted and wanted != forward.local_port else ""
        self._sink(
            Notice(f"{forward.name}: laptop 127.0.0.1:{forward.local_port} → node port {forward.remote_port}{taken}")
        )
        if self._remembered.get(forward.name) != (forward.local_port, forward.remote_port):
            self._remembered[forward.name] = (forward.local_port, forward.remote_port)
            self._on_ports(dict(self._remembered))

    async def _cancel_stale(self, forward: Forward) -> None:
        with contextlib.suppress(Exception):
            master = self._master()
            if master.forwards_ports:
                await self._cancel(master, forward)

    async def _cancel(self, master: ControlMaster, forward: Forward) -> bool:
        """``ssh -O cancel`` of the forward on ``master``; True when the master took it."""
        result = await run_argv(control_argv(master.settings, master.hop, "cancel", "-L", forward.spec), timeout=10)
        return result.ok

    async def remove(self, name: str) -> None:
        forward = self._forwards.pop(name, None)
        relay = self._relays.pop(name, None)
        kept = self._kept.pop(name, None)
        if relay is not None:
            await relay.close()
        elif kept is not None:
            await kept.close()
        elif forward is not None:
            master = self._master()
            if master.forwards_ports and not await self._cancel(master, forward):
                self._sink(
                    Notice(
                        f"could not cancel the {forward.name} forward on 127.0.0.1:{forward.local_port}",
                        level="warning",
                    )
                )

    async def restore(self) -> None:
        """Re-add every forward on the current master (after a reconnect)."""
        for forward in self.forwards:
            try:
                await self._request(forward)
            except TunnelError as exc:
                self._sink(Notice(str(exc), level="warning"))

    def on_link(self, change: LinkChanged) -> None:
        """A LinkSupervisor listener: forwards come back by themselves when the link does."""
        if change.state is LinkState.UP and self._forwards:
            self._restoring = asyncio.get_running_loop().create_task(self.restore())

    def handle(self, message: Message) -> bool:
        """Pass an agent event to the relays; True when it was relayed bytes of one of them."""
        return any(relay.handle(message) for relay in self._relays.values())

    async def close(self) -> None:
        if self._restoring is not None:
            self._restoring.cancel()  # a restore racing the close would open a listener again
        for name in list(self._forwards):
            with contextlib.suppress(Exception):
                await self.remove(name)

    async def _request(self, forward: Forward) -> None:
        master = self._master()
        if not master.forwards_ports:
            await self._own_or_relay(master, forward)
            return
        argv = control_argv(master.settings, master.hop, "forward", "-L", forward.spec)
        result = await run_argv(argv, timeout=10)
        if not result.ok:
            raise TunnelError(
                f"could not forward {forward.name} (node port {forward.remote_port}) to 127.0.0.1:{forward.local_port}: "
                f"{result.stderr.strip()}",
                fix="another program may have taken the local port: set a different local port in [ports]",
            )

    async def _own_or_relay(self, master: ControlMaster, forward: Forward) -> None:
        """The route's own kept-alive forward where it has one, else a relay on the agent channel."""
        if forward.name in self._relays:
            return  # already listening; it follows the agent channel across reconnects
        kept = master.kept_forward(forward.local_port, forward.remote_port, self._kept_forward_events(forward))
        if kept is None:
            await self._relay(forward)
            return
        running = self._kept.get(forward.name)
        if running is not None and running.target == kept.target:
            return  # it restarts by itself when it drops
        if running is not None:  # the session moved to another pod (a rollout): same laptop port
            del self._kept[forward.name]
            await running.close()
        try:
            await kept.start()
        except TetherError as exc:
            raise TunnelError(
                f"could not forward {forward.name} (port {forward.remote_port}): {exc.message}", fix=exc.fix
            ) from None
        self._kept[forward.name] = kept

    def _kept_forward_events(self, forward: Forward) -> EventSink:
        def tell(event: object) -> None:
            if isinstance(event, ForwardChanged) and event.state is ForwardState.RESTARTING:
                detail = f": {event.detail}" if event.detail else ""  # kubectl's own complaint
                self._sink(Notice(f"{forward.name} forward dropped, restarting{detail}", level="warning"))

        return tell

    async def _relay(self, forward: Forward) -> None:
        """Listen on the laptop and carry connections over the agent channel (no ssh to the node)."""
        relay = PortRelay(forward.name, forward.remote_port, forward.local_port, self._agent)
        try:
            await relay.start()
        except OSError as exc:
            raise TunnelError(
                f"could not listen on 127.0.0.1:{forward.local_port} for {forward.name}: {exc}",
                fix="another program may have taken the local port: set a different local port in [ports]",
            ) from None
        self._relays[forward.name] = relay

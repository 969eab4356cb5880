"""The way to a workspace's node: the hops (login, jumps, node), the node route (ssh, srun steps or
kubectl exec) and the session record that says which job and node an earlier console used.

The console's ``Session``, ``tether sync`` and ``tether doctor`` share it; it holds no console.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from typing import cast

from tui.config import HostSpec, Workspace
from tui.events import EventSink, Notice
from tui.node.protocol_layout import DownReply
from tui.remote.agent_channel import launch_agent
from tui.remote.panels import agent_environment
from tui.remote.pod import PodRoute
from tui.remote.scheduler import scheduler_for
from tui.remote.scheduler.base import Allocation
from tui.remote.scheduler.kube import KubeScheduler, bare_name
from tui.remote.srun import SSH, reach_node, route_for_record
from tui.remote.ssh import ControlMaster, Destination, Hop, SshSettings
from tui.state import SessionRecord, StateStore, runtime_dir, workspace_id


def destination_of(spec: HostSpec) -> Destination:
    return Destination(spec.host, spec.user, spec.port)


class Route:
    """A workspace's hops, its scheduler and its session record."""

    def __init__(self, workspace: Workspace, store: StateStore | None = None) -> None:
        self.workspace = workspace
        self.ws_id = workspace_id(workspace.config_path)
        self.store = store or StateStore()
        self.runtime = runtime_dir()
        connection = workspace.connection
        self.settings = SshSettings(
            ssh_config=connection.ssh_config,
            connect_timeout=connection.connect_timeout,
            control_persist=connection.control_persist,
        )
        self.login_hop = Hop(
            destination_of(connection.login),
            self.runtime / f"{self.ws_id}-l",
            jumps=tuple(destination_of(j) for j in connection.jump),
        )
        # A pod is reached with kubectl exec from the laptop: no login host, no ssh at all.
        self.uses_pod = workspace.scheduler.kind == "kube"
        self.scheduler = scheduler_for(workspace, ControlMaster(self.settings, self.login_hop))

    def chain(self, allocation: Allocation | None) -> tuple[str, ...]:
        """The hosts on the way to the node, for the console's title bar."""
        if self.uses_pod:
            return (f"pod {bare_name(allocation.node)}" if allocation else "pod",)
        login = self.workspace.connection.login.host
        node = allocation.node if allocation else self.workspace.connection.node
        if self.workspace.connection.node_from_scheduler and not (allocation and allocation.node):
            node = f"{self.scheduler.kind} node"
        return (login,) if not node or node == login else (login, node)

    def login_master(self, settings: SshSettings | None = None) -> ControlMaster:
        return ControlMaster(settings or self.settings, self.login_hop)

    def node_master(self, node: str, settings: SshSettings | None = None) -> ControlMaster | None:
        """The master for ``node`` through the login master; None when the node is the login host."""
        if not node or node == self.workspace.connection.login.host:
            return None
        # One socket per node: a new job on another node must never reuse the old node's master.
        tag = hashlib.sha256(node.encode()).hexdigest()[:6]
        hop = Hop(Destination.parse(node), self.runtime / f"{self.ws_id}-n{tag}", via=self.login_hop)
        return ControlMaster(settings or self.settings, hop)

    async def login(self) -> None:
        """Log in to the login host (a pod needs no login: kubectl uses the user's kube config)."""
        if not self.uses_pod:
            await self.login_master().start()

    async def reach(
        self, allocation: Allocation, settings: SshSettings, access: str, sink: EventSink
    ) -> ControlMaster | None:
        """The route to ``allocation``'s node: kubectl exec for a pod, else ssh or srun steps
        (``access``), probed as ``reach_node`` does."""
        if self.uses_pod:
            return PodRoute(self.kube_scheduler, allocation.node)
        return await reach_node(
            self.node_master(allocation.node, settings),
            self.login_master(settings),
            job_id=allocation.job_id,
            node=allocation.node,
            access=access,
            sink=sink,
        )

    def session_record(self) -> SessionRecord | None:
        """The workspace's record, when it is of this scheduler kind (the config may have changed)."""
        record = self.store.load(self.ws_id)
        return record if record is not None and record.scheduler == self.scheduler.kind else None

    def recorded_allocation(self) -> Allocation | None:
        record = self.session_record()
        return Allocation(node=record.node, job_id=record.job_id) if record is not None else None

    @property
    def node_access(self) -> str:
        """How to reach a job's node: "ssh", "srun" or "auto" (Slurm's node_access)."""
        slurm = self.workspace.scheduler.slurm
        return slurm.node_access if slurm is not None else SSH

    def remembered_ports(self) -> dict[str, tuple[int, int]]:
        """name -> (laptop port, node port) of the forwards an earlier console of this session had."""
        record = self.store.load(self.ws_id)
        ports = record.extra.get("ports", {}) if record is not None else {}
        return {
            str(name): (int(pair[0]), int(pair[1]))
            for name, pair in ports.items()
            if isinstance(pair, (list, tuple)) and len(pair) == 2
        }

    def remember_ports(self, ports: dict[str, tuple[int, int]]) -> None:
        """Keep the forwards' laptop ports in the session record: `tether attach` takes them again."""
        record = self.store.load(self.ws_id)
        if record is not None:
            extra = record.extra.copy()
            extra["ports"] = {name: list(pair) for name, pair in ports.items()}
            self.store.save(dataclasses.replace(record, extra=extra))

    def record(self, allocation: Allocation, access: str = SSH) -> None:
        previous = self.store.load(self.ws_id)
        self.store.save(
            SessionRecord(
                workspace=self.workspace.name,
                config_path=str(self.workspace.config_path),
                login=self.workspace.connection.login.text,
                node=allocation.node,
                scheduler=self.scheduler.kind,
                job_id=allocation.job_id,
                node_access=access,
                extra=previous.extra if previous is not None else {},  # the laptop ports, kept
            )
        )

    @property
    def kube_scheduler(self) -> KubeScheduler:
        """The scheduler, for a pod session (``uses_pod``): a pod is reached through it."""
        if not isinstance(self.scheduler, KubeScheduler):
            raise TypeError(f"a {self.scheduler.kind} session has no pod")
        return self.scheduler

    def recorded_route(self) -> ControlMaster | None:
        """The way to the recorded node, as the session reached it (ssh, srun steps or kubectl
        exec), without probing: `tether down` and `tether sync` must not wait on a refused ssh."""
        record = self.session_record()
        if self.uses_pod:
            return PodRoute(self.kube_scheduler, record.node) if record is not None and record.node else None
        node = record.node if record is not None else self.workspace.connection.node
        return route_for_record(
            self.node_master(node),
            self.login_master(),
            job_id=record.job_id if record is not None else None,
            node=node,
            access=record.node_access if record is not None else SSH,
        )

    async def down(self, sink: EventSink, recorded: Allocation | None) -> list[str]:
        """Stop everything the session left running (its console detached; ``recorded`` is the
        allocation read before that); returns what was stopped, for the user."""
        stopped: list[str] = []
        node = self.recorded_route()
        stopped += await self._stop_on_node(node, sink)
        if node is not None and await node.stop():
            stopped.append(f"connection to {node.name}")
        if recorded is not None and recorded.job_id:
            with contextlib.suppress(Exception):
                await self.scheduler.release(recorded)
                stopped.append(f"{self.scheduler.kind} job {recorded.job_id}")
        if not self.uses_pod and await self.login_master().stop():
            stopped.append(f"connection to {self.workspace.connection.login.host}")
        self.store.delete(self.ws_id)
        sink(Notice("down: " + (", ".join(stopped) or "nothing was running")))
        return stopped

    async def _stop_on_node(self, node: ControlMaster | None, sink: EventSink) -> list[str]:
        """End the run, the tmux session and the workspace's agents on the node, with a fresh agent."""
        recorded = self.recorded_allocation()
        if self.workspace.connection.node_from_scheduler and (recorded is None or not recorded.node):
            return []  # no job is known, or it never ran: there is no node to stop anything on
        master = node or self.login_master()
        try:
            if not self.uses_pod:
                await self.login_master().start()
            if node is not None:
                await node.start()
            launch = await launch_agent(
                master,
                interpreter=self.workspace.run.interpreter,
                env_lines=tuple(self.workspace.run.env),
                environment=agent_environment(self.workspace),
            )
            try:
                reply = cast(
                    DownReply, await launch.channel.request("layout.down", timeout=60, workspace=self.workspace.name)
                )
            finally:
                await launch.channel.close()
        except Exception as exc:  # noqa: BLE001 - down goes on with the rest, and says what it could not do
            sink(Notice(f"could not stop the run on {master.name}: {exc}", "error"))
            return []
        return [str(item) for item in reply.get("stopped", [])]

"""A workspace session: the core object behind `tether up`, `attach`, `down` and the console.

It turns a ``Workspace`` into hops (login master, node master through it), gets the node from the
scheduler, and runs the link supervisor. The console talks to it through ``ConsoleSession``; the
CLI calls the same methods without a console.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import shlex
from collections.abc import Callable
from typing import Any

from tui.bringup import BringUpClock, Stage
from tui.config import HostSpec, Workspace
from tui.debug.breakpoints import DebugMemory
from tui.debug.debugger import Debugger
from tui.debug.ranks import RankDebuggers, RelayConnections
from tui.debug.runs import DebugRuns, debugpy_bundle, pass_env_values
from tui.errors import TetherError
from tui.events import (
    AllocationChanged,
    EventSink,
    JobState,
    LinkChanged,
    LinkState,
    Notice,
    OutputPage,
    PasswordPrompt,
)
from tui.node.panes import DEBUGPY_HOME
from tui.remote.agent_channel import AgentChannel, AgentError, launch_agent
from tui.remote.askpass import AskpassBridge, user_chose_askpass
from tui.remote.jobwatch import JobWatch
from tui.remote.link import AgentOptions, LinkSupervisor
from tui.remote.panels import HOLDER_JOB_KINDS, NodePanels, agent_environment, attach_command
from tui.remote.pod import PodRoute
from tui.remote.scheduler import scheduler_for
from tui.remote.scheduler.base import Allocation
from tui.remote.scheduler.kube import KubeScheduler, bare_name
from tui.remote.srun import AUTO, SRUN, SSH, access_of, reach_node, route_for_record
from tui.remote.ssh import ControlMaster, Destination, Hop, SshSettings
from tui.remote.tunnel import Tunnels
from tui.state import SessionRecord, StateStore, runtime_dir, workspace_id
from tui.sync.engine import SyncEngine
from tui.sync.target import LoginTarget, NodeTarget, SyncTarget


def destination_of(spec: HostSpec) -> Destination:
    return Destination(spec.host, spec.user, spec.port)


class Session:
    """Connects a workspace's chain and keeps it supervised."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        store: StateStore | None = None,
        ping_interval: float = 2.0,
        may_submit: bool = True,
        clock: BringUpClock | None = None,
    ) -> None:
        """``may_submit=False`` (`tether attach`): reuse the recorded job, never submit one unasked.

        ``clock`` (`tether up -v`): note when each bring-up stage is reached, and say so in the log.
        """
        self.workspace = workspace
        self.clock = clock
        self.ws_id = workspace_id(workspace.config_path)
        self.store = store or StateStore()
        self._ping_interval = ping_interval
        self._runtime = runtime_dir()
        connection = workspace.connection
        self.settings = SshSettings(
            ssh_config=connection.ssh_config,
            connect_timeout=connection.connect_timeout,
            control_persist=connection.control_persist,
        )
        self.login_hop = Hop(
            destination_of(connection.login),
            self._runtime / f"{self.ws_id}-l",
            jumps=tuple(destination_of(j) for j in connection.jump),
        )
        # A pod is reached with kubectl exec from the laptop: no login host, no ssh at all.
        self.uses_pod = workspace.scheduler.kind == "kube"
        self.scheduler = scheduler_for(workspace, ControlMaster(self.settings, self.login_hop))
        self.allocation: Allocation | None = None
        self.queued_job: str | None = None  # the job still waiting in the queue (`q` leaves it there)
        self.scheduler.on_queued = self._job_queued
        self._new_job_wanted = may_submit  # `tether up` may submit a job; later only the new-job key may
        self._srun_job: str | None = None  # the job whose node took no ssh (node_access = "auto")
        self.supervisor: LinkSupervisor | None = None
        self._prompt_answer: asyncio.Future[str | None] | None = None
        self._sink: EventSink = lambda event: None
        self._agent_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.panels = NodePanels(workspace, self._emit)
        self._panels_task: asyncio.Task[None] | None = None
        self._job_watch: asyncio.Task[None] | None = None
        self.sync: SyncEngine | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._first_sync = asyncio.Event()  # the run starts on a node that has the code
        self.tunnels = Tunnels(
            lambda: self._node_master(),
            self._emit,
            agent=self._current_agent,
            remembered=self._remembered_ports(),
            on_ports=self._remember_ports,
        )
        self.debug_runs = DebugRuns(workspace, self.tunnels, self._emit, provide_debugpy=self._provide_debugpy_once)
        self._debugpy_copy: asyncio.Task[None] | None = None  # provide_debugpy = "auto": once a session
        self.debug_streams = RelayConnections(self.debug_runs, self._current_agent)
        self.debuggers = RankDebuggers(
            DebugMemory(self.store.root / f"{self.ws_id}-debug.json"),
            workspace.local_root,
            lambda: self.debug_runs.remote_root,
            self.debug_streams.open,
            self._emit,
            ranks=self.debug_streams.ranks,
            stops_prefetched=True,
        )
        self.panels.pass_env, self._pass_env_missing = pass_env_values(workspace, dict(os.environ))

    def _node_master(self) -> ControlMaster:
        if self.supervisor is None:
            raise AgentError("the node is not connected right now")
        return self.supervisor.node_master

    def _current_agent(self) -> AgentChannel | None:
        return self.supervisor.agent if self.supervisor is not None else None

    def add_agent_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Receive the agent's events (messages without a request id), e.g. new pane output."""
        self._agent_listeners.append(listener)

    def _agent_event(self, message: dict[str, Any]) -> None:
        if self.tunnels.handle(message) or self.debug_streams.handle(message):
            return  # relayed bytes of a forwarded port or of the console's debugger: nothing else wants them
        for listener in self._agent_listeners:
            listener(message)
        self.panels.handle(message)
        self.debug_runs.handle(message)

    def _emit(self, event: object) -> None:
        self._sink(event)

    # -- the node panels (tmux layout, output, stats) -------------------------------------------
    def _link_changed(self, link: LinkChanged) -> None:
        """Each time the link comes up (a new agent after a reconnect too), ask for the layout."""
        if link.state is LinkState.UP and self.supervisor is not None and self.supervisor.agent is not None:
            if self._panels_task is not None:
                self._panels_task.cancel()
            self._panels_task = asyncio.create_task(self._bring_up_panels(self.supervisor.agent))

    def _sync_target(self, settings: SshSettings) -> SyncTarget:
        if self.workspace.connection.sync_via == "login":
            options = AgentOptions(self.workspace.run.interpreter, tuple(self.workspace.run.env))
            return LoginTarget(self.login_master(settings), options)
        assert self.supervisor is not None
        return NodeTarget(self.supervisor)

    async def _start_sync(self) -> None:
        """First sync, then watch; with restart_on_sync, restart the run once each change landed."""
        assert self.sync is not None
        try:
            await self.sync.start()
        except TetherError as exc:
            self._sink(Notice(f"sync: {exc}", "error"))
            return
        finally:
            self._first_sync.set()
        if self.workspace.run.restart_on_sync:
            await self._restart_after_sync(self.sync)

    async def _restart_after_sync(self, engine: SyncEngine) -> None:
        """Restart the run exactly once per synced change set, and only once the node has all of it."""
        seen = engine.applied_seq
        while True:
            seen = await engine.wait_applied_after(seen)
            if engine.pending:
                continue  # more of the same save burst is on its way: restart once it has landed
            try:
                await self.restart_run()
            except (TetherError, asyncio.TimeoutError) as exc:
                self._sink(Notice(f"restart after sync: {exc}", "warning"))

    async def _bring_up_panels(self, agent: AgentChannel) -> None:
        await self._first_sync.wait()
        try:
            await self.panels.bring_up(agent)
        except (AgentError, asyncio.TimeoutError) as exc:
            if not agent.closed:  # a dropped link is the supervisor's to report
                self._sink(Notice(f"tmux layout on the node: {exc or 'no answer'}", "error"))
            return
        await self._bring_up_debug(agent)

    async def _bring_up_debug(self, agent: AgentChannel) -> None:
        """Forward the ranks' debug ports and [ports], write launch.json, watch the loops."""
        try:
            await self.debug_runs.bring_up(agent, self.panels.last_reply)
            self.debuggers.bring_up()
        except (TetherError, asyncio.TimeoutError) as exc:
            if not agent.closed:
                self._sink(Notice(f"debug forwards: {exc or 'no answer'}", "error"))

    def _agent(self) -> AgentChannel:
        agent = self.supervisor.agent if self.supervisor is not None else None
        if agent is None or agent.closed:
            raise AgentError("the node is not connected right now")
        return agent

    async def rebuild_layout(self) -> None:
        """Kill the workspace's tmux session (and the run) and build it again from [layout]."""
        agent = self._agent()
        await self.panels.rebuild(agent)
        await self._bring_up_debug(agent)

    # -- the debug loop ------------------------------------------------------------------------
    async def restart_run(self) -> list[dict[str, Any]]:
        """Restart the run (every rank's debug loop), as `r` and Ctrl-C in the run pane do.

        Call it once the node has the change that should restart it (restart_on_sync)."""
        return await self.debug_runs.control(self._agent(), "restart")

    async def stop_run(self) -> list[dict[str, Any]]:
        """Stop the run (every rank); the loops stay and wait for a restart."""
        return await self.debug_runs.control(self._agent(), "stop")

    def _provide_debugpy_once(self) -> bool:
        """[debug] provide_debugpy = "auto": copy Tether's debugpy in the background, once a session
        (a second time would not help a python that the first copy did not)."""
        if self._debugpy_copy is not None:
            return not self._debugpy_copy.done()
        self._debugpy_copy = asyncio.get_running_loop().create_task(self._provide_debugpy_quietly())
        return True

    async def _provide_debugpy_quietly(self) -> None:
        try:
            await self.provide_debugpy(why="the run's python has no debugpy")
        except (TetherError, asyncio.TimeoutError, OSError) as exc:
            self._sink(Notice(f"could not copy Tether's debugpy to the node: {exc}", "error"))

    async def provide_debugpy(self, why: str = "") -> str:
        """Copy Tether's own debugpy to the node (works offline); the loops put it on the run's path
        when the run's python has none. Restarts the run; returns where it went."""
        master = self._node_master()
        folder = DEBUGPY_HOME.replace("~", "$HOME", 1)
        script = (
            f'd="{folder}"; mkdir -p "$d.new.$$" && tar xzf - -C "$d.new.$$" && rm -rf "$d" '
            f'&& mv "$d.new.$$" "$d" && echo "$d"'
        )
        result = await master.run(script, input_bytes=await asyncio.to_thread(debugpy_bundle), timeout=120)
        if not result.ok:
            raise TetherError(
                f"could not copy debugpy to {master.name}: {result.stderr.strip()}",
                fix=f"install debugpy for {shlex.quote(self.workspace.run.interpreter)} there: "
                "`tether doctor` gives the command that works for that python",
            )
        where = result.stdout.strip()
        self._sink(
            Notice(
                f"{why[:1].upper() + why[1:] + ': ' if why else ''}Tether copied its own debugpy to "
                f"{where} on {master.name}; the run starts with it"
            )
        )
        if self.debug_runs.ranks:
            await self.restart_run()
        return where

    # -- sync halts, released from the console ----------------------------------------------------
    async def allow_sync_deletes(self) -> None:
        if self.sync is not None:
            self.sync.allow_deletes_once()

    def pause_sync(self) -> None:
        if self.sync is not None:
            self.sync.pause()

    def resume_sync(self) -> None:
        if self.sync is not None:
            self.sync.resume()

    async def rescan_sync(self) -> None:
        if self.sync is not None:
            self.sync.rescan()

    async def keep_sync_theirs(self) -> str:
        return await self.sync.keep_theirs() if self.sync is not None else ""

    async def page_output(self, before: int | None = None, count: int = 200) -> OutputPage:
        """A page of the run's whole log on the node, ending at byte ``before`` (None: the end)."""
        return await self.panels.page(self._agent(), before, count)

    def attach_argv(self) -> list[str] | None:
        """argv of `ssh -t NODE tmux attach` through the node's master; None before the link is up."""
        if self.supervisor is None or self.supervisor.state.state is not LinkState.UP:
            return None
        return self.supervisor.node_master.exec_argv(attach_command(self.workspace), tty=True)

    # -- ConsoleSession ----------------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.workspace.name

    @property
    def chain(self) -> tuple[str, ...]:
        if self.uses_pod:
            return (f"pod {bare_name(self.allocation.node)}" if self.allocation else "pod",)
        login = self.workspace.connection.login.host
        node = self.allocation.node if self.allocation else self.workspace.connection.node
        if self.workspace.connection.node_from_scheduler and not (self.allocation and self.allocation.node):
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
        hop = Hop(Destination.parse(node), self._runtime / f"{self.ws_id}-n{tag}", via=self.login_hop)
        return ControlMaster(settings or self.settings, hop)

    async def prepare(self) -> None:
        """Log in to the login host with the terminal at hand (before the console takes it).

        ssh asks for a password or one-time code in the terminal as usual; everything after rides on
        the master this leaves, so the console does not ask again. A pod needs no login: kubectl
        authenticates with the user's kube config.
        """
        if not self.uses_pod:
            await self.login_master().start()
        if self.clock is not None:
            self.clock.mark(Stage.LOGIN)

    async def run(self, sink: EventSink) -> None:
        if self.clock is not None:
            self.clock.mark(Stage.CONSOLE)
            sink = self.clock.watching(sink)
        self._sink = sink
        bridge = None
        settings = self.settings
        if not user_chose_askpass():
            bridge = AskpassBridge(self._runtime, self._ask)
            settings = dataclasses.replace(settings, extra_env=await bridge.start())
        self.supervisor = LinkSupervisor(
            None if self.uses_pod else self.login_master(settings),
            lambda: self._resolve_node(settings),
            sink,
            agent_options=AgentOptions(
                self.workspace.run.interpreter, tuple(self.workspace.run.env), agent_environment(self.workspace)
            ),
            ping_interval=self._ping_interval,
            on_agent_event=self._agent_event,
        )
        self.supervisor.add_listener(self._link_changed)
        self.sync = SyncEngine(self.workspace, self._sync_target(settings), sink, ws_id=self.ws_id)
        self._sync_task = asyncio.create_task(self._start_sync())
        self.supervisor.add_listener(self.tunnels.on_link)
        if self._pass_env_missing:
            sink(
                Notice(
                    "[run] pass_env: not set on this laptop, so not given to the run: "
                    + ", ".join(self._pass_env_missing),
                    "warning",
                )
            )
        try:
            await self.supervisor.run()
        finally:
            if bridge is not None:
                await bridge.close()

    def debugger(self, rank: int = 0) -> Debugger:
        """The console's debugger of ``rank`` (attached once started: ``Debugger.start``)."""
        return self.debuggers.debugger(rank)

    async def open_pdb(self, rank: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The pdb that breakpoint() waits in, where the run's python has no debugpy (a private
        stream over the agent's channel to its Unix socket on the node)."""
        return await self.debug_streams.open_pdb(rank)

    def debug_group(self) -> RankDebuggers:
        """Every process the console debugs (ranks and their workers), and what acts on all."""
        return self.debuggers

    async def detach(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.debuggers.close(), 5)  # the run goes on, no longer stopped
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.debug_streams.close(), 5)
        if self._sync_task is not None:
            self._sync_task.cancel()
        if self.sync is not None:
            with contextlib.suppress(Exception):
                await self.sync.close()
        if self._job_watch is not None:
            self._job_watch.cancel()
        if self._panels_task is not None:
            self._panels_task.cancel()
        if self.supervisor is not None and self.tunnels.forwards:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.tunnels.close(), 10)
        if self.supervisor is not None:
            await self.supervisor.detach()

    async def reconnect_now(self) -> None:
        """The console's "reconnect now": the link's next try comes at once instead of after the
        backoff wait (a live link is left alone)."""
        if self.supervisor is not None:
            self.supervisor.reconnect_now()

    def answer_prompt(self, answer: str | None) -> None:
        if self._prompt_answer is not None and not self._prompt_answer.done():
            self._prompt_answer.set_result(answer)

    # -- internals ---------------------------------------------------------------------------
    async def _ask(self, prompt: str) -> str | None:
        self._prompt_answer = asyncio.get_running_loop().create_future()
        if self.supervisor is not None:
            self.supervisor.report(LinkState.NEEDS_PASSWORD, detail=prompt.strip())
        self._sink(PasswordPrompt(prompt, self.workspace.connection.login.host))
        return await self._prompt_answer

    def _session_record(self) -> SessionRecord | None:
        """The workspace's record, when it is of this scheduler kind (the config may have changed)."""
        record = self.store.load(self.ws_id)
        return record if record is not None and record.scheduler == self.scheduler.kind else None

    def recorded_allocation(self) -> Allocation | None:
        record = self._session_record()
        return Allocation(node=record.node, job_id=record.job_id) if record is not None else None

    def _watch_job(self) -> None:
        """Show the job just acquired, and poll it (schedulers that can say its state) so the
        console sees it end or change."""
        allocation = self.allocation
        job_id = allocation.job_id if allocation else None
        if allocation is None or job_id is None:
            return
        watched = self.scheduler.watches_jobs  # else the console cannot know it is still running later
        self._emit(
            AllocationChanged(
                job_id, allocation.node, allocation.ends_at, JobState.RUNNING if watched else JobState.UNWATCHED
            )
        )
        if not watched:
            return
        name = f"job watch {job_id}"
        if self._job_watch is not None and not self._job_watch.done():
            if self._job_watch.get_name() == name:
                return  # a reconnect to the same job: its watch goes on
            self._job_watch.cancel()  # an older job's, not yet seen to end
        watch = JobWatch(self.scheduler.state, job_id, self._emit, node=allocation.node)
        self._job_watch = asyncio.create_task(watch.run(), name=name)

    def _job_queued(self, job_id: str) -> None:
        """The scheduler's job waits in the queue: record it now (a job must never be lost, and `q`
        leaves it queued for `tether attach`), and show it as pending."""
        self.queued_job = job_id
        recorded = self.recorded_allocation()
        if recorded is None or recorded.job_id != job_id:
            self._record(Allocation(node="", job_id=job_id))
        self._emit(AllocationChanged(job_id, "", None, JobState.WAITING, "pending"))

    @property
    def detach_message(self) -> str:
        """What the CLI prints after `q`."""
        if self.queued_job is not None:
            return f"Detached: job {self.queued_job} is still queued; `tether attach` picks it up."
        node = self.chain[-1] if self.chain else "the node"
        return f"Detached: everything keeps running on {node}. `tether attach` to come back, `tether down` to stop it."

    async def _resolve_node(self, settings: SshSettings) -> ControlMaster | None:
        # A reconnect after the job ended (the agent dies with the job where the node is reached
        # through srun or pam_slurm_adopt) must not submit a new job on its own: the user asks (A).
        submit = self._new_job_wanted or self.scheduler.kind not in HOLDER_JOB_KINDS
        try:
            self.allocation = await self.scheduler.acquire(self.recorded_allocation(), self._sink, submit=submit)
        except asyncio.CancelledError:
            raise  # detached while waiting: the job (if queued) stays queued and recorded
        except BaseException:
            self.queued_job = None
            raise
        self.queued_job = None
        self._new_job_wanted = False
        # This job's node already refused ssh (node_access = "auto"): do not wait on it at every
        # reconnect, and keep the record saying how the node is reached.
        known = SRUN if self._srun_job == self.allocation.job_id else SSH
        self._record(self.allocation, known)  # at once: a job must never be lost, whatever happens next
        self._watch_job()
        if self.uses_pod:
            return PodRoute(self.kube_scheduler, self.allocation.node)
        access = SRUN if self.node_access == AUTO and known == SRUN else self.node_access
        route = await reach_node(
            self.node_master(self.allocation.node, settings),
            self.login_master(settings),
            job_id=self.allocation.job_id,
            node=self.allocation.node,
            access=access,
            sink=self._sink,
        )
        self._srun_job = self.allocation.job_id if access_of(route) == SRUN else None
        if access_of(route) != known:
            self._record(self.allocation, access_of(route))
        return route

    @property
    def node_access(self) -> str:
        """How to reach a job's node: "ssh", "srun" or "auto" (Slurm's node_access)."""
        slurm = self.workspace.scheduler.slurm
        return slurm.node_access if slurm is not None else SSH

    def _remembered_ports(self) -> dict[str, tuple[int, int]]:
        """name -> (laptop port, node port) of the forwards an earlier console of this session had."""
        record = self.store.load(self.ws_id)
        ports = record.extra.get("ports", {}) if record is not None else {}
        return {
            str(name): (int(pair[0]), int(pair[1]))
            for name, pair in ports.items()
            if isinstance(pair, (list, tuple)) and len(pair) == 2
        }

    def _remember_ports(self, ports: dict[str, tuple[int, int]]) -> None:
        """Keep the forwards' laptop ports in the session record: `tether attach` takes them again."""
        record = self.store.load(self.ws_id)
        if record is not None:
            extra = {**record.extra, "ports": {name: list(pair) for name, pair in ports.items()}}
            self.store.save(dataclasses.replace(record, extra=extra))

    def _record(self, allocation: Allocation, access: str = SSH) -> None:
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
        record = self._session_record()
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

    async def down(self, sink: EventSink = lambda event: None) -> list[str]:
        """Stop everything the session left running; returns what was stopped, for the user."""
        stopped: list[str] = []
        recorded = self.recorded_allocation()
        await self.detach()
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
                reply = await launch.channel.request("layout.down", timeout=60, workspace=self.workspace.name)
            finally:
                await launch.channel.close()
        except Exception as exc:  # noqa: BLE001 - down goes on with the rest, and says what it could not do
            sink(Notice(f"could not stop the run on {master.name}: {exc}", "error"))
            return []
        return [str(item) for item in reply.get("stopped", [])]

    async def allocate_again(self) -> None:
        """Forget the job that ended and have the link supervisor get a new one now (the console's
        "new job" key), instead of quitting for `tether down` and `tether up`.

        Refused where the scheduler gives no jobs, and while the job still runs or waits: a live
        job is never thrown away by accident (`tether down` ends it on purpose).
        """
        kind = self.scheduler.kind
        family = {"slurm": "Slurm", "pbs": "PBS"}.get(kind, kind)
        if kind == "direct":
            raise TetherError(
                f'{self.workspace.config_path}: [scheduler] kind = "direct" uses a fixed host, there is no job to replace',
                fix="to use another host, change [connection] in tether.toml, then `tether down` and `tether up`",
            )
        if self.supervisor is None:
            raise TetherError("the session is not running", fix="`tether up` starts it")
        current = self.allocation or self.recorded_allocation()
        job_id = current.job_id if current is not None else None
        if job_id:
            status = await self.scheduler.state(job_id)
            live = status is not None and not status.ended  # suspended, requeued, held: still ours
            words = status.describe() if status is not None else ""
            if live:
                raise TetherError(
                    f"{words}: it has not ended, so it is kept",
                    fix="keep working in it, or end it with `tether down` (which cancels it), then `tether up`",
                )
        self.store.delete(self.ws_id)
        self.allocation = None
        if self._job_watch is not None:
            self._job_watch.cancel()
        self._emit(AllocationChanged(None, "", None))
        gone = f"{family} job {job_id} is forgotten; " if job_id else ""
        self._emit(Notice(f"{gone}asking {family} for a new job"))
        self._new_job_wanted = True
        await self.supervisor.retry_now()

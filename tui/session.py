"""A workspace session: the core object behind `tether up`, `attach`, `down` and the console.

It turns a ``Workspace`` into hops (login master, node master through it), gets the node from the
scheduler, and runs the link supervisor. The console talks to it through ``ConsoleSession``; the
CLI calls the same methods without a console.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Callable

from tui.bringup import BringUpClock, Stage
from tui.config import Workspace
from tui.debug.breakpoints import DebugMemory
from tui.debug.debugger import Debugger
from tui.debug.debugpy_copy import copy_debugpy
from tui.debug.ranks import RankDebuggers, RelayConnections
from tui.debug.runs import DebugRuns, pass_env_values
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
from tui.node.protocol import Message
from tui.node.protocol_loop import LoopReply
from tui.remote.agent_channel import AgentChannel, AgentError
from tui.remote.askpass import AskpassBridge, user_chose_askpass
from tui.remote.jobwatch import JobWatch
from tui.remote.link import AgentOptions, LinkSupervisor
from tui.remote.panels import HOLDER_JOB_KINDS, NodePanels, agent_environment, attach_command
from tui.remote.scheduler.base import Allocation
from tui.remote.srun import AUTO, SRUN, SSH, access_of
from tui.remote.ssh import ControlMaster, SshSettings
from tui.remote.tunnel import Tunnels
from tui.route import Route
from tui.state import StateStore
from tui.sync.engine import SyncEngine
from tui.sync.target import LoginTarget, NodeTarget, SyncTarget


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
        self.route = Route(workspace, store)
        self.ws_id = self.route.ws_id
        self._ping_interval = ping_interval
        self.settings = self.route.settings
        self.scheduler = self.route.scheduler
        self.allocation: Allocation | None = None
        self.queued_job: str | None = None  # the job still waiting in the queue (`q` leaves it there)
        self.scheduler.on_queued = self._job_queued
        self._new_job_wanted = may_submit  # `tether up` may submit a job; later only the new-job key may
        self._srun_job: str | None = None  # the job whose node took no ssh (node_access = "auto")
        self.supervisor: LinkSupervisor | None = None
        self._prompt_answer: asyncio.Future[str | None] | None = None
        self._sink: EventSink = lambda event: None
        self._agent_listeners: list[Callable[[Message], None]] = []
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
            remembered=self.route.remembered_ports(),
            on_ports=self.route.remember_ports,
        )
        self.debug_runs = DebugRuns(workspace, self.tunnels, self._emit, provide_debugpy=self._provide_debugpy_once)
        self._debugpy_copy: asyncio.Task[None] | None = None  # provide_debugpy = "auto": once a session
        self.debug_streams = RelayConnections(self.debug_runs, self._current_agent)
        self.debuggers = RankDebuggers(
            DebugMemory(self.route.store.root / f"{self.ws_id}-debug.json"),
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

    def add_agent_listener(self, listener: Callable[[Message], None]) -> None:
        """Receive the agent's events (messages without a request id), e.g. new pane output."""
        self._agent_listeners.append(listener)

    def _agent_event(self, message: Message) -> None:
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
    async def restart_run(self) -> list[LoopReply]:
        """Restart the run (every rank's debug loop), as `r` and Ctrl-C in the run pane do.

        Call it once the node has the change that should restart it (restart_on_sync)."""
        return await self.debug_runs.control(self._agent(), "restart")

    async def stop_run(self) -> list[LoopReply]:
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
        where = await copy_debugpy(master, self.workspace.run.interpreter)
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
        return self.route.chain(self.allocation)

    def login_master(self, settings: SshSettings | None = None) -> ControlMaster:
        return self.route.login_master(settings)

    def node_master(self, node: str, settings: SshSettings | None = None) -> ControlMaster | None:
        return self.route.node_master(node, settings)

    async def prepare(self) -> None:
        """Log in to the login host with the terminal at hand (before the console takes it).

        ssh asks for a password or one-time code in the terminal as usual; everything after rides on
        the master this leaves, so the console does not ask again. A pod needs no login: kubectl
        authenticates with the user's kube config.
        """
        await self.route.login()
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
            bridge = AskpassBridge(self.route.runtime, self._ask)
            settings = dataclasses.replace(settings, extra_env=await bridge.start())
        self.supervisor = LinkSupervisor(
            None if self.route.uses_pod else self.login_master(settings),
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

    def recorded_allocation(self) -> Allocation | None:
        return self.route.recorded_allocation()

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
            self.route.record(Allocation(node="", job_id=job_id))
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
        self.route.record(self.allocation, known)  # at once: a job must never be lost, whatever happens next
        self._watch_job()
        if self.route.uses_pod:
            return await self.route.reach(self.allocation, settings, SSH, self._sink)
        access = SRUN if self.route.node_access == AUTO and known == SRUN else self.route.node_access
        route = await self.route.reach(self.allocation, settings, access, self._sink)
        self._srun_job = self.allocation.job_id if access_of(route) == SRUN else None
        if access_of(route) != known:
            self.route.record(self.allocation, access_of(route))
        return route

    async def down(self, sink: EventSink = lambda event: None) -> list[str]:
        """Stop everything the session left running; returns what was stopped, for the user."""
        recorded = self.recorded_allocation()
        await self.detach()
        return await self.route.down(sink, recorded)

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
        self.route.store.delete(self.ws_id)
        self.allocation = None
        if self._job_watch is not None:
            self._job_watch.cancel()
        self._emit(AllocationChanged(None, "", None))
        gone = f"{family} job {job_id} is forgotten; " if job_id else ""
        self._emit(Notice(f"{gone}asking {family} for a new job"))
        self._new_job_wanted = True
        await self.supervisor.retry_now()

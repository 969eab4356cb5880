"""The link told truthfully on the real testbed: a silent outage (the node's cable pulled: packets
dropped, no RST) is shown as lost within 2 round trips + 1 s; a failure of only the node hop (its
cable, or its sshd session killed) never restarts the healthy login master, so the login host sees
no new authentication (on a one-time-code site that would ask the user again)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import pytest
from testbed import Testbed
from testbed.procs import ProcessRef, descendants
from workspaces import load_test_workspace

from tui.events import LinkChanged, LinkState
from tui.session import Session

pytestmark = pytest.mark.needs_netns


class Timeline(list):
    """(monotonic time, LinkChanged) of every link event."""

    def __call__(self, event: object) -> None:
        if isinstance(event, LinkChanged):
            self.append((time.monotonic(), event))

    def first(self, state: LinkState, after: float) -> float | None:
        return next((at for at, event in self if at >= after and event.state is state), None)

    def up_since(self, after: float) -> bool:
        return bool(self) and self[-1][1].state is LinkState.UP and self[-1][0] >= after


async def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def supervised(session: Session, timeline: Timeline):
    task = asyncio.create_task(session.run(timeline))
    try:
        await until(lambda: task.done() or timeline.up_since(0), 30, "the link to come up")
        if task.done():
            task.result()
        yield task
    finally:
        with contextlib.suppress(Exception):
            await session.down()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_silent_node_hop_outage_is_lost_within_two_round_trips_and_a_second_and_keeps_the_login(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    session = Session(load_test_workspace(tmp_path / "ws", testbed), ping_interval=0.5)
    timeline = Timeline()
    async with supervised(session, timeline):
        login_pid = await session.login_master().pid()
        auths = testbed.count_auths()
        await until(
            lambda: sum(1 for _, e in timeline if e.state is LinkState.UP and e.rtt_ms) >= 3, 10, "a few round trips"
        )
        rtt_s = max(e.rtt_ms for _, e in timeline[-3:] if e.rtt_ms) / 1000
        cut = time.monotonic()
        testbed.node.set_link(False)  # silent: the node's end of the cable goes down, nothing answers
        try:
            await until(lambda: timeline.first(LinkState.LOST, cut) is not None, 15, "lost")
            took = timeline.first(LinkState.LOST, cut) - cut
            print(f"silent outage: lost after {took:.2f} s (rtt {rtt_s * 1000:.1f} ms)")
            assert took <= 2 * rtt_s + 1.0, f"lost only after {took:.2f} s"
        finally:
            testbed.node.set_link(True)
        back = time.monotonic()
        await until(lambda: timeline.up_since(back), 60, "the link back up")
        assert await session.login_master().pid() == login_pid  # the login master was never restarted
        assert testbed.count_auths() == auths


async def test_killing_the_node_hop_reconnects_without_a_new_login(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    session = Session(load_test_workspace(tmp_path / "ws", testbed), ping_interval=0.5)
    timeline = Timeline()
    async with supervised(session, timeline):
        login_pid = await session.login_master().pid()
        auths = testbed.count_auths()
        # The node's sshd session of our node master (the node sshd's children): killed.
        node_sshd = testbed.node.pid
        assert node_sshd is not None
        for pid in descendants(node_sshd):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except FileNotFoundError:  # a short-lived session (a stats or ping command) ended meanwhile
                continue
            if comm == "sshd":
                with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                    ProcessRef.of(pid).signal(signal.SIGKILL)
        cut = time.monotonic()
        await until(lambda: timeline.first(LinkState.LOST, cut - 1) is not None, 15, "lost")
        await until(lambda: timeline.up_since(cut), 30, "the link back up")
        assert await session.login_master().pid() == login_pid
        assert testbed.count_auths() == auths

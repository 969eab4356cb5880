"""The kube scheduler: pod JSON judgement (pure), and allocate/find/exec/rsync/port-forward through a
STAND-IN ``kubectl``/``oc``.

No Kubernetes API server can run here. A STAND-IN ``kubectl`` (tests/fixtures/standins/standin.py)
on a private PATH replays captured-format pod JSON from tests/fixtures/kube and records its argv;
its ``exec`` runs the command on this machine and its ``port-forward`` is a small TCP relay on
127.0.0.1 that prints kubectl's own lines and drops like kubectl does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from standins import KUBE_TOOLS, StandIns, fixture_body, install_standins

from tui.config.scheduler import KubeOptions
from tui.errors import TetherError
from tui.events import Progress
from tui.remote.scheduler.base import Allocation
from tui.remote.scheduler.kube import KubeScheduler, assess_pod, pick_pod, pod_ends_at
from tui.remote.scheduler.kube_forward import ForwardChanged, ForwardState, KubeError, PortForward, parse_forwarding

OPTIONS = KubeOptions(namespace="ml", pod="train-0", context="lab")
SELECTOR = KubeOptions(namespace="ml", selector="app=train", context="lab")


def pod(relative: str) -> dict[str, Any]:
    return dict(json.loads(fixture_body(relative)))


# --- stand-ins ----------------------------------------------------------------------------------


@pytest.fixture
def standins(tmp_path: Path) -> StandIns:
    return install_standins(tmp_path, KUBE_TOOLS, "the real CLI")


def scheduler(standins: StandIns, options: KubeOptions = OPTIONS) -> KubeScheduler:
    return KubeScheduler(options, poll_interval=0.01, env=standins.env())


# --- judging pod JSON (pure) --------------------------------------------------------------------


def test_running_pod_is_usable():
    view = assess_pod(pod("kube/pod_running.json"), None)
    assert (view.name, view.phase, view.usable, view.fatal) == ("train-0", "Running", True, None)


@pytest.mark.parametrize(
    ("fixture", "detail"),
    [
        (
            "kube/pod_pending_unschedulable.json",
            (
                "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu. "
                "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
            ),
        ),
        ("kube/pod_pending_containercreating.json", "container main: ContainerCreating"),
        (
            "kube/pod_pending_imagepullbackoff.json",
            'container main: ImagePullBackOff (Back-off pulling image "registry.example.com/train:v2")',
        ),
    ],
)
def test_pending_pods_are_waited_for_with_the_reason(fixture: str, detail: str):
    view = assess_pod(pod(fixture), None)
    assert (view.phase, view.usable, view.fatal, view.detail) == ("Pending", False, None, detail)


def test_crash_looping_pod_is_fatal_with_a_fix():
    view = assess_pod(pod("kube/pod_crashloop.json"), None, "kubectl --context lab -n ml logs")
    assert view.phase == "Running" and not view.usable  # the phase stays Running while it crashes
    assert isinstance(view.fatal, TetherError)
    assert view.fatal.message.startswith(
        "pod train-0: container main is in CrashLoopBackOff (7 restarts): last exit: Error, code 1; back-off 5m0s"
    )
    assert view.fatal.fix.startswith("see why with `kubectl --context lab -n ml logs train-0 -c main --previous`")


def test_crash_loop_of_another_container_does_not_block_the_target():
    crashing = pod("kube/pod_crashloop.json")
    assert assess_pod(crashing, "log-shipper").usable


def test_failed_pod_is_fatal():
    view = assess_pod(pod("kube/pod_failed_evicted.json"), None)
    assert view.fatal is not None
    assert view.fatal.message.startswith(
        "pod train-0 has failed (Failed, Evicted: The node was low on resource: memory."
    )
    assert "delete it" in view.fatal.fix


def test_unknown_container_is_fatal_and_names_the_real_ones():
    view = assess_pod(pod("kube/pod_running.json"), "trainer")
    assert view.fatal is not None
    assert view.fatal.message == "pod train-0 has no container 'trainer' (it has: main, log-shipper)"
    assert view.fatal.fix == 'set container = "main" under [scheduler]'


def test_terminating_pod_is_not_used():
    terminating = pod("kube/pod_running.json")
    terminating["metadata"]["deletionTimestamp"] = "2025-03-04T10:00:00Z"
    view = assess_pod(terminating, None)
    assert (view.usable, view.detail) == (False, "terminating")


def picked(items: list[dict[str, Any]]) -> str | None:
    chosen = pick_pod(items, None)
    return None if chosen is None else str(chosen["metadata"]["name"])


def test_selector_picks_the_first_running_pod_by_name():
    items = pod("kube/pods_selector.json")["items"]
    assert [p["metadata"]["name"] for p in items] == ["train-c", "train-a", "train-b"]  # API order
    assert picked(items) == "train-b"  # train-a is Pending
    pending = pod("kube/pods_selector_pending.json")["items"]
    assert picked(pending) == "train-a"
    assert pick_pod([], None) is None


def test_selector_prefers_a_healthy_pod_over_a_crashing_one():
    crashing = pod("kube/pod_crashloop.json")
    crashing["metadata"]["name"] = "train-a"
    waiting = pod("kube/pod_pending_containercreating.json")
    waiting["metadata"]["name"] = "train-b"
    assert picked([crashing, waiting]) == "train-b"
    assert picked([crashing]) == "train-a"  # so its error can be shown


def test_time_left_comes_from_active_deadline_seconds():
    running = pod("kube/pod_running.json")
    assert pod_ends_at(running) is None
    running["spec"]["activeDeadlineSeconds"] = 86400
    # startTime 2025-03-04T09:13:38Z
    assert pod_ends_at(running) == 1741079618 + 86400


def test_port_forward_lines_of_the_captured_session():
    lines = fixture_body("kube/port_forward_session.txt").splitlines()
    assert parse_forwarding(lines[0]) == (6006, 6006)
    assert [parse_forwarding(line) for line in lines[1:]] == [None] * (len(lines) - 1)


# --- argv builders ------------------------------------------------------------------------------


def test_exec_argv():
    kube = KubeScheduler(KubeOptions(namespace="ml", pod="train-0", container="main"))
    assert kube.exec_argv("pod/train-0", "echo 'a b'") == [
        "kubectl", "exec", "-i", "-c", "main", "-n", "ml", "train-0", "--", "sh", "-c", "echo 'a b'",
    ]  # fmt: skip
    oc = KubeScheduler(KubeOptions(cli="oc", pod="train-0", context="lab"))
    assert oc.exec_argv("train-0", "true") == [
        "oc",
        "exec",
        "-i",
        "--context",
        "lab",
        "train-0",
        "--",
        "sh",
        "-c",
        "true",
    ]


def test_base_argv_and_missing_pod():
    assert KubeScheduler(OPTIONS).base_argv() == ["kubectl", "--context", "lab", "-n", "ml"]
    with pytest.raises(TetherError, match="needs the pod to use"):
        KubeScheduler(KubeOptions())


# --- allocate / find / release through the stand-in -----------------------------------------------


async def test_allocate_waits_while_pending_with_progress(standins: StandIns):
    standins.replay = {
        "KUBECTL_GET": "kube/pod_pending_unschedulable.json,kube/pod_pending_containercreating.json,"
        "kube/pod_pending_imagepullbackoff.json,kube/pod_running.json"
    }
    events: list[object] = []
    allocation = await scheduler(standins).allocate(events.append)

    assert allocation == Allocation(node="pod/train-0", job_id=None, ends_at=None)
    progress = [e for e in events if isinstance(e, Progress)]
    # The time pending is the wall clock's: three polls on a loaded machine may cross a second.
    heads = [p.message.split(": ", 1)[0] for p in progress[:3]]
    assert all(re.fullmatch(r"pod train-0 Pending for 0:\d\d", head) for head in heads), heads
    assert heads == sorted(heads)
    assert "Unschedulable: 0/3 nodes are available" in progress[0].message
    assert progress[1].message.endswith("container main: ContainerCreating")
    assert "ImagePullBackOff" in progress[2].message
    assert (progress[-1].message, progress[-1].fraction) == ("using pod train-0", 1.0)
    argvs = [c["argv"] for c in standins.calls("kubectl")]
    assert argvs == [["--context", "lab", "-n", "ml", "get", "pod", "train-0", "-o", "json"]] * 4


async def test_allocate_with_a_selector_picks_a_running_pod(standins: StandIns):
    standins.replay = {"KUBECTL_GET": "kube/pods_selector_pending.json,kube/pods_selector.json"}
    events: list[object] = []
    allocation = await scheduler(standins, SELECTOR).allocate(events.append)
    assert allocation.node == "pod/train-b"
    assert any("pod train-a Pending" in getattr(e, "message", "") for e in events)
    assert standins.calls("kubectl")[0]["argv"] == [
        "--context",
        "lab",
        "-n",
        "ml",
        "get",
        "pods",
        "-l",
        "app=train",
        "-o",
        "json",
    ]


async def test_crash_loop_fails_at_once_with_a_fix(standins: StandIns):
    standins.replay = {"KUBECTL_GET": "kube/pod_pending_containercreating.json,kube/pod_crashloop.json"}
    with pytest.raises(TetherError) as caught:
        await scheduler(standins).allocate(lambda event: None)
    assert "CrashLoopBackOff" in caught.value.message
    assert "kubectl --context lab -n ml logs train-0 -c main --previous" in caught.value.fix
    assert len(standins.calls()) == 2


async def test_failed_pod_fails(standins: StandIns):
    standins.replay = {"KUBECTL_GET": "kube/pod_failed_evicted.json"}
    with pytest.raises(TetherError, match="has failed"):
        await scheduler(standins).allocate(lambda event: None)


async def test_missing_pod_and_empty_selector_are_clear_errors(standins: StandIns):
    standins.replay = {"KUBECTL_GET": "kube/pod_not_found.txt"}
    with pytest.raises(TetherError) as caught:
        await scheduler(standins).allocate(lambda event: None)
    assert caught.value.message == "pod train-0 does not exist in namespace ml"
    assert "kubectl --context lab -n ml get pods" in caught.value.fix
    assert await scheduler(standins).find(None) is None

    standins.replay = {"KUBECTL_GET": "kube/pods_selector_empty.json"}
    with pytest.raises(TetherError, match="no pod matches selector 'app=train' in namespace ml"):
        await scheduler(standins, SELECTOR).allocate(lambda event: None)


async def test_missing_cli_is_a_clear_error(tmp_path: Path):
    kube = KubeScheduler(OPTIONS, env={"PATH": str(tmp_path)})
    with pytest.raises(TetherError, match="kubectl was not found on this computer"):
        await kube.allocate(lambda event: None)


async def test_oc_is_used_when_configured(standins: StandIns):
    standins.replay = {"KUBECTL_GET": "kube/pod_running.json"}
    allocation = await scheduler(standins, KubeOptions(cli="oc", pod="train-0")).allocate(lambda event: None)
    assert allocation.node == "pod/train-0"
    assert [(c["tool"], c["argv"]) for c in standins.calls()] == [("oc", ["get", "pod", "train-0", "-o", "json"])]


async def test_find_with_a_selector_keeps_the_recorded_pod(standins: StandIns):
    standins.replay = {"KUBECTL_GET": "kube/pods_selector.json"}
    kube = scheduler(standins, SELECTOR)
    # train-b would be picked afresh, but the workspace's tmux server lives in train-c.
    assert await kube.find(Allocation(node="pod/train-c")) == Allocation(node="pod/train-c")
    assert await kube.find(Allocation(node="pod/train-a")) is None  # still Pending
    assert await kube.find(Allocation(node="pod/train-z")) is None  # gone
    assert await kube.find(None) is None


async def test_find_with_a_pod_name_uses_the_configured_pod(standins: StandIns):
    standins.replay = {"KUBECTL_GET": "kube/pod_running.json,kube/pod_crashloop.json"}
    kube = scheduler(standins)
    assert await kube.find(Allocation(node="pod/old-name")) == Allocation(node="pod/train-0")
    assert await kube.find(Allocation(node="pod/train-0")) is None  # crash-looping now


async def test_release_does_nothing(standins: StandIns):
    await scheduler(standins).release(Allocation(node="pod/train-0"))
    assert standins.calls() == []


# --- rsync over kubectl exec (real rsync, stand-in kubectl) ---------------------------------------


@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
def test_rsync_goes_through_kubectl_exec(standins: StandIns, tmp_path: Path):
    source, dest = tmp_path / "src", tmp_path / "dest"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "train.py").write_text("print('hi')\n")
    (source / "name with spaces.txt").write_text("x\n")
    kube = KubeScheduler(KubeOptions(namespace="ml", pod="train-0", container="main", context="lab"))
    argv = ["rsync", "-a", *kube.rsync_options(), f"{source}/", kube.rsync_destination("pod/train-0", f"{dest}/")]
    result = subprocess.run(argv, check=False, env=standins.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (dest / "pkg" / "train.py").read_text() == "print('hi')\n"
    assert (dest / "name with spaces.txt").exists()
    (call,) = standins.calls("kubectl")
    split = call["argv"].index("--")
    assert call["argv"][:split] == ["exec", "-i", "-c", "main", "-n", "ml", "--context", "lab", "train-0"]
    assert call["argv"][split + 1 : split + 3] == ["rsync", "--server"]


# --- port-forward kept alive ----------------------------------------------------------------------


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP echo server on 127.0.0.1: the "port in the pod" behind the stand-in's relay."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def round_trip(port: int, payload: bytes = b"ping\n") -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(payload)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


async def eventually(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def state_of(forward: PortForward) -> ForwardState:
    """Read afresh (a plain attribute read would stay narrowed by an earlier assert for mypy)."""
    return forward.state


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("drop_mode", ["exit", "hang"])
async def test_dropped_port_forward_is_restarted(standins: StandIns, echo_port: int, drop_mode: str):
    standins.replay = {"FORWARD_DROP_RUNS": "1", "FORWARD_DROP_MODE": drop_mode}
    events: list[ForwardChanged] = []
    forward = scheduler(standins).port_forward("pod/train-0", 0, echo_port, backoff=(0.05,), events=events.append)
    try:
        port = await forward.start(timeout=20)
        first_pid = forward.pid
        assert port > 0 and forward.state is ForwardState.UP and first_pid is not None
        assert await round_trip(port) == b"ping\n"

        # The stand-in drops after that first connection (kubectl#1169): exits, or logs
        # "lost connection to pod" and hangs until PortForward ends it by its pid.
        await eventually(lambda: forward.restarts >= 1)
        assert await forward.wait_up(20)
        assert forward.local_port == port  # the port kubectl picked is kept across restarts
        assert await round_trip(port, b"pong\n") == b"pong\n"
        assert forward.pid not in (None, first_pid)
        await eventually(lambda: process_gone(first_pid))
    finally:
        await forward.close()

    assert state_of(forward) is ForwardState.CLOSED and forward.pid is None
    states = [e.state for e in events]
    assert states[:3] == [ForwardState.UP, ForwardState.RESTARTING, ForwardState.UP]
    assert states[-1] is ForwardState.CLOSED
    assert "lost connection to pod" in events[1].detail
    argvs = [c["argv"] for c in standins.calls("kubectl")]
    common = ["--context", "lab", "-n", "ml", "port-forward", "--address", "127.0.0.1", "pod/train-0"]
    assert argvs == [[*common, f"0:{echo_port}"], [*common, f"{port}:{echo_port}"]]


async def test_close_ends_a_working_forward_by_its_pid(standins: StandIns, echo_port: int):
    forward = scheduler(standins).port_forward("train-0", 0, echo_port, backoff=(0.05,))
    port = await forward.start(timeout=20)
    pid = forward.pid
    assert pid is not None and await round_trip(port) == b"ping\n"
    await forward.close()
    assert process_gone(pid)
    assert not await forward.wait_up(0.1)
    assert forward.restarts == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_port_forward_that_never_starts_raises(standins: StandIns, echo_port: int):
    standins.replay = {"FORWARD_FAIL": "kube/port_forward_not_running.txt"}
    forward = scheduler(standins).port_forward("train-0", 0, echo_port, backoff=(0.05,))
    with pytest.raises(KubeError) as caught:
        await forward.start(timeout=1)
    assert "unable to forward port because pod is not running. Current status=Pending" in caught.value.message
    assert forward.state is ForwardState.CLOSED and forward.pid is None
    assert len(standins.calls("kubectl")) >= 2  # it kept retrying while waiting

"""The debug loop, in a real tmux pane on a private server, around real debugpy.

Each test starts its own tmux server (unique -L socket) whose environment carries a unique mark;
teardown kills the server and every process that still carries the mark.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tui.node import loopstate as ls
from tui.node.agent import Agent
from tui.node.loopcmd import CommandError, build_launch
from tui.node.loopoptions import Options
from tui.node.loopsupervisor import Supervisor, backoff_delay

ROOT = Path(__file__).resolve().parent.parent
DEBUGGEE = "tests/fixtures/loop_debuggee.py"
EXIT_HINT = "press Ctrl-C or r in Tether to restart, Ctrl-C twice to leave"


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def marked(mark: str) -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit() and ls.environ_has(int(n), mark)]


class Pane:
    """One tmux pane running bash, on a private tmux server."""

    def __init__(self, tmp_path: Path) -> None:
        self.server = f"tether-test-{uuid.uuid4().hex[:12]}"
        self.mark = f"TETHER_TEST_MARK={self.server}"
        self.dir = tmp_path / "loop"
        self.state = self.dir / "state.json"
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT), TETHER_TEST_MARK=self.server, PS1="$ ")
        self.tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "200",
            "-y",
            "50",
            "-c",
            str(ROOT),
            "bash --norc --noprofile",
            env=env,
        )
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, env=env, timeout=10)
        assert result.returncode == 0, f"tmux {args}: {result.stderr}"
        return result.stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.keys("Enter")

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-300")

    def command(self) -> str:
        return self.tmux("display-message", "-p", "-t", "t", "#{pane_current_command}").strip()

    def start_loop(self, *debuggee_args: str, mode: str = "attach", extra: tuple[str, ...] = ()) -> None:
        args = [
            sys.executable,
            "-m",
            "tui.node.loop",
            "--state",
            str(self.state),
            "--port",
            str(self.port),
            "--mode",
            mode,
            "--grace",
            "0.5",
            *extra,
            "--",
            sys.executable,
            DEBUGGEE,
            *debuggee_args,
        ]
        self.type(shlex.join(args))

    def read(self) -> dict[str, Any]:
        return ls.read_state(self.state) or {}

    def wait_state(self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            state = self.read()
            return state if state and check(state) else None

        try:
            return wait_for(ready, what, timeout)
        except AssertionError:
            raise AssertionError(f"timed out waiting for {what}; state: {self.read()}\npane:\n{self.text()}") from None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, timeout=10)
        Path(self.socket_path).unlink(missing_ok=True)  # tmux 3.3 leaves it behind
        for pid in marked(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not [p for p in marked(self.mark) if alive(p)], "the test's processes to end", 10)


def run_processes(state: dict[str, Any]) -> list[int]:
    """Every live process of the current run: its session, and what carries its token (the adapter)."""
    token = f"TETHER_LOOP_RUN={state['token']}"
    carriers = [int(n) for n in os.listdir("/proc") if n.isdigit() and ls.environ_has(int(n), token)]
    return sorted(set(ls.session_members(state["pgid"]) + [p for p in carriers if alive(p)]))


# ------------------------------------------------------------------------------ without tmux


def test_build_launch_inserts_debugpy_after_the_interpreter():
    launch = build_launch(["python", "-u", "-X", "dev", "train.py", "--lr", "3"], "wait", 5679)
    assert launch.argv == (
        "python",
        "-u",
        "-X",
        "dev",
        "-X",
        "frozen_modules=off",
        "-m",
        "tether_debugguard",
        "--listen",
        "127.0.0.1:5679",
        "--wait-for-client",
        "train.py",
        "--lr",
        "3",
    )
    assert launch.name == "train.py"
    module = build_launch(["/opt/env/bin/python3.11", "-m", "pkg.train", "-c", "x"], "attach", 7000)
    assert module.argv[-4:] == ("-m", "pkg.train", "-c", "x") and "--wait-for-client" not in module.argv
    assert module.name == "pkg.train"
    assert build_launch(["train.py", "a"], "attach", 7000, python="/usr/bin/python3").argv[0] == "/usr/bin/python3"
    assert build_launch(["torchrun", "x.py"], "off", 7000).argv == ("torchrun", "x.py")
    for built in (launch, module):
        assert "0.0.0.0" not in " ".join(built.argv)


@pytest.mark.parametrize(
    "command, message",
    [
        (["bash", "run.sh"], "--mode off"),
        (["python", "-m", "debugpy", "--listen", "0.0.0.0:5678", "train.py"], "without '-m debugpy"),
        (["python"], "no script or module"),
        (["python", "-"], "stdin"),
        (["python", "--check-hash-based-pycs", "always", "t.py"], "not supported"),
        ([], "give it after --"),
    ],
)
def test_build_launch_refuses_with_a_reason(command, message):
    with pytest.raises(CommandError, match=message):
        build_launch(command, "attach", 5678)


def test_backoff_doubles_up_to_thirty_seconds():
    assert [backoff_delay(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_tcp_table_and_socket_owners_see_a_listening_socket():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        (mine,) = [s for s in ls.tcp_sockets() if s.port == port]
        assert (mine.address, mine.state, mine.uid) == ("127.0.0.1", "LISTEN", os.getuid())
        assert (os.getpid(), mine) in ls.listening_sockets([os.getpid()])
        assert ls.socket_owners({mine.inode}) == {os.getpid(): mine.inode}


def test_state_is_written_atomically_and_control_without_a_loop_says_so(tmp_path):
    ls.write_state(tmp_path / "state.json", {"status": "running", "loop_pid": 1})
    assert ls.read_state(tmp_path / "state.json")["loop_alive"] is False
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left
    with pytest.raises(ls.LoopError, match="no debug loop is running"):
        ls.send_control(tmp_path, "restart")
    (tmp_path / "bad.json").write_text("{half")
    with pytest.raises(ls.LoopError, match="bad.json"):
        ls.read_state(tmp_path / "bad.json")


def test_output_goes_to_pane_and_log_and_the_tail_keeps_what_a_terminal_shows(tmp_path):
    options = Options(tmp_path / "state.json", 5999, ("python3", "t.py"))
    pane_r, pane_w = os.pipe()
    supervisor = Supervisor(options, build_launch(options.command, "attach", 5999), out_fd=pane_w)
    chunks = [b"epoch 1\r\n", b"\x1b[31mred\x1b[0m\n", b"\r 10%", b"\r 50%", b"\r100%", b"\nhalf", b" line\n", b"\r 3%"]
    for chunk in chunks:
        supervisor.tee.output(chunk)
    supervisor.say("done")
    supervisor._save()
    os.close(pane_w)
    with os.fdopen(pane_r, "rb") as pane:
        assert pane.read() == b"".join(chunks) + b"\ntether: done\n"
    assert (tmp_path / ls.LOG_NAME).read_bytes().startswith(b"".join(chunks) + b"\n[")
    assert ls.read_tail(tmp_path) == ["epoch 1", "red", "100%", "half line", " 3%", "tether: done"]
    assert ls.read_state(options.state)["status"] == "starting"


def test_a_command_the_loop_cannot_debug_is_refused_in_the_state_too(tmp_path):
    state = tmp_path / "loop" / "state.json"
    result = subprocess.run(
        [sys.executable, "-m", "tui.node.loop", "--state", str(state), "--port", "5999", "--", "bash", "run.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2 and "--mode off" in result.stderr
    written = ls.read_state(state)
    assert written["status"] == "stopped" and written["loop_running"] is False and "'bash'" in written["exit_reason"]


# ------------------------------------------------------------------------------ in a tmux pane


def test_ctrl_c_restarts_ctrl_c_twice_leaves_and_debugpy_listens_on_loopback_only(pane):
    pane.start_loop("sleep")
    first = pane.wait_state("running", lambda s: s["status"] == "running")
    assert first["argv"][first["argv"].index("--listen") + 1] == f"127.0.0.1:{pane.port}"

    listening = ls.listening_sockets([first["loop_pid"], *ls.descendants(first["loop_pid"]), *run_processes(first)])
    assert pane.port in {s.port for _pid, s in listening}, listening
    assert {s.address for _pid, s in listening} <= {"127.0.0.1", "::1"}, listening

    pane.keys("C-c")
    second = pane.wait_state("restart 1", lambda s: s["restarts"] == 1 and s["status"] == "running")
    assert second["pid"] != first["pid"]
    assert not [p for p in ls.session_members(first["pgid"]) if alive(p)]

    pane.keys("C-c")
    time.sleep(0.15)  # a person's double press, not a wait for a condition
    pane.keys("C-c")
    wait_for(lambda: not alive(second["loop_pid"]), "the loop to exit")
    wait_for(lambda: pane.command() == "bash", "the pane to return to the shell")
    assert not run_processes(second)
    final = pane.read()
    assert final["status"] == "stopped" and final["loop_running"] is False and final["loop_alive"] is False
    assert "left the loop" in pane.text()


def test_restart_leaves_no_child_of_the_old_run(pane):
    pidfile = pane.dir.parent / "children"
    pane.start_loop("spawn", str(pidfile))
    first = pane.wait_state("running", lambda s: s["status"] == "running")
    children = [int(p) for p in wait_for(lambda: pidfile.exists() and pidfile.read_text(), "children").split()]
    assert len(children) == 2 and all(alive(p) for p in children)
    pidfile.unlink()

    assert ls.send_control(pane.dir, "restart")["ok"]
    pane.wait_state("restart 1", lambda s: s["restarts"] == 1 and s["status"] == "running")
    assert not [p for p in [first["pid"], *children] if alive(p)]  # one child ignores SIGTERM: it got SIGKILL
    wait_for(pidfile.exists, "the new run's children")


def test_control_stop_restart_quit(pane):
    pane.start_loop("sleep")
    first = pane.wait_state("running", lambda s: s["status"] == "running")
    wait_for(lambda: f"debuggee sleep pid={first['pid']} running" in pane.text(), "its output in the pane")
    status = ls.send_control(pane.state, "status")
    assert status["ok"] and status["pid"] == first["pid"]
    by_folder = ls.send_control(pane.dir, "status")  # the loop's folder names it as well as its state file
    assert by_folder["ok"] and by_folder["pid"] == first["pid"]
    assert oct(os.stat(ls.control_path(pane.dir)).st_mode & 0o777) == "0o600"
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.node.loop",
            "--state",
            str(pane.state),
            "--port",
            str(free_port()),
            "--",
            sys.executable,
            DEBUGGEE,
            "sleep",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert second.returncode == 2 and f"another debug loop (pid {first['loop_pid']})" in second.stderr

    out = io.BytesIO()
    agent = Agent(io.BytesIO(), out, lambda text: None, "test")
    ls.register(agent)

    def agent_messages() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines()]

    agent.handle_line(json.dumps({"id": 1, "op": "loop.watch", "state": str(pane.state), "interval": 0.1}).encode())
    agent.handle_line(json.dumps({"id": 2, "op": "loop.control", "state": str(pane.state), "command": "stop"}).encode())
    assert [m for m in agent_messages() if m.get("id") == 2][0]["reply"]["ok"]
    stopped = pane.wait_state("stopped", lambda s: s["status"] == "stopped")
    wait_for(
        lambda: [m for m in agent_messages() if m["op"] == "loop.state" and m["state"]["status"] == "stopped"],
        "the agent's loop.state event",
    )
    agent.handle_line(json.dumps({"id": 3, "op": "loop.status", "state": str(pane.state), "tail": 1}).encode())
    status = [m for m in agent_messages() if m.get("id") == 3][0]
    assert status["state"]["status"] == "stopped" and status["tail"][0].startswith("tether: loop_debuggee.py stopped")
    agent.running = False
    assert stopped["exit_reason"] == "stopped from Tether" and stopped["loop_alive"]
    assert not alive(first["pid"])
    wait_for(lambda: "stopped (stopped from Tether)" in pane.text(), "the stop line in the pane")

    assert ls.send_control(pane.dir, "restart")["ok"]
    again = pane.wait_state("running again", lambda s: s["status"] == "running" and s["restarts"] == 1)
    assert again["pid"] != first["pid"]
    wait_for(lambda: f"debuggee sleep pid={again['pid']} running" in pane.text(), "its output in the pane")

    assert ls.send_control(pane.dir, "quit")["ok"]
    wait_for(lambda: not alive(again["loop_pid"]), "the loop to exit")
    assert not alive(again["pid"]) and not run_processes(again)
    with pytest.raises(ls.LoopError, match="no debug loop is running"):
        ls.send_control(pane.dir, "status")
    log = (pane.dir / ls.LOG_NAME).read_text()
    assert log.count("debuggee sleep") == 2 and "left the loop" in log


def test_a_crash_is_reported_and_restarts_back_off(pane):
    pane.start_loop("crash", "3")
    crashed = pane.wait_state("crashed", lambda s: s["status"] == "crashed")
    assert crashed["exit_code"] == 3 and crashed["exit_reason"] == "loop_debuggee.py exited with code 3"
    wait_for(lambda: f"loop_debuggee.py exited with code 3 — {EXIT_HINT}" in pane.text(), "the exit line")
    tail = ls.read_tail(pane.state)
    assert tail[-2:] == ["about to crash", f"tether: loop_debuggee.py exited with code 3 — {EXIT_HINT}"], tail

    starts, delays = [crashed["started_at"]], []
    for restart in (1, 2, 3):
        reply = ls.send_control(pane.dir, "restart")
        assert reply["status"] == "starting" and reply["next_start_at"] is not None
        delays.append(reply["backoff_s"])
        state = pane.wait_state(f"crash {restart}", lambda s: s["restarts"] == restart and s["status"] == "crashed")
        starts.append(state["started_at"])
    assert delays == [1, 2, 4]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(gap >= max(1.0, delay) for gap, delay in zip(gaps, delays)), (gaps, delays)
    assert state["quick_exits"] == 4


def test_wait_mode_gives_up_without_a_debugger(pane):
    pane.start_loop("sleep", mode="wait", extra=("--wait-timeout", "2"))
    waiting = pane.wait_state("waiting", lambda s: s["status"] == "waiting_for_debugger")
    stopped = pane.wait_state("gave up", lambda s: s["status"] == "stopped")
    assert stopped["exit_reason"] == "no debugger attached within 2 s"
    wait_for(lambda: "no debugger attached within 2 s: stopped loop_debuggee.py" in pane.text(), "the message")
    assert not run_processes(waiting) and stopped["loop_alive"]
    assert "debuggee sleep" not in "\n".join(ls.read_tail(pane.state))  # it never got past debugpy


class Dap:
    """Just enough of the Debug Adapter Protocol to attach to debugpy."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buffer = b""
        self.seq = 0

    def request(self, command: str, **arguments: Any) -> None:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command, "arguments": arguments}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def receive(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        header, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = int(header.split(b":")[1])
        while len(self.buffer) < length:
            self.buffer += self.sock.recv(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return json.loads(body)

    def until(self, kind: str, name: str) -> dict[str, Any]:
        while True:
            message = self.receive()
            if message["type"] == kind and message.get("command", message.get("event")) == name:
                return message

    @classmethod
    def initialized(cls, port: int) -> Dap:
        """Connected, and its ``initialize`` answered."""
        dap = cls(port)
        dap.request("initialize", adapterID="debugpy", clientID="tether-test", linesStartAt1=True)
        dap.until("response", "initialize")
        return dap


def test_a_debugger_attaching_is_seen(pane):
    pane.start_loop("sleep", mode="wait")
    pane.wait_state("waiting", lambda s: s["status"] == "waiting_for_debugger")
    dap = Dap.initialized(pane.port)
    try:
        dap.request("attach", justMyCode=True)
        dap.until("event", "initialized")
        dap.request("configurationDone")
        dap.until("response", "configurationDone")
        attached = pane.wait_state("attached", lambda s: s["status"] == "attached" and s["debugger_clients"] == 1)
        wait_for(lambda: "debuggee sleep" in pane.text(), "the program to run once attached")
    finally:
        dap.sock.close()
    after = pane.wait_state("detached", lambda s: s["status"] != "attached")
    assert after["status"] in ("running", "exited", "stopped") and after["pid"] == attached["pid"]


def test_a_debugger_that_dies_is_said_and_the_run_goes_on(pane):
    """debugpy's adapter can die under a run (issue 14): the loop says so, and the run is no
    longer shown as attached (or starting) for good, and it is not restarted for it."""
    pane.start_loop("sleep", mode="attach")
    pane.wait_state("listening", lambda s: s["status"] == "running")
    dap = Dap.initialized(pane.port)
    try:
        attached = pane.wait_state("attached", lambda s: s["status"] == "attached")
        listening = {s.inode for s in ls.tcp_sockets() if s.port == pane.port and s.state == "LISTEN"}
        (adapter,) = ls.socket_owners(listening)
        os.kill(adapter, signal.SIGKILL)
        gone = pane.wait_state("the adapter gone", lambda s: s["status"] == "running")
    finally:
        dap.sock.close()
    assert gone["pid"] == attached["pid"] and alive(attached["pid"])
    wait_for(lambda: "debugger stopped listening" in pane.text(), "the loop to say it")


def test_closing_the_pane_stops_the_debuggee(pane):
    pane.start_loop("spawn", str(pane.dir.parent / "children"))
    running = pane.wait_state("running", lambda s: s["status"] == "running")
    wait_for((pane.dir.parent / "children").exists, "children")
    subprocess.run(["tmux", "-L", pane.server, "kill-server"], capture_output=True, timeout=10)  # SIGHUP
    wait_for(lambda: not alive(running["loop_pid"]) and not run_processes(running), "the loop and its run to end", 10)
    assert pane.read()["status"] == "stopped"


def test_a_new_loop_stops_what_a_killed_loop_left(pane):
    # Mode off: under debugpy the children are debugpy's followed subprocesses, and debugpy ends
    # them itself ~0.15 s after their parent dies, so whether the new loop still finds them was a
    # race (CI failed on it). Plain children (mode off, or any non-Python worker) stay orphans.
    pidfile = pane.dir.parent / "children"
    pane.start_loop("spawn", str(pidfile), mode="off")
    running = pane.wait_state("running", lambda s: s["status"] == "running")
    children = [int(p) for p in wait_for(lambda: pidfile.exists() and pidfile.read_text(), "children").split()]
    os.kill(running["loop_pid"], signal.SIGKILL)
    wait_for(lambda: not alive(running["pid"]), "the kernel to kill the debuggee (PR_SET_PDEATHSIG)")
    assert all(alive(p) for p in children)  # its children are orphans now
    assert pane.read()["loop_alive"] is False
    wait_for(lambda: pane.command() == "bash", "the shell prompt")

    pane.start_loop("sleep")
    wait_for(lambda: not [p for p in children if alive(p)], "the leftovers to be stopped")
    pane.wait_state("new run", lambda s: s["status"] == "running" and s["loop_pid"] != running["loop_pid"])
    said = "left by the previous loop's run"
    assert said in (pane.dir / ls.LOG_NAME).read_text()  # written before the leftovers were signalled
    # tmux draws what the loop wrote when it next reads the pty: on a busy machine that is later
    wait_for(lambda: said in pane.text(), f"the pane to show '{said}'")

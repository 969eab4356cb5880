"""Only the run's owner reaches its debugger (issue 12, item 2: "any user on the node can run code
as you"). A second user of the node (``nobody``, in the node's namespaces through nsenter and
setpriv) tries every TCP port the owner's processes listen on there (the run, debugpy's adapter:
found in /proc/net/tcp by the owner's uid, not by what Tether says it opened), also while the run
restarts (debugpy's short-lived endpoints port included), and every socket under the owner's
~/.cache/tether and the owner's tmux socket: it never gets a DAP answer, let alone an evaluate. The
owner, with the same probe on the same port, does (so the probe is able to tell). ~/.cache/tether
on the node is the owner's alone (0700): the other user can neither list it nor read a file in it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from debug_helpers import debug_console, debuggable, rank, script_workspace
from node_helpers import Events
from testbed import Testbed

from tui.config import load_workspace
from tui.debug.dap import DapClient
from tui.events import RankStatus
from tui.node import loopstate as ls
from tui.session import Session

pytestmark = pytest.mark.needs_netns

FOREVER = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(0.1)\n"
OTHER = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")

# Run on the node. mode "ports": try each port in PORTS once; mode "watch": for SECONDS, try every
# TCP port the owner (UID) starts listening on, the moment it shows up in /proc/net/tcp. Each try:
# connect, send a DAP initialize; once answered: attach, pause, evaluate where it stopped, continue,
# disconnect. On debugpy's endpoints port the first bytes it reads would already be the attack.
PROBE = r"""
import json, os, socket, sys, time
UID, MODE, ARG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
EXPR = "__import__('os').getuid()"

def frame(seq, command, **arguments):
    body = json.dumps({"seq": seq, "type": "request", "command": command, "arguments": arguments}).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body

def messages(data):
    out = []
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        if len(rest) < length:
            break
        out.append(json.loads(rest[:length]))
        data = rest[length:]
    return out

def attack(port):
    result = {"port": port, "connected": False, "bytes": 0, "initialized": False, "evaluated": None}
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError as exc:
        result["error"] = repr(exc)
        return result
    result["connected"] = True
    state = {"data": b"", "seen": [], "seq": 0}
    deadline = time.time() + 4

    def send(command, **arguments):
        state["seq"] += 1
        sock.sendall(frame(state["seq"], command, **arguments))
        return state["seq"]

    def wait(match):
        while time.time() < deadline:
            for m in state["seen"]:
                if match(m):
                    state["seen"].remove(m)
                    return m
            sock.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return None
            state["data"] += chunk
            found = messages(state["data"])
            state["seen"] += found[state.get("n", 0):]
            state["n"] = len(found)
        return None

    def answer(seq):
        return wait(lambda m: m.get("type") == "response" and m.get("request_seq") == seq)

    try:
        init = answer(send("initialize", adapterID="debugpy", clientID="probe", linesStartAt1=True))
        result["initialized"] = bool(init and init.get("success"))
        if result["initialized"]:
            attach = send("attach", justMyCode=False)
            wait(lambda m: m.get("event") == "initialized")
            send("configurationDone")
            answer(attach)
            threads = answer(send("threads"))
            thread = threads["body"]["threads"][0]["id"] if threads and threads.get("success") else None
            if thread is not None:
                send("pause", threadId=thread)
                wait(lambda m: m.get("event") == "stopped")
                stack = answer(send("stackTrace", threadId=thread))
                frame_id = stack["body"]["stackFrames"][0]["id"] if stack and stack.get("success") else None
                done = answer(send("evaluate", expression=EXPR, frameId=frame_id, context="repl"))
                if done and done.get("success"):
                    result["evaluated"] = done["body"]["result"]
                send("continue", threadId=thread)
            answer(send("disconnect", restart=False, terminateDebuggee=False))
    except OSError as exc:
        result["error"] = repr(exc)
    finally:
        sock.close()
    result["bytes"] = len(state["data"])
    return result

def owner_listeners():
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).readlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[7]) == UID:
                found.add(int(f[1].rsplit(":", 1)[1], 16))
    return found

if MODE == "ports":
    print(json.dumps([attack(int(p)) for p in ARG.split(",")]))
else:
    seen, results, end = owner_listeners(), [], time.time() + float(ARG)
    while time.time() < end:
        for port in sorted(owner_listeners() - seen):
            seen.add(port)
            results.append(attack(port))
        time.sleep(0.002)
    print(json.dumps(results))
"""

# Run on the node: connect to each Unix socket and ask it something (a loop's control socket
# answers "status" with its state; tmux would take a command).
UNIX_PROBE = r"""
import json, socket, sys
out = []
for path in sys.argv[1:]:
    entry = {"path": path}
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(path)
        sock.sendall(b"status\n")
        entry["reply"] = sock.recv(4096).decode(errors="replace")
    except OSError as exc:
        entry["error"] = type(exc).__name__
    out.append(entry)
print(json.dumps(out))
"""


# Join the debug port's SO_REUSEPORT group (the loop's standby binds it beside the run's adapter):
# the kernel lets only the owner's uid in; anyone else would share the run's connections.
JOIN = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    print("joined")
except OSError as exc:
    print("refused", exc.errno)
"""


def on_node(testbed: Testbed, argv: list[str], *, other: bool, timeout: float = 60) -> str:
    """``argv`` on the node (its network, hostname and mount namespaces), as root or as ``nobody``."""
    prefix = [*testbed.node.nsenter_argv(), *(OTHER if other else ())]
    done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def probe(testbed: Testbed, mode: str, arg: str, *, other: bool = True, timeout: float = 60) -> list[dict]:
    if not other:  # the owner: the same probe, as the test user
        done = testbed.node_run_as_user(
            f"/usr/bin/python3 - {testbed.uid} {mode} {arg}", input=PROBE, timeout=timeout, check=True
        )
        return json.loads(done.stdout)
    return json.loads(
        on_node(testbed, ["/usr/bin/python3", "-c", PROBE, str(testbed.uid), mode, arg], other=True, timeout=timeout)
    )


def owner_tcp_listeners(testbed: Testbed) -> set[int]:
    script = (
        "import sys\nfor t in ('/proc/net/tcp', '/proc/net/tcp6'):\n    for l in open(t).readlines()[1:]:\n"
        "        f = l.split()\n        if f[3] == '0A' and int(f[7]) == int(sys.argv[1]):\n"
        "            print(int(f[1].rsplit(':', 1)[1], 16))\n"
    )
    out = on_node(testbed, ["/usr/bin/python3", "-c", script, str(testbed.uid)], other=False)
    return {int(port) for port in out.split()}


def granted(results: list[dict]) -> list[dict]:
    """The tries that got anything from the other end: a byte, a DAP answer, an evaluate."""
    return [r for r in results if r["bytes"] or r["initialized"] or r["evaluated"] is not None]


async def test_a_second_user_on_the_node_cannot_reach_the_debugger_and_the_owner_can(node: Testbed, tmp_path: Path):
    config = script_workspace(tmp_path / "ws", node, FOREVER)
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: debuggable(events)):
        state = rank(events)
        assert state is not None
        # debugpy is there before the probe: the laptop's own client attaches through the forward
        client = await DapClient.connect_initialized("127.0.0.1", state.local_port, timeout=20)
        await client.attach()
        await client.disconnect()

        ports = owner_tcp_listeners(node)
        assert state.port in ports, (state.port, ports)  # the debug port, and debugpy's own server port
        tried = probe(node, "ports", ",".join(map(str, sorted(ports))))
        assert all(r["connected"] for r in tried), tried  # 127.0.0.1 is reachable: only the check stops it
        assert granted(tried) == [], tried

        # While the run restarts: every new listener of the owner, tried the moment it appears.
        watcher = subprocess.Popen(
            [*node.node.nsenter_argv(), *OTHER, "/usr/bin/python3", "-c", PROBE, str(node.uid), "watch", "12"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            await session.restart_run()
            await events.until(
                lambda: (r := rank(events)) is not None and r.restarts == 1 and r.status is RankStatus.RUNNING, 30
            )
            out, err = watcher.communicate(timeout=60)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
        raced = json.loads(out)
        assert raced, f"the watcher saw no new listener of uid {node.uid} during the restart: {err}"
        assert granted(raced) == [], raced

        # The owner's run is untouched, and the same probe as the owner is let in (it can tell).
        assert rank(events).status is RankStatus.RUNNING
        mine = probe(node, "ports", str(state.port), other=False)
        assert mine[0]["initialized"] and mine[0]["evaluated"] == str(node.uid), mine

        # The debug port's group (the standby's way in) takes the owner, and no one else.
        refused = on_node(node, ["/usr/bin/python3", "-c", JOIN, str(state.port)], other=True).split()
        assert refused == ["refused", "98"], refused  # EADDRINUSE
        joined = node.node_run_as_user(f"/usr/bin/python3 - {state.port}", input=JOIN, timeout=30, check=True)
        assert joined.stdout.split() == ["joined"], joined.stdout
    await session.down()


async def test_tethers_sockets_and_folders_on_the_node_are_the_owners_alone(node: Testbed, tmp_path: Path):
    config = script_workspace(tmp_path / "ws", node, FOREVER)
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: debuggable(events)):
        home = node.node_run_as_user("echo $HOME", check=True).stdout.strip()
        cache = f"{home}/.cache/tether"
        listing = on_node(node, ["find", cache, "-printf", "%y %m %p\n"], other=False).splitlines()
        entries = [line.split(" ", 2) for line in listing]
        sockets = [path for kind, _mode, path in entries if kind == "s"]
        control = [path for path in sockets if path.endswith(ls.CONTROL_NAME)]
        assert control, listing  # the loop's control socket is among them
        tmux = node.node_run_as_user("tmux display-message -p '#{socket_path}'", check=True).stdout.strip()

        others = json.loads(on_node(node, ["/usr/bin/python3", "-c", UNIX_PROBE, *sockets, tmux], other=True))
        assert all("error" in entry for entry in others), others  # EACCES before any byte
        mine = json.loads(
            node.node_run_as_user(f"/usr/bin/python3 - {control[0]}", input=UNIX_PROBE, check=True).stdout
        )
        assert '"ok": true' in mine[0].get("reply", ""), mine  # the owner is answered: the probe works

        # ~/.cache/tether is 0700, so nothing inside is reachable by another user, whatever its
        # own mode (the files inside keep the modes their writers give them).
        assert on_node(node, ["stat", "-c", "%a", cache], other=False).strip() == "700"
        files = [path for kind, _mode, path in entries if kind == "f"]
        peek = (
            "import json, os, sys\nout = []\nfor p in sys.argv[1:]:\n    try:\n"
            "        os.listdir(p) if os.path.isdir(p) else open(p).read(1)\n        out.append(p)\n"
            "    except OSError:\n        pass\nprint(json.dumps(out))\n"
        )
        readable = json.loads(on_node(node, ["/usr/bin/python3", "-c", peek, cache, *files], other=True))
        assert readable == [], readable
    await session.down()

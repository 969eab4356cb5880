"""The node agent run as a local process over pipes: the protocol without any ssh."""

import json
import subprocess
import sys

from tui.node import protocol
from tui.remote.agent_channel import agent_bundle, agent_version, start_script


def converse(lines: list[bytes]) -> tuple[list[dict], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tui.node.agent", "test-version"],
        input=b"".join(lines),
        capture_output=True,
        timeout=20,
    )
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr.decode()


def test_agent_says_hello_answers_ping_and_survives_garbage():
    replies, log = converse(
        [
            b'{"id":1,"op":"ping"}\n',
            b"this is not json\n",
            b"[1,2]\n",
            b'{"id":2,"op":"fly"}\n',
            b'{"id":3,"op":"ping"}\n',
        ]
    )
    hello, *rest = replies
    assert (
        hello["op"] == "hello" and hello["protocol"] == protocol.PROTOCOL_VERSION and hello["version"] == "test-version"
    )
    assert [r["op"] for r in rest] == ["pong", "error", "error", "error", "pong"]
    assert rest[-1]["id"] == 3  # still answering after three bad lines
    assert "malformed" in log and "unknown op 'fly'" in log


def test_bye_ends_the_agent():
    replies, _ = converse([b'{"id":1,"op":"bye"}\n', b'{"id":2,"op":"ping"}\n'])
    assert [r["op"] for r in replies] == ["hello", "bye"]


def test_version_changes_with_the_agent_sources_only():
    assert agent_version() == agent_version()
    assert agent_bundle() == agent_bundle()  # same sources, same bytes: nothing to re-ship


def test_start_script_checks_version_before_starting():
    script = start_script("9.9-abc", "/opt/conda/bin/python", ("module load cuda",))
    assert ".cache/tether/agent/9.9-abc" in script
    assert "need_ship" in script and "no_python" in script
    assert script.index("module load cuda") < script.index("/opt/conda/bin/python")

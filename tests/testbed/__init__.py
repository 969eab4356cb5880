"""Test bed for Tether: a real login sshd on loopback and a real compute node sshd in a network
namespace that only the login host can reach (see /work/shared/TESTBED.md).

Use the session fixture `testbed` (tests/conftest.py). Most used:
    testbed.ssh_config            `ssh -F` file with hosts login, compute01 (ProxyJump login),
                                  pwlogin (password only) and compute01-pw (ProxyJump pwlogin)
    testbed.login.count_auths()   "Accepted ..." lines in the login sshd log
    testbed.node_run_as_user(cmd) run as the test user ON the node (its private home)
    testbed.node.stop()/start()   the node's sshd; testbed.node.set_link(False) cuts its cable
    testbed.network.route_for([...ip rule selector...])   more traffic to the node (Slurm ports)
    testbed.node.nsenter_argv()   prefix that runs a daemon inside the node (slurmd)
"""

from .build import build_testbed
from .hosts import ComputeNode, PasswordLogin, Testbed, TestbedUnavailable
from .ssh import SshCmd, run_ssh
from .wait import free_tcp_port, port_accepts, wait_until

__all__ = [
    "ComputeNode",
    "PasswordLogin",
    "SshCmd",
    "Testbed",
    "TestbedUnavailable",
    "build_testbed",
    "free_tcp_port",
    "port_accepts",
    "run_ssh",
    "wait_until",
]

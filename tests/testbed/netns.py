"""The compute node's network: a namespace behind a veth pair that only the test user may route to.

Routing (TESTBED.md section 1): the connected route of the /30 moves from the main table to a
private table, and the main table gets an `unreachable` route for the /30. Policy rules send
selected traffic (the test user's uid, later Slurm ports) to the private table. So the login
sshd's session child, running as the test user, reaches the node, while root (the laptop) gets
"No route to host" at once instead of a connection that hangs.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .commands import run

LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")
_IPV4 = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?\b")
TABLE_RANGE = (1000, 250000)
PREF_RANGE = (1000, 32000)  # below the main table's rule (32766), above the local one (0)


@dataclass(frozen=True)
class NetworkPlan:
    netns: str
    host_veth: str
    node_veth: str
    subnet: ipaddress.IPv4Network
    table: int

    @property
    def host_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def node_ip(self) -> str:
        return str(self.subnet.network_address + 2)


def _networks_in(text: str) -> list[ipaddress.IPv4Network]:
    found = []
    for address, prefix in _IPV4.findall(text):
        try:
            found.append(ipaddress.IPv4Network(address + (prefix or "/32"), strict=False))
        except ValueError:
            pass
    return found


def used_link_local_networks() -> list[ipaddress.IPv4Network]:
    text = run(["ip", "-4", "route", "show", "table", "all"]).stdout
    text += run(["ip", "-4", "-o", "addr", "show"]).stdout
    return [n for n in _networks_in(text) if n.overlaps(LINK_LOCAL)]


def pick_subnet(rng: random.Random, used: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for _ in range(1000):
        # Skip 169.254.0.x and 169.254.255.x, which RFC 3927 reserves.
        candidate = ipaddress.IPv4Network(f"169.254.{rng.randint(1, 254)}.{rng.randrange(0, 256, 4)}/30")
        if not any(candidate.overlaps(n) for n in used if n != LINK_LOCAL):
            return candidate
    raise RuntimeError("no free /30 in 169.254.0.0/16")


def used_rule_prefs() -> set[int]:
    lines = run(["ip", "rule", "show"]).stdout.splitlines()
    lines += run(["ip", "-6", "rule", "show"]).stdout.splitlines()
    return {int(line.split(":", 1)[0]) for line in lines if line.split(":", 1)[0].isdigit()}


def used_tables() -> set[int]:
    text = run(["ip", "rule", "show"]).stdout + run(["ip", "route", "show", "table", "all"]).stdout
    return {int(t) for t in re.findall(r"\b(?:lookup|table) (\d+)\b", text)}


def pick_free(rng: random.Random, bounds: tuple[int, int], used: set[int]) -> int:
    for _ in range(10000):
        value = rng.randint(*bounds)
        if value not in used:
            return value
    raise RuntimeError(f"nothing free in {bounds}")


def plan_network(run_id: str, rng: random.Random) -> NetworkPlan:
    return NetworkPlan(
        netns=f"tbns-{run_id}",
        host_veth=f"tbh-{run_id}",  # interface names are limited to 15 characters
        node_veth=f"tbn-{run_id}",
        subnet=pick_subnet(rng, used_link_local_networks()),
        table=pick_free(rng, TABLE_RANGE, used_tables()),
    )


class NodeNetwork:
    """Creates the namespace and routing of a plan; `record_*` callbacks log each piece for teardown."""

    def __init__(
        self,
        plan: NetworkPlan,
        rng: random.Random,
        record_rule: Callable[[list[str]], None],
        record_route: Callable[[list[str]], None],
    ) -> None:
        self.plan = plan
        self._rng = rng
        self._record_rule = record_rule
        self._record_route = record_route

    def add_namespace(self) -> str | None:
        """Create the namespace; returns why not (no CAP_NET_ADMIN, a container...) on failure."""
        proc = run(["ip", "netns", "add", self.plan.netns], check=False)
        return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit {proc.returncode}")

    def wire(self) -> None:
        """veth pair, addresses and routes for the namespace made by add_namespace()."""
        p = self.plan
        cidr = p.subnet.prefixlen
        run(["ip", "link", "add", p.host_veth, "type", "veth", "peer", "name", p.node_veth])
        run(["ip", "link", "set", p.node_veth, "netns", p.netns])
        run(["ip", "addr", "add", f"{p.host_ip}/{cidr}", "dev", p.host_veth])
        run(["ip", "link", "set", p.host_veth, "up"])
        run(["ip", "-n", p.netns, "addr", "add", f"{p.node_ip}/{cidr}", "dev", p.node_veth])
        run(["ip", "-n", p.netns, "link", "set", p.node_veth, "up"])
        run(["ip", "-n", p.netns, "link", "set", "lo", "up"])
        # Without this the kernel's connected route would let every local user reach the node.
        run(["ip", "route", "del", str(p.subnet), "dev", p.host_veth])
        self._add_route([str(p.subnet), "dev", p.host_veth, "src", p.host_ip, "table", str(p.table)])
        # Root's packets to the node must fail at once, not wander off along the default route.
        self._add_route(["unreachable", str(p.subnet)])

    def _add_route(self, args: list[str]) -> None:
        self._record_route(args)
        run(["ip", "route", "add", *args])

    def route_for(self, selector: Sequence[str]) -> int:
        """Send traffic matching `selector` (words of `ip rule`) to the node; returns the pref used.

        Example: route_for(["to", subnet, "ipproto", "tcp", "dport", "6818"]) for slurmd.
        """
        pref = pick_free(self._rng, PREF_RANGE, used_rule_prefs())
        args = ["pref", str(pref), *selector, "lookup", str(self.plan.table)]
        self._record_rule(args)
        run(["ip", "rule", "add", *args])
        return pref

    def route_for_uid(self, uid: int) -> int:
        return self.route_for(["uidrange", f"{uid}-{uid}"])

    def set_link(self, up: bool) -> None:
        """Pull or reconnect the node's cable (for link-drop tests).

        The node's end goes down, not ours: taking our end down would delete our routes for the
        /30, and bringing it up would restore the kernel's connected route in the main table,
        which makes the node reachable for every local user.
        """
        run(["ip", "-n", self.plan.netns, "link", "set", self.plan.node_veth, "up" if up else "down"])

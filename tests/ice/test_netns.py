"""A real NAT test: two agents behind two Linux NATs (network namespaces made here).

Topology, all inside namespaces this test creates and deletes::

    host A 10.0.1.2 -- 10.0.1.1 [NAT A] 198.51.100.1 --.
                                                      [public] 198.51.100.254 (netcore-turn: STUN + TURN)
    host B 10.0.2.2 -- 10.0.2.1 [NAT B] 198.51.101.1 --'        198.51.101.254

The NATs are nftables masquerade: plain masquerade keeps the source port for
every destination (endpoint-independent mapping, conntrack filtering by
address and port: a port-restricted cone), so a direct path must be found;
``fully-random`` masquerade picks a new port per destination
(address-and-port-dependent mapping, "symmetric"), so the relay must be used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.timeout(90)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def namespaces_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root for ip netns"
    require_program("ip")
    require_program("nft")  # apt-get install -y nftables; fails under CI when missing
    probe = f"ncprobe{os.getpid()}"
    try:
        sh("ip", "netns", "add", probe)
        sh("ip", "netns", "del", probe)
    except subprocess.CalledProcessError as exc:
        return f"network namespaces are forbidden here: {exc.stderr.decode().strip()}"
    return None


class Topology:
    def __init__(self, random_ports: bool) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = {name: f"nc{tag}{name}" for name in ("p", "na", "nb", "ha", "hb")}
        self.tag = tag
        self.random_ports = random_ports

    def ex(self, ns: str, *cmd: str) -> None:
        sh("ip", "netns", "exec", self.ns[ns], *cmd)

    def veth(self, left_ns: str, left: str, right_ns: str, right: str) -> None:
        a, b = f"v{self.tag}{left}", f"v{self.tag}{right}"
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", self.ns[left_ns])
        sh("ip", "link", "set", b, "netns", self.ns[right_ns])
        self.ex(left_ns, "ip", "link", "set", a, "name", left)
        self.ex(right_ns, "ip", "link", "set", b, "name", right)

    def up(self) -> None:
        for name in self.ns.values():
            sh("ip", "netns", "add", name)
        for ns in self.ns:
            self.ex(ns, "ip", "link", "set", "lo", "up")
        for side, octet in (("a", 100), ("b", 101)):
            index = "1" if side == "a" else "2"
            nat, host = f"n{side}", f"h{side}"
            self.veth("p", f"p{side}", nat, "out")
            self.veth(nat, "in", host, "eth")
            self.ex("p", "ip", "addr", "add", f"198.51.{octet}.254/24", "dev", f"p{side}")
            self.ex("p", "ip", "link", "set", f"p{side}", "up")
            self.ex(nat, "ip", "addr", "add", f"198.51.{octet}.1/24", "dev", "out")
            self.ex(nat, "ip", "addr", "add", f"10.0.{index}.1/24", "dev", "in")
            self.ex(nat, "ip", "link", "set", "out", "up")
            self.ex(nat, "ip", "link", "set", "in", "up")
            self.ex(nat, "ip", "route", "add", "default", "via", f"198.51.{octet}.254")
            self.ex(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            masquerade = "masquerade fully-random" if self.random_ports else "masquerade"
            self.ex(nat, "nft", "add table ip nat")
            self.ex(nat, "nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }")
            self.ex(nat, "nft", f"add rule ip nat post oifname \"out\" {masquerade}")
            # Drop unsolicited inbound before conntrack confirms it: otherwise the
            # entry it leaves makes the NAT pick another port for the host's own
            # later packet to that peer (a port clash), as a home router would not.
            self.ex(nat, "nft", "add table ip filter")
            self.ex(nat, "nft", "add chain ip filter pre { type filter hook prerouting priority 0 ; }")
            self.ex(nat, "nft", 'add rule ip filter pre iifname "out" ct state new drop')
            self.ex(host, "ip", "addr", "add", f"10.0.{index}.2/24", "dev", "eth")
            self.ex(host, "ip", "link", "set", "eth", "up")
            self.ex(host, "ip", "route", "add", "default", "via", f"10.0.{index}.1")
        self.ex("p", "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def down(self) -> None:
        for name in self.ns.values():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)

    def popen(self, ns: str, *cmd: str, **options) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.Popen(["ip", "netns", "exec", self.ns[ns], *cmd], env=env, cwd=ROOT, **options)


def run_call(topology: Topology, tmp_path: Path) -> tuple[dict, dict]:
    server = "198.51.100.254:3478"
    with open(tmp_path / "turn.log", "wb") as log:
        daemon = topology.popen("p", sys.executable, "-m", "servers.turn.main", "--listen", server,
                                "--user", "test:test", "--relay-ip", "198.51.100.254",
                                stdout=log, stderr=subprocess.STDOUT)
    agents: list[subprocess.Popen] = []
    try:
        probe = topology.popen("ha", sys.executable, "-c",
                               "from tests.peers import wait_for_stun; wait_for_stun(3478, '198.51.100.254')")
        assert probe.wait(20) == 0, "the TURN daemon did not answer"
        for ns, ip, controlling in (("ha", "10.0.1.2", True), ("hb", "10.0.2.2", False)):
            cmd = [sys.executable, str(ROOT / "tests/ice/netns_agent.py"), "--ip", ip, "--server", server]
            if controlling:
                cmd.append("--controlling")
            agents.append(topology.popen(ns, *cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        offers = [agent.stdout.readline() for agent in agents]
        agents[0].stdin.write(offers[1])
        agents[1].stdin.write(offers[0])
        for agent in agents:
            agent.stdin.flush()
        results = [json.loads(agent.stdout.readline() or "{}") for agent in agents]
        for agent in agents:  # both are done: each may stop answering the other
            agent.stdin.write("done\n")
            agent.stdin.flush()
        for agent in agents:
            agent.wait(20)
        return results[0], results[1]
    finally:
        for process in [*agents, daemon]:
            if process.poll() is None:
                process.terminate()
                process.wait(5)


@pytest.fixture
def topology_factory():
    reason = namespaces_available()
    if reason:
        pytest.fail(reason)  # a missing capability fails: a skipped interop test proves nothing
    made = []

    def make(random_ports: bool) -> Topology:
        topology = Topology(random_ports)
        made.append(topology)
        topology.up()
        return topology

    yield make
    for topology in made:
        topology.down()


def test_direct_path_through_cone_like_nats(topology_factory, tmp_path):
    a, b = run_call(topology_factory(False), tmp_path)
    assert a["echo"] and b["echo"], (a, b)
    assert not a["relayed"] and not b["relayed"], (a, b)


def test_relay_behind_address_and_port_dependent_nats(topology_factory, tmp_path):
    a, b = run_call(topology_factory(True), tmp_path)
    assert a["echo"] and b["echo"], (a, b)
    assert a["relayed"] and b["relayed"], (a, b)

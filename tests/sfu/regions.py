"""Regions for broadcast tests: network namespaces joined by a router that adds each region's delay.

The kernel here has no netem (/work/shared/README.md), so the delay is a
userspace router: ``python -m tests.sfu.regions`` (started by
:class:`Regions`) makes one TUN device in every region's namespace, each
namespace's only address on it (``PREFIX.R.1``) and a route to the other
regions through it; every IPv4 packet it reads goes out of the TUN of the
region its destination is in (the third octet), after the delay of the
region it came from plus that of the region it goes to. TCP and UDP alike:
signaling, the cascade's WebSocket and its media all cross it.

A host may sit behind its region on a veth pair of its own
(:meth:`Regions.host`), with ``tbf`` shaping what the region sends it.
The namespaces (and with them the TUNs, veths and qdiscs) are deleted by
:meth:`Regions.down`.
"""

from __future__ import annotations

import ctypes
import fcntl
import heapq
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.peer.netns import Netns, sh, veth

ROOT = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
TUN_NAME = "rt0"


class Regions:
    """Namespaces by region name, ``delays`` (one way, seconds) between each and the router."""

    def __init__(self, delays: dict[str, float], log: Path) -> None:
        self.prefix = f"10.{100 + os.getpid() % 100}"
        self.namespaces: dict[str, Netns] = {}
        self.number: dict[str, int] = {}
        self.router: subprocess.Popen | None = None
        try:
            for index, name in enumerate(delays):
                self.namespaces[name] = Netns(name[:4])
                self.number[name] = index
            spec = [f"{self.namespaces[n].name}={self.prefix}.{self.number[n]}.1={delays[n]}" for n in delays]
            self.router = subprocess.Popen([sys.executable, "-m", "tests.sfu.regions", *spec],
                                           stdout=subprocess.PIPE, stderr=open(log, "wb"), cwd=ROOT,
                                           env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True)
            line = self.router.stdout.readline()
            if not line.startswith("routing"):
                raise RuntimeError(f"the router did not start: {line!r} {log.read_text()[-2000:]}")
        except BaseException:
            self.down()
            raise

    def ip(self, region: str) -> str:
        """The region's address (on its TUN)."""
        return f"{self.prefix}.{self.number[region]}.1"

    def host(self, region: str, name: str, rate: str) -> tuple[Netns, str]:
        """A namespace behind ``region`` on a veth pair whose region end sends at most ``rate`` (tbf, e.g.
        "400kbit"): the namespace and its address (in the region's range, so the router sends it there)."""
        ns = Netns(name[:4])
        self.namespaces[name] = ns
        region_ns = self.namespaces[region]
        near, far = f"{self.prefix}.{self.number[region]}.65", f"{self.prefix}.{self.number[region]}.66"
        a, _ = veth(region_ns, near, ns, far, prefix=30)
        ns.ex("ip", "route", "add", "default", "via", near)
        region_ns.ex("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        region_ns.ex("tc", "qdisc", "replace", "dev", a, "root", "tbf", "rate", rate, "burst", "10kb",
                     "latency", "100ms")
        return ns, far

    def down(self) -> None:
        if self.router is not None and self.router.poll() is None:
            self.router.terminate()
            try:
                self.router.wait(5)
            except subprocess.TimeoutExpired:
                self.router.kill()
                self.router.wait()
        for ns in self.namespaces.values():
            ns.down()


# -- the router (its own process: it enters each namespace to make the TUN there) ---------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def tun_in(namespace: str) -> int:
    """A TUN device named TUN_NAME in ``namespace`` (the device lives as long as the descriptor)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(target)
        tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", TUN_NAME.encode(), IFF_TUN | IFF_NO_PI))
    finally:
        _setns(own)
        os.close(own)
        os.close(target)
    return tun


def route(regions: list[tuple[str, str, float]]) -> None:
    """Forward between the regions' TUNs forever, each packet held for both ends' delays."""
    tuns: dict[int, tuple[int, float]] = {}  # third octet -> (fd, delay)
    for namespace, ip, delay in regions:
        fd = tun_in(namespace)
        prefix = ".".join(ip.split(".")[:2])
        for cmd in (["ip", "addr", "add", f"{ip}/32", "dev", TUN_NAME], ["ip", "link", "set", TUN_NAME, "up"],
                    ["ip", "route", "add", f"{prefix}.0.0/16", "dev", TUN_NAME]):
            sh("ip", "netns", "exec", namespace, *cmd)
        tuns[int(ip.split(".")[2])] = (fd, delay)
    try:
        os.nice(-10)  # the delay must stay what it is on a loaded machine: our own process, as root
    except OSError:
        pass
    print("routing", flush=True)
    delay_of = {fd: d for fd, d in tuns.values()}
    queue: list[tuple[float, int, int, bytes]] = []
    sequence = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        ready, _, _ = select.select(list(delay_of), [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            while True:
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    break
                if len(packet) < 20 or packet[0] >> 4 != 4 or packet[18] not in tuns:
                    continue  # not IPv4 to a region
                out, delay = tuns[packet[18]]
                sequence += 1
                heapq.heappush(queue, (now + delay_of[fd] + delay, sequence, out, packet))
        while queue and queue[0][0] <= time.monotonic():
            _, _, out, packet = heapq.heappop(queue)
            try:
                os.write(out, packet)
            except OSError:
                pass  # a full queue drops, as a router would


if __name__ == "__main__":
    route([(ns, ip, float(d)) for ns, ip, d in (arg.split("=") for arg in sys.argv[1:])])

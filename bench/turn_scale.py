"""Relay benchmark at an operator's scale: many allocations at once, netcore-turn beside coturn.

Both servers run side by side for the whole benchmark, configured alike (one
worker / ``--relay-threads=1``, or ``--workers N`` / ``--relay-threads=N``).
For each server a fleet of sans-IO TURN clients (``tests/turn/fleet.py``)
creates the allocations through the 401 exchange, binds one channel each to
a C echo peer, and the C generator (``bench/turn_relay_gen.c -m``) then
drives every allocation's 5-tuple at once. Printed per server and load:

* set-up rates: allocations/s through the 401 exchange, ChannelBinds/s,
  Refreshes/s and deletes/s (the fleet is the same Python client for both;
  medians over ``--setup-rounds`` cycles of a fresh fleet, the servers
  alternating),
  and the server's CPU microseconds per request in each of those phases
  (``/proc/PID/task/*/schedstat`` before and after the phase, divided by the
  allocations): far less noisy than the rates on a shared machine, where the
  fleet's own CPU and other processes set the pace;
* memory per allocation (the first set-up cycle): the server's RSS after the allocations and their
  channels minus before, divided by their number (all processes of a server);
* CPU microseconds per relayed packet (``/proc/PID/task/*/schedstat`` of
  every process, divided by the packets relayed both ways) and loss;
* round-trip p50/p99 and the latency added over the same flows without a
  relay (``direct``);

then the ratios netcore/coturn. Loads: 1,000 allocations at 50 packets/s of
160 B and 100 allocations at 300 packets/s of 1,200 B (``--loads``). Runs go
round by round, each round every server once in a rotated order; medians.
``--servers netcore,netcore-py,coturn`` adds the daemon with the STUN codec's
byte work in Python (``NETCORE_STUN_CODEC=python``), to see what the compiled
codec (``netcore/stun/_codec.c``) saves in the same run.

``--cpu-share Q`` holds each server to Q of a core per worker (one cgroup with
CFS bandwidth control per server, its every process and thread inside from
the start; root): the generator, the echo peer and the fleet keep the rest
of this two-core machine, so what is measured is the server's capacity and
not the machine's. ``--zero-loss`` adds each server's zero-loss throughput
at each load's allocations and payload: the highest total rate of a
geometric ramp (x1.25, then halved steps to about 3 %) that loses nothing
in ``--ramp-seconds``, each step tried three times. ``--workers 1,2`` runs every server once per count side
by side (``netcore`` and ``netcore/2``, ``coturn`` and ``coturn/2``) and
prints how the zero-loss throughput scales: with ``--cpu-share 0.3`` one
worker gets 0.3 of a core and two get 0.6, the generator and the echo peer
the other core and a bit.
Usage: ``python bench/turn_scale.py [--rounds N] [--setup-rounds N] [--seconds S] [--workers N[,N]]
[--servers ...] [--cpu-share Q] [--zero-loss]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.peers import running, wait_for_stun  # noqa: E402
from tests.turn.fleet import Fleet  # noqa: E402
from tests.turn.live import free_port_range  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _cgroup import cpu_group, joined  # noqa: E402
from turn_relay import build, echo_peer, median  # noqa: E402

USER, PASSWORD, REALM = "bench", "bench", "bench.example"
_PHASES = ("alloc", "bind", "refresh", "delete")
CHANNEL = 0x4000


def start_netcore(workdir: Path, port: int, low: int, high: int, workers: int, group: Path | None = None,
                  codec: str = "compiled"):
    """The daemon (inside cgroup ``group``, if given); ``codec`` ``python`` has the STUN codec's byte work done in
    Python (netcore.stun.compiled)."""
    cmd = [sys.executable, "-m", "servers.turn.main", "--listen", f"127.0.0.1:{port}", "--realm", REALM,
           "--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers", "--min-port", str(low),
           "--max-port", str(high), "--log-level", "warning", "--user-quota", "100000",
           "--total-quota", "100000", "--workers", str(workers)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if codec == "python":
        env["NETCORE_STUN_CODEC"] = "python"
    return running(joined(group, cmd), workdir / f"netcore-{codec}-{workers}.log", env=env)


def start_netcore_python(workdir: Path, port: int, low: int, high: int, workers: int, group: Path | None = None):
    return start_netcore(workdir, port, low, high, workers, group, codec="python")


def start_coturn(workdir: Path, port: int, low: int, high: int, workers: int, group: Path | None = None):
    empty = workdir / "empty.conf"
    empty.write_text("")
    cmd = [shutil.which("turnserver") or "turnserver", "-c", str(empty), "-n", "--listening-ip=127.0.0.1",
           f"--listening-port={port}", "--relay-ip=127.0.0.1", f"--min-port={low}", f"--max-port={high}",
           "--lt-cred-mech", f"--user={USER}:{PASSWORD}", f"--realm={REALM}", "--allow-loopback-peers",
           "--no-tls", "--no-dtls", "--no-cli", f"--relay-threads={workers}", f"--userdb={workdir / f'turndb-{workers}'}",
           f"--pidfile={workdir / f'turn-{workers}.pid'}", "--log-file=stdout", "--simple-log", "--fingerprint",
           "--no-stdout-log"]
    return running(joined(group, cmd), workdir / f"coturn-{workers}.log")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the netcore supervisor's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def cpu_ns(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def generate(gen: str, socks: list[socket.socket], channel: int, size: int, rate: float, seconds: float):
    fds = [s.fileno() for s in socks]
    done = subprocess.run([gen, "-m", ",".join(map(str, fds)), str(channel), str(size), str(rate), str(seconds)],
                          pass_fds=fds, capture_output=True, text=True, check=True)
    sent, received, p50, p99, strays = (int(v) for v in done.stdout.split())
    return sent, received, p50, p99, strays


def drain(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
            while True:
                sock.recv(70000)


def tune(sock: socket.socket) -> None:
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 1 << 20)


def set_up(name: str, port: int, pids: list[int], count: int, peer, first: int = 0) -> tuple[Fleet, dict]:
    """A fleet of ``count`` allocations on the server, channels bound to ``peer``; set-up figures. The clients
    live at the addresses of ``first`` on (:func:`tests.turn.fleet.client_host`)."""
    rss_before = rss_kib(pids)
    fleet = Fleet(("127.0.0.1", port), USER, PASSWORD, count, peer=peer, first=first)
    for sock in fleet.sockets:
        tune(sock)
    setup: dict[str, float] = {}
    allocate = timed_phase(fleet.allocate, pids, count, setup, "alloc")
    bind = timed_phase(fleet.bind, pids, count, setup, "bind")
    time.sleep(0.5)
    memory = (rss_kib(pids) - rss_before) * 1024 / count
    refresh = timed_phase(fleet.refresh, pids, count, setup, "refresh")
    setup.update({"alloc/s": count / allocate, "bind/s": count / bind, "refresh/s": count / refresh,
                  "bytes/alloc": memory})
    return fleet, setup


def delete_fleet(fleet: Fleet, pids: list[int], count: int, setup: dict) -> None:
    """Every allocation of ``fleet`` deleted (its rate and CPU per request into ``setup``).

    The caller closes the fleet once the load is done: a later fleet's client
    socket must not get the 5-tuple of one whose deleted allocation the server
    still remembers (coturn answers 437 for a while).
    """
    for sock in fleet.sockets:
        sock.setblocking(False)
    drain(fleet.sockets)
    setup["delete/s"] = count / timed_phase(fleet.delete, pids, count, setup, "delete")


def timed_phase(phase, pids: list[int], count: int, setup: dict, name: str) -> float:
    """Run one fleet phase; its seconds, and the server's CPU us per request in ``setup["<name> us"]``."""
    before = cpu_ns(pids)
    seconds = phase(120)
    setup[f"{name} us"] = (cpu_ns(pids) - before) / 1000 / count
    return seconds


def zero_loss(gen: str, socks: list[socket.socket], channel: int, size: int, seconds: float,
              ceiling: float | None = None) -> int:
    """The highest total rate (round trips/s over every flow of ``socks``) that loses nothing in ``seconds``.

    A geometric ramp from 2,000 (x1.25) to the first rate that loses, then three halvings of the step
    between the rate under it (the last that did not, or 1,600) and that one: about 3 %. Each rate is
    tried three times (a stray stall is not the server's ceiling). The ramp stops above ``ceiling`` (a
    rate known to be past every server's)."""
    def lossless(rate: float) -> float | None:
        for _ in range(3):
            drain(socks)
            sent, received, _, _, _ = generate(gen, socks, channel, size, rate / len(socks), seconds)
            if received >= sent:
                return sent / seconds
        return None

    best, rate = 0.0, 2000.0
    while rate <= 1_000_000 and (ceiling is None or rate <= ceiling * 1.25):
        carried = lossless(rate)
        if carried is None:
            break
        best, rate = carried, rate * 1.25
    else:
        return round(best)
    low, high = rate / 1.25, rate
    for _ in range(3):
        middle = (low * high) ** 0.5
        carried = lossless(middle)
        if carried is None:
            high = middle
        else:
            best, low = carried, middle
    return round(best)


def server_name(kind: str, workers: int) -> str:
    """``netcore`` for one worker, ``netcore/2`` for two."""
    return kind if workers == 1 else f"{kind}/{workers}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--workers", default="1",
                        help="netcore --workers and coturn --relay-threads; a list (1,2) runs each server once per "
                             "count, side by side")
    parser.add_argument("--cpu-share", type=float, default=None, metavar="Q",
                        help="hold each server to Q of a core per worker (a cgroup; root)")
    parser.add_argument("--zero-loss", action="store_true",
                        help="each server's zero-loss throughput at each load's allocations and payload")
    parser.add_argument("--ramp-seconds", type=float, default=2.0, help="each step of the zero-loss ramp")
    parser.add_argument("--loads", default="1000x50x160,100x300x1200", help="ALLOCATIONSxPPSxBYTES,...")
    parser.add_argument("--servers", default="netcore,coturn",
                        help="of netcore, netcore-py (the STUN codec's byte work in Python), coturn; the set-up "
                             "cycles run them in this order")
    parser.add_argument("--setup-rounds", type=int, default=3,
                        help="set-up cycles (allocate, bind, refresh, delete) per server and load; medians")
    args = parser.parse_args()
    worker_counts = [int(v) for v in args.workers.split(",")]
    loads = [tuple(int(v) for v in load.split("x")) for load in args.loads.split(",")]
    total = sum(count for count, _, _ in loads)  # coturn holds a deleted allocation's port a while
    workdir = Path(tempfile.mkdtemp(prefix="turn-scale-"))
    gen, echo_bin = build(workdir)
    results: dict[str, dict] = {}
    try:
        with contextlib.ExitStack() as stack:
            peer = stack.enter_context(echo_peer(echo_bin))
            servers = {}
            # One range for both, split: the servers bind relay ports only as clients allocate, so two
            # ranges each free when chosen could overlap and one server would take the other's ports.
            span = total * args.setup_rounds + 50 * max(worker_counts)
            known = {"netcore": start_netcore, "netcore-py": start_netcore_python, "coturn": start_coturn}
            # In the order given: the set-up cycles run the servers in that order (coturn,netcore for the other one).
            starters = [(server_name(kind, workers), known[kind], workers) for workers in worker_counts
                        for kind in args.servers.split(",") if kind in known]
            first, _ = free_port_range(len(starters) * span)
            for index, (name, starter, workers) in enumerate(starters):
                port = free_port()
                low, high = first + index * span, first + (index + 1) * span - 1
                share = None if args.cpu_share is None else args.cpu_share * workers
                group = stack.enter_context(cpu_group(share, name.replace("/", "-")))
                proc = stack.enter_context(starter(workdir, port, low, high, workers, group))
                wait_for_stun(port)
                time.sleep(0.5)
                servers[name] = (port, proc.pid)
            if args.cpu_share is not None:
                print(f"each server held to {args.cpu_share:g} of a core per worker", flush=True)
            # Every fleet's clients on loopback addresses of their own: coturn remembers a deleted allocation's
            # 5-tuple a while (437 to a later client given the same port), and our server limits 401 answers per
            # source address (a fleet right after another from the same addresses waits out retransmissions).
            first_client = 0
            for count, pps, size in loads:
                label = f"{count}x{pps}x{size}"
                direct = []
                for _ in range(count):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    tune(sock)
                    sock.connect(peer)
                    direct.append(sock)
                targets = {"direct": (direct, [], 0)}
                fleets = []
                cycles: dict[str, list[dict]] = {name: [] for name in servers}
                spent: list[Fleet] = []
                for _ in range(args.setup_rounds - 1):  # the servers alternate, as in the relay rounds
                    for name, (port, pid) in servers.items():
                        pids = process_tree(pid)
                        fleet, setup = set_up(name, port, pids, count, peer, first_client)
                        first_client += -(-count // 32) * 32
                        delete_fleet(fleet, pids, count, setup)
                        cycles[name].append(setup)
                        spent.append(fleet)
                for name, (port, pid) in servers.items():
                    pids = process_tree(pid)
                    fleet, setup = set_up(name, port, pids, count, peer, first_client)
                    first_client += -(-count // 32) * 32
                    fleets.append((name, fleet, pids, setup))
                    results.setdefault(name, {})[label] = {"setup": {}, "runs": []}
                    targets[name] = (fleet.sockets, pids, CHANNEL)
                results.setdefault("direct", {})[label] = {"setup": {}, "runs": []}
                names = list(targets)
                for round_ in range(args.rounds):
                    for name in names[round_ % len(names):] + names[: round_ % len(names)]:
                        socks, pids, channel = targets[name]
                        drain(socks)
                        before = cpu_ns(pids)
                        sent, received, p50, p99, strays = generate(gen, socks, channel, size, pps, args.seconds)
                        used = cpu_ns(pids) - before
                        cpu = used / 1000 / (sent + received) if pids and sent else None
                        results[name][label]["runs"].append((cpu, (sent - received) / sent, p50, p99, strays))
                if args.zero_loss:
                    for name in names[1:]:
                        socks, pids, channel = targets[name]
                        best = zero_loss(gen, socks, channel, size, args.ramp_seconds)
                        results[name][label]["zero-loss"] = best
                        print(f"{name} {label}: zero loss up to {best} round trips/s", flush=True)
                    # the floor's ramp shows the generator and the echo peer were not what stopped the servers
                    top = max(results[name][label]["zero-loss"] for name in names[1:])
                    best = zero_loss(gen, direct, 0, size, args.ramp_seconds, ceiling=top)
                    results["direct"][label]["zero-loss"] = best
                    print(f"direct {label}: zero loss up to {best} round trips/s", flush=True)
                for name, fleet, pids, setup in fleets:
                    delete_fleet(fleet, pids, count, setup)
                    cycles[name].append(setup)
                    spent.append(fleet)
                    merged = {key: median([c[key] for c in cycles[name]]) for key in setup}
                    merged["bytes/alloc"] = cycles[name][0]["bytes/alloc"]  # later cycles reuse the memory
                    results[name][label]["setup"] = merged
                for fleet in spent:
                    fleet.close()
                for sock in direct:
                    sock.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, [f"{c}x{p}x{s}" for c, p, s in loads], worker_counts, args.cpu_share)


def report(results: dict, labels: list[str], worker_counts: list[int], share: float | None) -> None:
    held = "" if share is None else f", each held to {share:g} of a core per worker"
    print(f"\nTURN relay, many allocations at once (ALLOCATIONS x packets/s each x payload bytes), "
          f"{'/'.join(map(str, worker_counts))} worker(s)/relay thread(s){held}; medians over the rounds; "
          f"NAME/N is N workers\n")
    print(f"{'server':10} {'load':>13} {'alloc/s':>8} {'bind/s':>8} {'refr/s':>8} {'del/s':>8} {'B/alloc':>8} "
          f"{'cpu us/pkt':>10} {'loss':>7} {'p50 us':>7} {'p99 us':>7} {'+p50':>6} {'+p99':>6} {'strays':>6}")
    summary: dict[str, dict] = {}
    for label in labels:
        direct = results["direct"][label]["runs"]
        floor = (median([r[2] for r in direct]), median([r[3] for r in direct]))
        for name, by_label in results.items():
            entry = by_label[label]
            runs, setup = entry["runs"], entry["setup"]
            cpu = median([r[0] for r in runs])
            loss = median([r[1] for r in runs])
            p50, p99 = median([r[2] for r in runs]), median([r[3] for r in runs])
            strays = sum(r[4] for r in runs)
            added = (p50 - floor[0], p99 - floor[1]) if name != "direct" else (None, None)
            summary.setdefault(name, {})[label] = (cpu, loss, added, setup)

            def num(key, spec=".0f"):
                return format(setup[key], spec) if key in setup else "-"

            print(f"{name:10} {label:>13} {num('alloc/s'):>8} {num('bind/s'):>8} {num('refresh/s'):>8} "
                  f"{num('delete/s'):>8} {num('bytes/alloc'):>8} {'-' if cpu is None else format(cpu, '.2f'):>10} "
                  f"{loss:>7.3%} {p50:>7} {p99:>7} {'-' if added[0] is None else added[0]:>6} "
                  f"{'-' if added[1] is None else added[1]:>6} {strays:>6}")
    print("\nserver CPU microseconds per request during each set-up phase (schedstat of every thread)")
    print(f"{'server':10} {'load':>13} " + " ".join(f"{p:>8}" for p in _PHASES))
    for label in labels:
        for name, by_label in summary.items():
            setup = by_label[label][3]
            if name != "direct":
                print(f"{name:10} {label:>13} " + " ".join(
                    f"{setup[p + ' us']:>8.1f}" if p + " us" in setup else f"{'-':>8}" for p in _PHASES))
    for workers in worker_counts:
        theirs_name = server_name("coturn", workers)
        for ours_name in (server_name("netcore", workers), server_name("netcore-py", workers)):
            if ours_name not in summary or theirs_name not in summary:
                continue
            print(f"\nratios {ours_name}/{theirs_name} (targets: cpu <= 1.0, added p99 <= 1.0, set-up rate >= 1.0)")
            for label in labels:
                ours, theirs = summary[ours_name][label], summary[theirs_name][label]
                parts = []
                if ours[0] and theirs[0]:
                    parts.append(f"cpu {ours[0] / theirs[0]:.2f}")
                for index, name in ((0, "p50"), (1, "p99")):
                    a, b = ours[2][index], theirs[2][index]
                    parts.append(f"added {name} {a / b:.2f}" if b and b > 0 else f"added {name} -")
                for key in ("alloc/s", "bind/s", "refresh/s", "delete/s"):
                    if key in ours[3] and key in theirs[3]:
                        parts.append(f"{key} {ours[3][key] / theirs[3][key]:.2f}")
                for phase in _PHASES:
                    key = phase + " us"
                    if key in ours[3] and key in theirs[3]:
                        parts.append(f"{phase} cpu/request {ours[3][key] / theirs[3][key]:.2f}")
                ours_max = results[ours_name][label].get("zero-loss")
                theirs_max = results[theirs_name][label].get("zero-loss")
                if ours_max is not None and theirs_max:
                    parts.append(f"zero-loss {ours_max / theirs_max:.2f}")
                parts.append(f"memory {ours[3]['bytes/alloc']:.0f} vs {theirs[3]['bytes/alloc']:.0f} B/alloc")
                print(f"  {label:>13}: " + ", ".join(parts))
    scaling(results, labels, worker_counts)


def scaling(results: dict, labels: list[str], worker_counts: list[int]) -> None:
    """Each server's zero-loss throughput at N workers over its own at one (target: 1.8 at two)."""
    if 1 not in worker_counts or len(worker_counts) < 2:
        return
    print("\nzero-loss round trips/s by workers, and over one worker's (target: >= 1.8 at 2)")
    for label in labels:
        for kind in ("netcore", "netcore-py", "coturn"):
            one = results.get(kind, {}).get(label, {}).get("zero-loss")
            if not one:
                continue
            parts = [f"1: {one}"]
            for workers in worker_counts:
                best = results.get(server_name(kind, workers), {}).get(label, {}).get("zero-loss")
                if workers != 1 and best is not None:
                    parts.append(f"{workers}: {best} ({best / one:.2f}x)")
            print(f"  {kind:10} {label:>13}: " + ", ".join(parts))
        floor = results.get("direct", {}).get(label, {}).get("zero-loss")
        if floor is not None:
            print(f"  {'direct':10} {label:>13}: {floor} (the generator and echo peer alone, ramped to 1.25x the "
                  f"best server's)")

if __name__ == "__main__":
    main()

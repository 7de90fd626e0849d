"""Relay benchmark: netcore-turn against coturn's turnserver, with a direct floor.

One load generator (a small C program built on the fly) and one C echo peer
drive, in the same run and configured alike:

* ``direct``  -- the generator talks to the echo peer with no relay: the floor,
  and the generator's own ceiling;
* ``netcore`` -- our daemon, one worker (``python -m servers.turn.main``), with
  its compiled data path;
* ``netcore-py`` -- the same daemon with ``--data-path python`` (the relay
  loop in the interpreter), to show what the compiled path is worth;
* ``coturn``  -- ``turnserver`` with one relay thread (``--relay-threads=1``).

The Allocate and ChannelBind exchanges are done here in Python; the
generator inherits the socket and sends ChannelData. For 160-byte (audio)
and 1200-byte (video) payloads it prints:

* CPU microseconds per relayed packet at fixed rates (server CPU from
  ``/proc/PID/task/*/schedstat``, divided by the packets relayed both ways);
* round-trip p50/p99 at a moderate rate, and the latency added over direct;
* zero-loss throughput: the highest rate (round trips/s) of a geometric
  ramp (x1.25 from 10k) that loses nothing in a one-second run (each step
  tried three times before giving up, as the machine may be shared);

then the ratios ours/coturn. Every server runs for the whole benchmark, and
the fixed-rate runs go round by round -- each round runs every server once,
in a rotated order -- so a load that comes and goes on a shared machine
falls on all of them alike; the figures printed are the medians over the
rounds. Usage: ``python bench/turn_relay.py [--quick] [--rounds N]``.
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
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netcore.stun import attributes as sa  # noqa: E402
from netcore.stun.credentials import long_term_key  # noqa: E402
from netcore.stun.message import Message, MessageClass  # noqa: E402
from netcore.turn import wire as w  # noqa: E402
from tests.conftest import free_port_both as free_port  # noqa: E402
from tests.peers import running, wait_for_stun  # noqa: E402  (the launchers the interop tests use)
from tests.turn.sim import turn_request  # noqa: E402

USER, PASSWORD, REALM = "bench", "bench", "bench.example"
CHANNEL = 0x4000


def build(workdir: Path) -> tuple[str, str]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("a C compiler (cc) is needed to build the load generator")
    out = []
    for name in ("turn_relay_gen", "turn_relay_echo"):
        binary = workdir / name
        subprocess.run([cc, "-O2", "-o", str(binary), str(Path(__file__).parent / f"{name}.c")], check=True)
        out.append(str(binary))
    return out[0], out[1]


@contextlib.contextmanager
def echo_peer(echo_bin: str) -> Iterator[tuple[str, int]]:
    """The C echo peer (built by :func:`build`) on a free loopback port; yields its address."""
    port = free_port()
    echo = subprocess.Popen([echo_bin, str(port)], stdout=subprocess.PIPE)
    try:
        echo.stdout.readline()  # it prints a line once it listens
        yield ("127.0.0.1", port)
    finally:
        echo.terminate()
        echo.wait()


def start_netcore(workdir: Path, port: int, low: int, data_path: str = "native"):
    cmd = [sys.executable, "-m", "servers.turn.main", "--listen", f"127.0.0.1:{port}", "--realm", REALM,
           "--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers", "--min-port", str(low),
           "--max-port", str(low + 99), "--log-level", "warning", "--data-path", data_path]
    return running(cmd, workdir / f"netcore-{data_path}.log", env=dict(os.environ, PYTHONPATH=str(ROOT)))


def start_coturn(workdir: Path, port: int, low: int):
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        return None
    empty = workdir / "empty.conf"
    empty.write_text("")
    cmd = [turnserver, "-c", str(empty), "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
           "--relay-ip=127.0.0.1", f"--min-port={low}", f"--max-port={low + 99}", "--lt-cred-mech",
           f"--user={USER}:{PASSWORD}", f"--realm={REALM}", "--allow-loopback-peers", "--no-tls", "--no-dtls",
           "--no-cli", "--relay-threads=1", f"--userdb={workdir / 'turndb'}", f"--pidfile={workdir / 'turn.pid'}",
           "--log-file=stdout", "--simple-log", "--fingerprint"]
    return running(cmd, workdir / "coturn.log")


def _exchange(sock: socket.socket, message: Message, key: bytes | None) -> Message:
    data = message.encode(key) if key else message.encode()
    for _ in range(5):
        sock.send(data)
        try:
            while True:
                answer = Message.parse(sock.recv(2048))
                if answer.transaction_id == message.transaction_id:
                    return answer
        except socket.timeout:
            continue
    raise TimeoutError("no answer from the TURN server")


def turn_socket(server: tuple[str, int], peer: tuple[str, int]) -> socket.socket:
    """A socket connected to ``server`` with an allocation and channel CHANNEL bound to ``peer``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tune(sock)
    sock.connect(server)
    sock.settimeout(1.0)
    first = _exchange(sock, Message(w.ALLOCATE, MessageClass.REQUEST).add(w.REQUESTED_TRANSPORT, 17), None)
    realm, nonce = first.get(sa.REALM), first.get(sa.NONCE)
    key = long_term_key(USER, realm, PASSWORD)

    def signed(method: int, *attributes) -> Message:
        message = turn_request(method, *attributes, credentials=(USER, realm, nonce))
        answer = _exchange(sock, message, key)
        if answer.message_class != MessageClass.SUCCESS:
            raise RuntimeError(f"{message!r} refused: {answer.get(sa.ERROR_CODE)}")
        return answer

    signed(w.ALLOCATE, (w.REQUESTED_TRANSPORT, 17))
    signed(w.CHANNEL_BIND, (w.CHANNEL_NUMBER, CHANNEL), (w.XOR_PEER_ADDRESS, peer))
    sock.settimeout(None)
    return sock


def tune(sock: socket.socket) -> None:
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)


def cpu_ns(pid: int | None) -> int:
    """CPU time of every thread of ``pid`` in nanoseconds (schedstat), 0 for none."""
    if pid is None:
        return 0
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def run_generator(gen: str, sock: socket.socket, channel: int, size: int, rate: float, seconds: float):
    done = subprocess.run([gen, str(sock.fileno()), str(channel), str(size), str(rate), str(seconds)],
                          pass_fds=[sock.fileno()], capture_output=True, text=True, check=True)
    sent, received, p50, p99 = (int(v) for v in done.stdout.split())
    return sent, received, p50, p99


def drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(70000)
    sock.setblocking(True)


def fixed_rate(gen: str, sock: socket.socket, pid: int | None, channel: int, size: int, rate: int,
               seconds: float) -> tuple[float | None, float, int, int]:
    """One run at ``rate`` round trips/s: (CPU us per relayed packet, loss, p50 us, p99 us)."""
    drain(sock)
    before = cpu_ns(pid)
    sent, received, p50, p99 = run_generator(gen, sock, channel, size, rate, seconds)
    used = cpu_ns(pid) - before
    relayed = sent + received  # each round trip crosses the relay twice
    cpu = used / 1000 / relayed if pid and relayed else None
    return cpu, (sent - received) / sent if sent else 0.0, p50, p99


def zero_loss(gen: str, sock: socket.socket, channel: int, size: int, ceiling: int | None) -> int:
    """The highest rate of the ramp that loses nothing in one second."""
    best, rate = 0, 10000
    while ceiling is None or rate <= ceiling * 1.05:
        lossless = False
        for _ in range(3):  # retries: the machine is shared, a stray stall is not the relay's ceiling
            drain(sock)
            sent, received, _, _ = run_generator(gen, sock, channel, size, rate, 1.0)
            if received >= sent:
                lossless = True
                break
        if not lossless:
            break
        best = rate
        rate = int(rate * 1.25)
        if rate > 400000:
            break
    return best


def median(values: list):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def measure(gen: str, targets: dict[str, tuple[socket.socket, int | None, int]], size: int, rates: list[int],
            latency_rate: int, seconds: float, rounds: int) -> dict[str, dict]:
    """Fixed-rate runs round by round over every target, then each one's zero-loss ramp."""
    names = list(targets)
    samples: dict[str, dict[int, list]] = {name: {rate: [] for rate in rates} for name in names}
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            sock, pid, channel = targets[name]
            for rate in rates:
                samples[name][rate].append(fixed_rate(gen, sock, pid, channel, size, rate, seconds))
    results: dict[str, dict] = {}
    for name in names:
        runs = samples[name]
        results[name] = {
            "cpu": {rate: median([r[0] for r in runs[rate]]) for rate in rates},
            "loss": {rate: median([r[1] for r in runs[rate]]) for rate in rates},
            "rtt": (median([r[2] for r in runs[latency_rate]]), median([r[3] for r in runs[latency_rate]])),
        }
    ceiling = None
    for name in names:  # direct first: its ceiling bounds the others' ramps
        sock, _, channel = targets[name]
        results[name]["max"] = zero_loss(gen, sock, channel, size, ceiling)
        if name == "direct":
            ceiling = results[name]["max"]
    return results


def fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one-second fixed-rate runs instead of three")
    parser.add_argument("--rounds", type=int, default=3, help="fixed-rate rounds over every server (median)")
    parser.add_argument("--sizes", default="160,1200")
    parser.add_argument("--rates", default="5000,20000")
    parser.add_argument("--servers", default="netcore,netcore-py,coturn", help="which relays to run besides direct")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rates = [int(r) for r in args.rates.split(",")]
    seconds = 1.0 if args.quick else 3.0
    latency_rate = rates[0]
    workdir = Path(tempfile.mkdtemp(prefix="turn-bench-"))
    gen, echo_bin = build(workdir)
    results: dict[str, dict[int, dict]] = {}
    starters = (("netcore", start_netcore, 44000),
                ("netcore-py", lambda *a: start_netcore(*a, data_path="python"), 44100),
                ("coturn", start_coturn, 44200))
    try:
        with contextlib.ExitStack() as stack:
            peer = stack.enter_context(echo_peer(echo_bin))
            servers: dict[str, tuple[int, int]] = {}  # name -> (port, pid)
            for name, starter, low in starters:
                if name not in args.servers.split(","):
                    continue
                port = free_port()
                context = starter(workdir, port, low)
                if context is None:
                    print(f"{name}: not installed, skipped")
                    continue
                proc = stack.enter_context(context)
                wait_for_stun(port)
                servers[name] = (port, proc.pid)
            for size in sizes:
                direct = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                tune(direct)
                direct.connect(peer)
                targets = {"direct": (direct, None, 0)}
                for name, (port, pid) in servers.items():
                    targets[name] = (turn_socket(("127.0.0.1", port), peer), pid, CHANNEL)
                by_name = measure(gen, targets, size, rates, latency_rate, seconds, args.rounds)
                for name, result in by_name.items():
                    results.setdefault(name, {})[size] = result
                for sock, _, _ in targets.values():
                    sock.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, sizes, rates, latency_rate)


def report(results: dict, sizes: list[int], rates: list[int], latency_rate: int) -> None:
    print("\nTURN relay over ChannelData, one client, one flow, loopback; rates in round trips/s "
          "(each crosses the relay twice); medians over the rounds\n")
    header = f"{'server':10} {'size':>5} " + " ".join(f"{'cpu us/pkt @' + str(r):>16}" for r in rates) + \
        " " + " ".join(f"{'loss @' + str(r):>11}" for r in rates) + \
        f" {'rtt p50 us':>10} {'rtt p99 us':>10} {'+p50':>6} {'+p99':>6} {'zero-loss rt/s':>15}"
    print(header)
    for name, by_size in results.items():
        for size in sizes:
            r = by_size[size]
            direct = results["direct"][size]["rtt"]
            added = (r["rtt"][0] - direct[0], r["rtt"][1] - direct[1]) if name != "direct" else (None, None)
            cpu = " ".join(f"{fmt(r['cpu'].get(rate)):>16}" for rate in rates) + " " + \
                " ".join(f"{r['loss'][rate]:>11.2%}" for rate in rates)
            print(f"{name:10} {size:>5} {cpu} {r['rtt'][0]:>10} {r['rtt'][1]:>10} {fmt(added[0], 'd'):>6} "
                  f"{fmt(added[1], 'd'):>6} {r['max']:>15}")
    if "netcore" in results and "coturn" in results:
        print("\nratios netcore/coturn (targets: cpu <= 1.1, added latency <= 1.2, throughput >= 0.9)")
        for size in sizes:
            ours, theirs, direct = results["netcore"][size], results["coturn"][size], results["direct"][size]["rtt"]
            parts = [f"cpu@{rate} {ours['cpu'][rate] / theirs['cpu'][rate]:.2f}" for rate in rates
                     if ours["cpu"].get(rate) and theirs["cpu"].get(rate)]
            for index, label in ((0, "p50"), (1, "p99")):
                a, b = ours["rtt"][index] - direct[index], theirs["rtt"][index] - direct[index]
                parts.append(f"added {label} {a / b:.2f}" if b > 0 else f"added {label} -")
            parts.append(f"throughput {ours['max'] / theirs['max']:.2f}" if theirs["max"] else "throughput -")
            print(f"  {size:>5} B: " + ", ".join(parts))


if __name__ == "__main__":
    main()

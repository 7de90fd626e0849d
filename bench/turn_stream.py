"""TURN over UDP, TCP and TLS client connections: netcore-turn beside coturn, driven by turnutils_uclient.

Both servers run side by side, configured alike (one worker / one relay
thread, a UDP, a TCP and a TLS listener, coturn's channel numbers accepted).
coturn's ``turnutils_uclient`` (``-t`` TCP, ``-t -S`` TLS) drives M clients
sending N ChannelData messages of L bytes every Z ms to a C echo peer, in
rounds (each round every server and transport once, in a rotated order).
Printed per server and client transport: server CPU microseconds per relayed
packet (``/proc/PID/task/*/schedstat``, each message is relayed twice: out
and back), loss, and the average round trip uclient reports (1 ms
resolution); then the ratios netcore/coturn.
Usage: ``python bench/turn_stream.py [--clients M] [--messages N] [--size L] [--interval Z] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from tests.conftest import free_port, free_port_both  # noqa: E402
from tests.peers import running, self_signed_certificate, wait_for_stun  # noqa: E402
from tests.turn.live import free_port_range  # noqa: E402
from turn_relay import build, median  # noqa: E402
from turn_scale import cpu_ns, process_tree  # noqa: E402

USER, PASSWORD, REALM = "bench", "bench", "bench.example"


def start_netcore(workdir: Path, ports: dict, low: int, high: int, cert: Path, key: Path):
    cmd = [sys.executable, "-m", "servers.turn.main", "--listen", f"127.0.0.1:{ports['udp']}",
           "--tcp-listen", f"127.0.0.1:{ports['tcp']}", "--tls-listen", f"127.0.0.1:{ports['tls']}",
           "--cert", str(cert), "--key", str(key), "--realm", REALM, "--user", f"{USER}:{PASSWORD}",
           "--allow-loopback-peers", "--legacy-channel-numbers", "--min-port", str(low), "--max-port", str(high),
           "--log-level", "warning", "--user-quota", "10000"]
    return running(cmd, workdir / "netcore.log", env=dict(os.environ, PYTHONPATH=str(ROOT)))


def start_coturn(workdir: Path, ports: dict, low: int, high: int, cert: Path, key: Path):
    empty = workdir / "empty.conf"
    empty.write_text("")
    cmd = [shutil.which("turnserver") or "turnserver", "-c", str(empty), "-n", "--listening-ip=127.0.0.1",
           f"--listening-port={ports['udp']}", f"--tls-listening-port={ports['tls']}", f"--cert={cert}",
           f"--pkey={key}", "--relay-ip=127.0.0.1", f"--min-port={low}", f"--max-port={high}", "--lt-cred-mech",
           f"--user={USER}:{PASSWORD}", f"--realm={REALM}", "--allow-loopback-peers", "--no-dtls", "--no-cli",
           "--relay-threads=1", f"--userdb={workdir / 'turndb'}", f"--pidfile={workdir / 'turn.pid'}",
           "--log-file=stdout", "--simple-log", "--fingerprint", "--no-stdout-log"]
    return running(cmd, workdir / "coturn.log")


def uclient(port: int, peer: int, transport: str, clients: int, messages: int, size: int, interval: int):
    extra = {"udp": [], "tcp": ["-t"], "tls": ["-t", "-S"]}[transport]
    cmd = [shutil.which("turnutils_uclient") or "turnutils_uclient", "-e", "127.0.0.1", "-r", str(peer), *extra,
           "-u", USER, "-w", PASSWORD, "-m", str(clients), "-n", str(messages), "-l", str(size),
           "-z", str(interval), "-c", "-p", str(port), "127.0.0.1"]
    done = subprocess.run(cmd, capture_output=True, timeout=600)
    out = (done.stdout + done.stderr).decode("utf-8", "replace")
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    rtt = re.findall(r"Average round trip delay ([\d.]+) ms", out)
    if not sent:
        raise RuntimeError(" ".join(cmd) + "\n" + out[-3000:] + "\n" + "".join(
            p.read_text()[-2000:] for p in Path(tempfile.gettempdir()).glob("turn-stream-*/*.log")))
    return int(sent[-1][0]), int(sent[-1][1]), float(rtt[-1]) if rtt else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--interval", type=int, default=20, help="ms between a client's messages")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--transports", default="udp,tcp,tls")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="turn-stream-"))
    _, echo_bin = build(workdir)
    cert, key = self_signed_certificate(workdir)
    echo_port = free_port()
    echo = subprocess.Popen([echo_bin, str(echo_port)], stdout=subprocess.PIPE)
    echo.stdout.readline()
    transports = args.transports.split(",")
    results: dict[tuple[str, str], list] = {}
    try:
        with contextlib.ExitStack() as stack:
            servers = {}
            for name, starter in (("netcore", start_netcore), ("coturn", start_coturn)):
                port = free_port_both()
                ports = {"udp": port, "tcp": port if name == "coturn" else free_port_both(), "tls": free_port_both()}
                low, high = free_port_range(args.clients * 2 + 50)
                proc = stack.enter_context(starter(workdir, ports, low, high, cert, key))
                wait_for_stun(port)
                time.sleep(0.5)
                servers[name] = (ports, proc.pid)
            cases = [(name, transport) for name in servers for transport in transports]
            for round_ in range(args.rounds):
                shift = round_ % len(cases)
                for name, transport in cases[shift:] + cases[:shift]:
                    ports, pid = servers[name]
                    pids = process_tree(pid)
                    before = cpu_ns(pids)
                    sent, received, rtt = uclient(ports[transport], echo_port, transport, args.clients,
                                                  args.messages, args.size, args.interval)
                    used = cpu_ns(pids) - before
                    cpu = used / 1000 / (sent + received) if sent else None
                    results.setdefault((name, transport), []).append((cpu, (sent - received) / sent, rtt))
    finally:
        echo.terminate()
        echo.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nTURN clients over UDP/TCP/TLS: {args.clients} clients x {args.messages} messages of {args.size} B "
          f"every {args.interval} ms (turnutils_uclient -c); medians over {args.rounds} rounds\n")
    print(f"{'server':8} {'client':>6} {'cpu us/pkt':>10} {'loss':>7} {'avg rtt ms':>10}")
    for (name, transport), runs in results.items():
        cpu = median([r[0] for r in runs])
        print(f"{name:8} {transport:>6} {cpu:>10.2f} {median([r[1] for r in runs]):>7.2%} "
              f"{median([r[2] for r in runs]) or 0:>10.2f}")
    print("\nratios netcore/coturn, CPU per relayed packet:")
    for transport in transports:
        ours, theirs = median([r[0] for r in results[("netcore", transport)]]), \
            median([r[0] for r in results[("coturn", transport)]])
        print(f"  {transport}: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()

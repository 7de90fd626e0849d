"""The broadcast tree across regions: run by tests/sfu/test_broadcast_tree.py in the core region's namespace.

``python -m tests.sfu.broadcast_tree TMP PLAN`` (PLAN: JSON from the test:
the regions' namespaces and addresses, the shaped host's, the viewer counts)
starts, in the core namespace: a redis-server (the tree's registry),
netcore-signal and netcore-sfu for the origin with a ``netcore-call``
publisher (640x360 at 10 frames/s with noise, three simulcast layers of
three temporal layers each), and
the viewers' netcore-signal; in each region's namespace: a tier-2
netcore-sfu pulling from the origin and two edges pulling from it,
registered in their region; then viewers (``netcore-call --subscribers N
--watch --region R --max-height 90 --max-fps 3``) in their regions' namespaces, placed
by signaling on their region's edges, first ``first`` of them, then one
process of each of ``more`` per region at a time; a viewer on the shaped
host and a reference viewer, neither asking for a height. A plan may add
flags to the publisher's (``program``, after its own: they win) and to the
bulk viewers' (``bulk``), to measure other settings. It prints one
JSON line: the origin's link bytes per second and link packets per packet
received at each count, every viewer's summary, the cores each kind of
process used.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from servers.signal.credentials import hash_password
from servers.signal.store import open_store
from tests.call.conftest import make_users
from tests.sfu.live import SECRET, start_signal
from tests.sfu.test_cascade_daemon import call_server, edge_room, link_bytes, linked, stop_everyone
from tests.sfu.test_failover import Participant, until

ROOT = Path(__file__).resolve().parents[2]
REDIS_PORT = 16379
PROGRAM = ["--video", "--simulcast", "--temporal-layers", "3", "--noise", "12", "--size", "640x360", "--fps", "10"]
VIEWER_HEIGHT = 90  # the bulk viewers' tiles: the ladder's lowest rung (160x90)
VIEWER_FPS = 3  # ... at a low frame rate: TL0 alone (2.5 of the 10 frames/s)
WINDOW = 5.0  # seconds the origin's bytes are measured over
PASSWORD = "viewers-password"


def metrics_at(host: str, port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {name: float(value) for name, _, value in
            (line.rpartition(" ") for line in text.splitlines() if line and not line.startswith("#"))}


async def in_namespace(ns: str, args: list[str], log: Path) -> tuple[asyncio.subprocess.Process, dict]:
    """``python args`` in namespace ``ns``, once it says "listening": the process and that line's fields."""
    proc = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, sys.executable, *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=open(log, "wb"),
                                                cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.startswith(b"listening"), (line, log.read_text()[-3000:])
    return proc, dict(f.split("=") for f in line.decode().split()[1:] if "=" in f)


async def region_server(tmp: Path, ns: str, ip: str, name: str, *extra: str) -> dict:
    """netcore-sfu in a region: media, HTTP and links on the region's address."""
    proc, fields = await in_namespace(ns, ["-m", "servers.sfu.main", "--listen", f"{ip}:0", "--http", f"{ip}:0",
                                           "--cascade", f"{ip}:0", "--service-secret", SECRET, "--name", name,
                                           *extra], tmp / f"{name}.log")
    return {"proc": proc, "http": int(fields["http"]), "cascade": int(fields["cascade"]), "name": name,
            "ip": ip, "log": tmp / f"{name}.log"}


class Viewers(Participant):
    """``netcore-call --subscribers N --watch`` in a namespace: users USER1..USERN."""

    async def run(self, tmp: Path, ns: str, host: str, url: str, room: str, count: int, duration: float,
                  region: str, *extra: str) -> None:
        self.summary_path = tmp / f"{self.user}.json"
        self.proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns, sys.executable, "-m", "servers.call.main", "--server", url,
            "--user", self.user, "--password", PASSWORD, "--subscribers", str(count), "--host", host,
            "--summary-json", str(self.summary_path), "--connect-timeout", "60",
            "join", room, "--watch", "--slots", "1", "--region", region, "--duration", str(duration), *extra,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self._reader = asyncio.ensure_future(self._read())

    def receiving(self) -> int:
        return len({m.group(1) for _, m in self.said(r"(\S+): receiving \S+ through")})


FAST = ("sfu_fast_installed_slots", "sfu_fast_ejects_total", "sfu_fast_forwarded_packets_total",
        "sfu_forwarded_packets_total")


def edge_metrics(server: dict) -> dict[str, float] | None:
    """An edge's participants and compiled-path figures (:data:`FAST`: slots installed now, ejections, packets
    it forwarded of all forwarded) from one read of its /metrics; None if it did not answer within 5 s (too
    busy)."""
    try:
        series = metrics_at(server["ip"], server["http"])
    except OSError:
        return None
    return {name: series.get(name, 0.0) for name in FAST} | {"sfu_participants": series.get("sfu_participants")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that were waited for (ip netns exec's python)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_of(procs: list) -> float:
    """CPU seconds of processes started through ``ip netns exec`` (it execs: same pid) or directly."""
    return sum(cpu_seconds(p.pid) for p in procs if p is not None and p.returncode is None)


def link_and_received(origin: dict) -> tuple[float, float, float]:
    """The origin's link bytes and packets sent (first sends), and the media packets it received."""
    series = metrics_at("127.0.0.1", origin["http"])
    packets = sum(v for k, v in series.items()
                  if k.startswith("sfu_cascade_link_packets_total") and 'direction="down"' in k)
    return link_bytes(origin), packets, series["sfu_received_packets_total"]


async def origin_rate(origin: dict, window: float = WINDOW) -> tuple[float, float]:
    """The origin's link bytes per second over ``window``, and link packets per packet received."""
    before, start = await asyncio.to_thread(link_and_received, origin), time.monotonic()
    await asyncio.sleep(window)
    after = await asyncio.to_thread(link_and_received, origin)
    sent, packets, received = (a - b for a, b in zip(after, before))
    return sent / (time.monotonic() - start), packets / max(1.0, received)


async def steady(origin: dict, timeout: float = 40.0) -> None:
    """Until the publisher's ladder has ramped up: two 2 s windows of the origin's link bytes within 10 %."""
    deadline, last = time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline:
        rate, _ = await origin_rate(origin, 2.0)
        if last and abs(rate - last) < 0.1 * last:
            return
        last = rate


def seed_users(data: Path, names: list[str]) -> None:
    """The viewers' accounts written to the signaling store before it starts: one scrypt for them all
    (registering 400 over the socket would cost 400)."""
    data.mkdir(parents=True, exist_ok=True)
    store = open_store(None, str(data))
    hashed = hash_password(PASSWORD)
    for name in names:
        store.create_user(name, hashed, time.time())


async def scenario(tmp: Path, plan: dict) -> dict:
    ns, ips, delays = plan["namespaces"], plan["ips"], plan["delays"]
    core = ips["core"]
    regions = [r for r in ns if r not in ("core", "shaped")]
    processes: list = []
    people: list[Participant] = []
    started = time.monotonic()
    redis = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(REDIS_PORT), "--bind", core, "127.0.0.1", "--save", "", "--appendonly",
        "no", "--protected-mode", "no", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    processes.append(redis)
    try:
        origin_procs: list = []
        (tmp / "origin").mkdir()
        signal0, port0 = await start_signal(tmp / "origin", 0)
        processes.append(signal0)
        origin = await call_server(tmp, "origin", "--signal", f"ws://127.0.0.1:{port0}/v1/service",
                                   "--cascade", f"{core}:0")
        processes.append(origin["proc"])
        origin_procs.append(origin["proc"])
        await linked(origin)
        publisher = Participant("bcpub")
        people.append(publisher)
        await make_users(f"ws://127.0.0.1:{port0}", publisher.user, friends=False)
        # (Participant's own --size/--fps come first: the program's flags, after the command, win)
        await publisher.start(tmp, f"ws://127.0.0.1:{port0}", "join", "new", "--duration", str(plan["duration"]),
                              *PROGRAM, *plan.get("program", []))  # (a plan's own flags win: measurements)
        assert await until(lambda: publisher.said(r"room (\S+) created"), 30), publisher.log()
        program = publisher.said(r"room (\S+) created")[0][1].group(1)

        # the viewers' signaling: every viewer's account, the room they watch, the registry
        batches = {r: [("a", plan["first"] // len(regions))] + [
            (chr(ord("b") + i), n) for i, n in enumerate(plan["more"])] for r in regions}
        prefixes = [f"bc{r}{letter}" for r in regions for letter, _ in batches[r]] + ["bcshaped", "bcref"]
        counts = {f"bc{r}{letter}": n for r in regions for letter, n in batches[r]}
        counts.update({"bcshaped": 1, "bcref": 1})
        viewer_names = [f"{p}{i}" for p in prefixes for i in range(1, counts[p] + 1)]
        (tmp / "viewers").mkdir()
        seed_users(tmp / "viewers" / "data", viewer_names)
        signal, vport = await start_signal(
            tmp / "viewers", 0, call_server=None,
            settings=f'registry = "redis://127.0.0.1:{REDIS_PORT}/0"\nhost = "0.0.0.0"\nmax_room_size = 1000\n'
                     f'max_connections_per_source = 1000\nhash_workers = 2\nhash_queue = 1000\nrate = 200.0\n'
                     f'burst = 2000.0\n')
        processes.append(signal)
        room = await edge_room(vport, "bcowner", viewer_names)

        servers: dict[str, dict] = {}
        for r in regions:
            tier2 = await region_server(tmp, ns[r], ips[r], f"t2-{r}",
                                        "--upstream", f"ws://{core}:{origin['cascade']}/")
            processes.append(tier2["proc"])
            servers[tier2["name"]] = tier2
            for letter in "ab":
                name = f"edge-{r}-{letter}"
                edge = await region_server(tmp, ns[r], ips[r], name, "--signal", f"ws://{core}:{vport}/v1/service",
                                           "--upstream", f"ws://{ips[r]}:{tier2['cascade']}/",
                                           "--cascade-room", f"*={program}",
                                           "--registry", f"redis://{core}:{REDIS_PORT}/0", "--tier", "edge",
                                           "--region", r, "--max-participants", "300")
                processes.append(edge["proc"])
                servers[name] = edge
        for name, s in servers.items():
            if name.startswith("edge"):
                await linked_at(s)
        await asyncio.sleep(2.0)  # the viewers' signaling has read every edge's record
        url = f"ws://{core}:{vport}"
        edges_ready = time.monotonic()

        async def start(prefix: str, r: str, count: int, duration: float, *extra: str,
                        where: tuple[str, str] | None = None) -> Viewers:
            v = Viewers(prefix)
            people.append(v)
            space, host = where or (ns[r], ips[r])
            await v.run(tmp, space, host, url, room, count, duration, r, *extra)
            return v

        low = ("--max-height", str(VIEWER_HEIGHT), "--max-fps", str(VIEWER_FPS), *plan.get("bulk", []))
        # (viewers watch until told to stop, after the last measurement)
        first = [await start(f"bc{r}a", r, batches[r][0][1], plan["duration"], *low) for r in regions]
        shaped = await start("bcshaped", regions[0], 1, plan["duration"], where=(ns["shaped"], ips["shaped"]))
        reference = await start("bcref", regions[0], 1, plan["duration"])
        everyone = first + [shaped, reference]
        assert await until(lambda: all(v.receiving() >= counts[v.user] for v in everyone), 90), \
            "\n---\n".join(v.log()[-2000:] for v in everyone)
        first_receiving = time.monotonic() - edges_ready
        await steady(origin)
        cpu0 = cpu_snapshot(origin_procs, servers, people)
        at_first = await origin_rate(origin)
        cpu1 = cpu_snapshot(origin_procs, servers, people)
        load_first = os.getloadavg()[0]
        # the rest in steps: one process per region at a time, the next once its viewers receive (a burst
        # of every offer at once stalls an edge past its 2 s report deadline on a loaded machine, and
        # signaling moves its viewers away: docs/broadcast.md)
        for step in range(1, len(plan["more"]) + 1):
            batch = [await start(f"bc{r}{batches[r][step][0]}", r, batches[r][step][1], plan["duration"], *low)
                     for r in regions]
            assert await until(lambda: all(v.receiving() >= counts[v.user] for v in batch), 90), \
                "\n---\n".join(v.log()[-2000:] for v in batch)
        all_receiving = time.monotonic() - edges_ready
        await asyncio.sleep(3.0)
        cpu2 = cpu_snapshot(origin_procs, servers, people)
        at_total = await origin_rate(origin)
        cpu3 = cpu_snapshot(origin_procs, servers, people)
        load_total = os.getloadavg()[0]
        series = await asyncio.to_thread(metrics_at, "127.0.0.1", origin["http"])
        edges = {name: await asyncio.to_thread(edge_metrics, s) for name, s in servers.items()
                 if name.startswith("edge")}
        edge_viewers = {name: m and m["sfu_participants"] for name, m in edges.items()}
        edge_fast = {name: m and {k: m[k] for k in FAST} for name, m in edges.items()}
        placed = {m.group(1): m.group(2) for v in people if isinstance(v, Viewers)
                  for _, m in v.said(r"(\S+): room \S+ is on the call server (\S+)")}
        for v in people:
            if isinstance(v, Viewers):
                v.proc.terminate()  # hang up: each writes its summary
        summaries = {v.user: await v.finish(60) for v in people if isinstance(v, Viewers)}
        return {"origin": [at_first[0], at_total[0]], "per_received": [at_first[1], at_total[1]],
                "summaries": summaries, "placed": placed,
                "links": series.get('sfu_cascade_links{direction="down"}'), "edge_viewers": edge_viewers,
                "edge_fast": edge_fast,
                "cpu": [cpu_rate(cpu0, cpu1), cpu_rate(cpu2, cpu3)], "load": [load_first, load_total],
                "first_receiving": first_receiving, "all_receiving": all_receiving,
                "elapsed": time.monotonic() - started, "delays": delays, "counts": counts}
    finally:
        await stop_everyone(people, processes)


async def linked_at(server: dict) -> None:
    """Wait for a region's server to link to its signaling (its /health says so)."""
    for _ in range(150):
        try:
            health = json.loads(await asyncio.to_thread(_get, f"http://{server['ip']}:{server['http']}/health"))
        except (OSError, ValueError):
            health = {}
        if health.get("signal_linked"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{server['name']} never linked: {server['log'].read_text()[-2000:]}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def cpu_snapshot(origin_procs: list, servers: dict, people: list) -> dict:
    return {"time": time.monotonic(), "origin": cpu_of(origin_procs),
            "tier2": cpu_of([s["proc"] for n, s in servers.items() if n.startswith("t2")]),
            "edges": cpu_of([s["proc"] for n, s in servers.items() if n.startswith("edge")]),
            "viewers": cpu_of([v.proc for v in people if isinstance(v, Viewers)]),
            "publisher": cpu_of([people[0].proc])}


def cpu_rate(a: dict, b: dict) -> dict:
    """Cores used by each kind of process between two snapshots."""
    span = b["time"] - a["time"]
    return {k: round((b[k] - a[k]) / span, 3) for k in a if k != "time"}


if __name__ == "__main__":
    out = asyncio.run(asyncio.wait_for(scenario(Path(sys.argv[1]), json.loads(sys.argv[2])), 600))
    print(json.dumps(out))

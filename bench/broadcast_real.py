"""A broadcast through real call server processes on loopback: glass-to-glass latency per tier, viewers per edge core.

``python3 bench/broadcast.py --real`` runs this. Processes, as in
tests/sfu/test_cascade_daemon.py: netcore-signal and netcore-sfu for the
origin, a ``netcore-call`` publisher (the synthetic camera, its frame number
drawn in) in a room there, a tier-2 netcore-sfu pulling from the origin, and
an edge (netcore-signal and netcore-sfu pulling from tier 2). In one run:

1. **Latency**: ``--viewers`` receive-only viewers on the origin itself (one
   call server: publisher -> origin -> viewer) and as many on the edge
   (publisher -> origin -> tier 2 -> edge -> viewer), watching the same
   publisher at the same time. Glass-to-glass latency of each decoded
   picture: the time the viewer's process read the frame number back from the
   decoded picture minus the time the publisher's camera drew that frame
   (``time.monotonic()``, one clock for every process of the machine); p50
   and p99 for both paths, and (cascade - direct) / 2: what each of the two
   added hops (tier 2, edge) adds; and frame by frame (a cascade viewer's
   latency less the direct viewers' median for the same frame). Each server's
   hop (a video frame's first packet in, its first copy out) from kernel time
   stamps on ``lo`` (root: an AF_PACKET socket), against the anchor: a bare UDP
   relay process on the same event loop carrying a stream at the same time
   (what the machine's scheduler alone costs a hop). CPU per forwarded packet
   of each server process (its CPU time from /proc/PID/stat over the packets
   its /metrics says it sent: to viewers, and on links below it).
2. **Ramp**: viewers on the edge added in steps (``--ramp``) until the
   viewers lose more than 0.5 % of the packets the edge sends them (their
   NACKed packets over the packets forwarded, the edge's /metrics), a step's
   viewers cannot all start, or the time is up. Per step: the edge's CPU
   share of one core, viewers per edge core (viewers / share), CPU per
   forwarded packet, the viewers' processes' CPU (on a small machine they,
   not the edge, are the limit) and the publisher's frames per second. The
   ramp's viewers decode key frames only (``--decode-all``: every frame, and
   the frames shown and their latency per step).

The viewers are ``netcore-call --subscribers N`` processes started through
``--traced-call`` (this file): the same program with two notes added, each
frame the synthetic camera draws and each frame number read back, written
as lines ``s|d NUMBER TIME`` to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-broadcast-password"
LOSS_LIMIT = 0.005  # the target: viewers per edge core at under 0.5 % loss
SHOWN_LIMIT = 0.95  # fewer frames shown than this: the viewers' processes are the limit (the machine's)
TICKS = os.sysconf("SC_CLK_TCK")


# -- netcore-call with its frames noted (a process of its own) -------------------------------------------

def traced_call(out: str, argv: list[str], light: bool = False) -> None:
    """Run netcore-call with ``argv``, noting in ``out`` each frame its synthetic camera draws to send
    (``s``; not those the sender skips, being late) and each frame number it reads back from a decoded
    picture (``d``), with ``time.monotonic()``. ``light``: decode the key frames only (a viewer that costs
    its process the transport, not the decoder: more viewers per core of this machine for the ramp)."""
    from netcore.media import synthetic
    from netcore.media.codecs import VideoDecoder
    from netcore.peer.tracks import LocalVideoTrack, RtpReceiver
    from netcore.rtp.vp8 import vp8_is_keyframe
    from servers.call import main, sfu

    if light:
        decode = RtpReceiver.decode

        def key_frames_only(decoder, frame):
            if isinstance(decoder, VideoDecoder) and not vp8_is_keyframe(frame.payloads[0]):
                return []
            return decode(decoder, frame)

        RtpReceiver.decode = staticmethod(key_frames_only)

    notes = open(out, "w")
    flushed = [0.0]

    def note(kind: str, number: int) -> None:
        now = time.monotonic()
        notes.write(f"{kind} {number} {now:.6f}\n")
        if now - flushed[0] > 0.5:  # a process that is killed loses half a second at most
            notes.flush()
            flushed[0] = now

    draw, read, skip = synthetic.SyntheticCamera.frame, sfu.read_frame_number, LocalVideoTrack.skip
    skipping = [False]

    def drawn(camera, number: int):
        if not skipping[0]:
            note("s", number)
        return draw(camera, number)

    def skipped(track) -> bool:
        skipping[0] = True
        try:
            return skip(track)
        finally:
            skipping[0] = False

    def read_back(picture):
        number = read(picture)
        if number is not None:
            note("d", number)
        return number

    synthetic.SyntheticCamera.frame = drawn
    LocalVideoTrack.skip = skipped
    sfu.read_frame_number = read_back
    try:
        main.main(argv)
    finally:
        notes.close()


def read_notes(path: Path) -> tuple[dict[int, float], list[tuple[int, float]]]:
    """(frame number -> time drawn, [(frame number, time decoded), ...]) of a traced call's file."""
    drawn: dict[int, float] = {}
    decoded: list[tuple[int, float]] = []
    if not path.exists():
        return drawn, decoded
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # the last line of a killed process
        kind, number, at = parts[0], int(parts[1]), float(parts[2])
        if kind == "s":
            drawn.setdefault(number, at)
        else:
            decoded.append((number, at))
    return drawn, decoded


# -- the processes ----------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (every thread), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Viewers:
    """A traced netcore-call process (a publisher, or ``count`` receive-only viewers)."""

    name: str
    count: int
    notes: Path
    proc: asyncio.subprocess.Process
    light: bool = False  # decodes the key frames only
    lines: list[str] = field(default_factory=list)

    async def read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip())

    def receiving(self) -> int:
        return len({line.split(":")[0] for line in self.lines if ": receiving " in line})

    async def end(self) -> None:
        """Hang up (SIGINT: netcore-call leaves cleanly), killed after 15 s."""
        if self.proc.returncode is None:
            self.proc.send_signal(2)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def traced(directory: Path, name: str, url: str, user: str, count: int, size: str, fps: float,
                 *args: str, light: bool = False) -> Viewers:
    notes = directory / f"{name}.notes"
    command = [sys.executable, str(Path(__file__)), "--traced-call", str(notes), *(["--light"] if light else []),
               "--server", url, "--user", user, "--password", PASSWORD, "--size", size, "--fps", str(fps)]
    if count:
        command += ["--subscribers", str(count)]
    proc = await asyncio.create_subprocess_exec(*command, *args, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
                                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
    viewers = Viewers(name, count, notes, proc, light)
    viewers.reader = asyncio.ensure_future(viewers.read())  # type: ignore[attr-defined]
    return viewers


async def started(viewers: list[Viewers], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(v.receiving() >= v.count for v in viewers):
            return True
        if any(v.proc.returncode is not None for v in viewers):
            return False
        await asyncio.sleep(0.2)
    return False


class Tree:
    """origin (signaling, call server, a room with the publisher), tier 2, one edge (signaling, call server)."""

    def __init__(self, directory: Path, tag: str) -> None:
        self.directory, self.tag = directory, tag
        self.processes: list = []
        self.calls: list[Viewers] = []
        self.owners: list = []  # the rooms' owners' signaling clients, kept open for the run

    async def start(self, invitees: int, ramp_users: list[str]) -> None:
        from tests.call.conftest import make_users
        from tests.sfu.live import start_signal
        from tests.sfu.test_cascade_daemon import call_server, linked
        from tests.signal.helpers import login, register

        d, tag = self.directory, self.tag
        people = invitees + len(ramp_users) + 10  # every viewer is a session of its own, all from 127.0.0.1
        room_size = (f"max_room_size = {people}\nmax_connections_per_source = {2 * people + 64}\n"
                     "rate = 1000.0\nburst = 2000.0\n")  # the owners invite everyone at once
        for sub in ("origin", "edge"):
            (d / sub).mkdir()
        signal0, self.origin_port = await start_signal(d / "origin", 0, settings=room_size)
        self.processes.append(signal0)
        self.origin = await call_server(d, "origin", "--signal", f"ws://127.0.0.1:{self.origin_port}/v1/service")
        self.processes.append(self.origin["proc"])
        await linked(self.origin)
        self.tier2 = await call_server(d, "tier2", "--upstream", f"ws://127.0.0.1:{self.origin['cascade']}/")
        self.processes.append(self.tier2["proc"])

        async def room(port: int, owner: str, members: list[str]) -> str:
            for i in range(0, len(members), 20):
                batch = members[i:i + 20]
                await make_users(f"ws://127.0.0.1:{port}", *batch, friends=False,
                                 passwords=dict.fromkeys(batch, PASSWORD))
            await register(port, owner)
            client = await login(port, owner)
            self.owners.append(client)
            room_id = (await client.ok("room.create", {}))["room_id"]
            for member in members:
                await client.ok("room.invite", {"room_id": room_id, "to": member})
            return room_id

        direct = [f"{tag}pub"] + [f"{tag}d{i}" for i in range(1, invitees + 1)]
        self.program = await room(self.origin_port, f"{tag}owner", direct)
        signal1, self.edge_port = await start_signal(d / "edge", 0, settings=room_size)
        self.processes.append(signal1)
        watchers = [f"{tag}e{i}" for i in range(1, invitees + 1)] + ramp_users
        self.edge_room = await room(self.edge_port, f"{tag}edgeowner", watchers)
        self.edge = await call_server(d, "edge", "--signal", f"ws://127.0.0.1:{self.edge_port}/v1/service",
                                      "--upstream", f"ws://127.0.0.1:{self.tier2['cascade']}/",
                                      "--cascade-room", f"*={self.program}")
        self.processes.append(self.edge["proc"])
        await linked(self.edge)

    async def stop(self) -> None:
        from tests.sfu.live import stop

        for call in self.calls:
            if call.proc.returncode is None:
                call.proc.kill()
                await call.proc.wait()
        for client in self.owners:
            await client.close()
        for proc in reversed(self.processes):
            await stop(proc)


# -- what the servers did over a window ------------------------------------------------------------------

def metrics(port: int) -> dict[str, float]:
    """A server's /metrics as name -> value (30 s to answer: a server of a loaded machine can be slow)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        lines = r.read().decode().splitlines()
    return {name: float(value) for name, _, value in (line.rpartition(" ") for line in lines)
            if name and not name.startswith("#")}


def sent_packets(port: int) -> dict[str, float]:
    """Media packets a server sent: to its viewers, on its links below; its viewers' NACKed packets."""
    series = metrics(port)
    return {"viewers": series.get("sfu_forwarded_packets_total", 0.0),
            "links": sum(v for k, v in series.items()
                         if k.startswith("sfu_cascade_link_packets_total") and 'direction="down"' in k),
            "nacked": sum(v for k, v in series.items() if k.startswith("sfu_subscriber_nacked_packets_total")),
            "participants": series.get("sfu_participants", 0.0), "joins": series.get("sfu_joins_total", 0.0)}


class Window:
    """CPU time of processes and packet counters of servers between ``open`` and ``close``."""

    def __init__(self, servers: dict[str, dict], others: dict[str, int]) -> None:
        self.servers, self.others = servers, others

    def _read(self) -> tuple[float, dict, dict]:
        cpu = {name: cpu_seconds(s["proc"].pid) for name, s in self.servers.items()}
        cpu.update({name: cpu_seconds(pid) for name, pid in self.others.items()})
        return time.monotonic(), cpu, {name: sent_packets(s["http"]) for name, s in self.servers.items()}

    async def open(self) -> None:
        self.start = await asyncio.to_thread(self._read)

    async def close(self) -> dict:
        (t0, cpu0, sent0), (t1, cpu1, sent1) = self.start, await asyncio.to_thread(self._read)
        span = t1 - t0
        out: dict = {"span": span, "from": t0, "to": t1, "load": os.getloadavg()[0], "share": {}, "servers": {}}
        for name in cpu1:
            out["share"][name] = (cpu1[name] - cpu0[name]) / span
        for name in sent1:
            delta = {k: sent1[name][k] - sent0[name][k] for k in sent1[name]}
            packets = delta["viewers"] + delta["links"]
            out["servers"][name] = {**delta, "packets": packets,
                                    "us_per_packet": (cpu1[name] - cpu0[name]) / max(1.0, packets) * 1e6,
                                    "loss": delta["nacked"] / delta["viewers"] if delta["viewers"] else 0.0}
        return out


def latencies(publisher: Path, viewers: list[Viewers],
              window: tuple[float, float]) -> tuple[dict[int, list[float]], float]:
    """Glass-to-glass latencies (s) of the pictures ``viewers`` decoded whose frames were drawn in
    ``window``, by frame number, and the share of (frames drawn x viewers) that were decoded."""
    drawn, _ = read_notes(publisher)
    inside = {n: t for n, t in drawn.items() if window[0] <= t <= window[1]}
    out: dict[int, list[float]] = {}
    for call in viewers:
        _, decoded = read_notes(call.notes)
        for n, at in decoded:
            if n in inside:
                out.setdefault(n, []).append(at - inside[n])
    count = sum(len(v) for v in out.values())
    return out, count / max(1, len(inside) * sum(call.count for call in viewers))


def flat(by_frame: dict[int, list[float]]) -> list[float]:
    return [x for values in by_frame.values() for x in values]


def paired(cascade: dict[int, list[float]], direct: dict[int, list[float]]) -> list[float]:
    """Each cascade viewer's latency of a frame less the direct viewers' median latency of that frame: what
    the path added, with what every path shares (the publisher's own delays) taken out."""
    return [x - statistics.median(direct[n]) for n, values in cascade.items() if n in direct for x in values]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


# -- the run ----------------------------------------------------------------------------------------------

async def latency_phase(tree: Tree, args: argparse.Namespace, publisher: Viewers) -> dict:
    """Viewers on the origin and on the edge at once: glass-to-glass latency and CPU per packet per tier."""
    d, tag, n = tree.directory, tree.tag, args.viewers
    direct = await traced(d, "direct", f"ws://127.0.0.1:{tree.origin_port}", f"{tag}d", n, args.size, args.fps,
                          "join", tree.program, "--slots", "1", "--duration", "600")
    edge = await traced(d, "edgeviewers", f"ws://127.0.0.1:{tree.edge_port}", f"{tag}e", n, args.size, args.fps,
                        "join", tree.edge_room, "--watch", "--slots", "1", "--duration", "600")
    tree.calls += [direct, edge]
    if not await started([direct, edge], 60):
        raise SystemExit("the viewers did not all start:\n" + "\n".join(direct.lines[-20:] + edge.lines[-20:]))
    await asyncio.sleep(2.0)
    window = Window({"origin": tree.origin, "tier2": tree.tier2, "edge": tree.edge},
                    {"publisher": publisher.proc.pid, "direct viewers": direct.proc.pid,
                     "edge viewers": edge.proc.pid})
    ports = {name: udp_ports(pid) for name, pid in (("publisher", publisher.proc.pid),
                                                    *((n, tree.__dict__[n]["proc"].pid)
                                                      for n in ("origin", "tier2", "edge")))}
    try:
        capture: LoopbackCapture | None = LoopbackCapture()
    except (OSError, AttributeError):  # not root, or no AF_PACKET: no hop figures
        capture = None
    anchor = AnchorStream()
    await anchor.start(args.fps)
    ports.update(anchor.ports())
    await window.open()
    await asyncio.sleep(args.seconds)
    figures = await window.close()
    await anchor.stop()
    if capture is not None:
        capture.stop()
        figures["hops"] = await asyncio.to_thread(hops, capture.records, ports, (figures["from"], figures["to"]))
    await asyncio.sleep(1.0)  # the last frames of the window reach the viewers
    for call in (direct, edge):
        await call.end()
    span = (figures["from"], figures["to"])
    frames = {}
    for name, call in (("direct", direct), ("cascade", edge)):
        frames[name], shown = latencies(publisher.notes, [call], span)
        values = flat(frames[name])
        figures[name] = {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
                         "min": min(values, default=0.0), "mean": statistics.fmean(values) if values else float("nan"),
                         "frames": len(values), "shown": shown}
    added = paired(frames["cascade"], frames["direct"])
    figures["paired"] = {"p50": percentile(added, 0.5), "p99": percentile(added, 0.99), "frames": len(added)}
    return figures


def chunks(ramp: list[int], most: int) -> list[list[int]]:
    """The viewer processes each step of ``ramp`` adds: its new viewers, at most ``most`` per process."""
    out, total = [], 0
    for target in ramp:
        new = target - total
        out.append([min(most, new - i) for i in range(0, new, most)])
        total = target
    return out


async def ramp(tree: Tree, args: argparse.Namespace, publisher: Viewers, deadline: float) -> list[dict]:
    """Viewers added to the edge step by step until their loss passes LOSS_LIMIT (or a limit of the run)."""
    steps: list[dict] = []
    calls: list[Viewers] = []
    total = 0
    try:
        for k, counts in enumerate(chunks(args.ramp, args.per_process)):
            if time.monotonic() + args.step_seconds + 30 > deadline:
                steps.append({"viewers": total + sum(counts), "stopped": "time"})
                break
            for j, count in enumerate(counts):
                call = await traced(tree.directory, f"ramp{k}x{j}", f"ws://127.0.0.1:{tree.edge_port}",
                                    f"{tree.tag}r{k}x{j}x", count, args.size, args.fps, "join", tree.edge_room,
                                    "--watch", "--slots", "1", "--duration", "900", light=not args.decode_all)
                calls.append(call)
                tree.calls.append(call)
                await asyncio.sleep(args.stagger)  # joins in bursts of one process's viewers, not a step's
            total += sum(counts)
            if not await started(calls, 30 + total / 4):
                steps.append({"viewers": total, "stopped": "viewers did not all start"})
                break
            await asyncio.sleep(2.0)
            window = Window({"edge": tree.edge}, {"publisher": publisher.proc.pid,
                                                  **{c.name: c.proc.pid for c in calls}})
            await window.open()
            await asyncio.sleep(args.step_seconds)
            figures = await window.close()
            by_frame, shown = latencies(publisher.notes, calls, (figures["from"], figures["to"] - 1.0))
            drawn, _ = read_notes(publisher.notes)
            fps = sum(1 for t in drawn.values() if figures["from"] <= t <= figures["to"]) / figures["span"]
            values = flat(by_frame) if args.decode_all else []  # light viewers: key frames only, no figure
            edge = figures["servers"]["edge"]
            share = figures["share"]["edge"]
            rate = edge["viewers"] / figures["span"]
            previous = next((s for s in reversed(steps) if "rate" in s), None)
            marginal = ((share - previous["edge_share"]) / (rate - previous["rate"]) * 1e6
                        if previous and rate > previous["rate"] else float("nan"))
            present = (await asyncio.to_thread(sent_packets, tree.edge["http"]))["participants"]
            if figures["servers"]["edge"]["joins"] != 0 or present < total:
                steps.append({"viewers": total, "stopped": "the edge lost its viewers during the step (its "
                                                          "signaling took it for dead: see edge.log, 'relinked')"})
                break
            step = {"viewers": total, "rate": rate, "marginal": marginal, "load": figures["load"], "edge_share": share,
                    "per_core": total / share if share else float("inf"), "us_per_packet": edge["us_per_packet"],
                    "packets_per_viewer": edge["viewers"] / figures["span"] / total, "loss": edge["loss"],
                    "shown": shown if args.decode_all else None, "fps": fps, "starved": fps < 0.8 * args.fps,
                    "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
                    "viewer_cpu": sum(figures["share"][c.name] for c in calls)}
            steps.append(step)
            print_step(step)
            if edge["loss"] > LOSS_LIMIT:
                break
            if args.decode_all and shown < SHOWN_LIMIT:
                step["stopped"] = f"the viewers' processes fell behind ({shown:.1%} of the frames shown)"
                break
    finally:
        for call in calls:
            await call.end()
    return steps


def print_step(s: dict) -> None:
    seen = (f"{s['shown'] * 100:>7.1f} % {s['p50'] * 1000:>7.1f} {s['p99'] * 1000:>7.1f}" if s["shown"] is not None
            else f"{'-':>9} {'-':>7} {'-':>7}")
    print(f"{s['viewers']:>7} {s['load']:>5.1f} {s['edge_share'] * 100:>8.1f} % {s['per_core']:>9.0f} "
          f"{s['us_per_packet']:>7.1f} {s['marginal']:>8.1f} {s['packets_per_viewer']:>7.0f} "
          f"{s['loss'] * 100:>7.2f} % {seen} {s['viewer_cpu'] * 100:>10.0f} % {s['fps']:>8.1f}", flush=True)


async def run(args: argparse.Namespace) -> dict:
    """The whole run, printed as it goes: {"latency": the latency phase's figures, "steps": the ramp's}."""
    started_at = time.monotonic()
    deadline = started_at + args.budget
    directory = Path(args.keep or tempfile.mkdtemp(prefix="broadcast-real."))
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"bb{os.getpid() % 10000}"
    ramp_users = [f"{tag}r{k}x{j}x{i}" for k, counts in enumerate(chunks(args.ramp, args.per_process))
                  for j, count in enumerate(counts) for i in range(1, count + 1)]
    tree = Tree(directory, tag)
    try:
        await tree.start(args.viewers, ramp_users)
        idle = Window({"origin": tree.origin, "tier2": tree.tier2, "edge": tree.edge}, {})
        await idle.open()
        await asyncio.sleep(3.0)
        idle_share = (await idle.close())["share"]  # before any media: timers, links' reports, signaling
        publisher = await traced(directory, "publisher", f"ws://127.0.0.1:{tree.origin_port}", f"{tag}pub", 0,
                                 args.size, args.fps, "join", tree.program, "--duration", str(args.budget))
        tree.calls.append(publisher)
        print(f"processes up in {time.monotonic() - started_at:.0f} s (logs and notes in {directory}); "
              f"publisher {args.size} at {args.fps:g} fps; load {os.getloadavg()[0]:.1f}", flush=True)
        figures = await latency_phase(tree, args, publisher)
        print_latency(figures, args.viewers, idle_share)
        print(f"\nramp: viewers on the edge until their loss passes {LOSS_LIMIT:.1%} (NACKed / forwarded)")
        print(f"{'viewers':>7} {'load':>5} {'edge CPU':>10} {'per core':>9} {'us/pkt':>7} {'marginal':>8} "
              f"{'pkt/s/v':>7} "
              f"{'loss':>9} {'shown':>9} {'p50 ms':>7} {'p99 ms':>7} {'viewers CPU':>12} {'sent fps':>8}")
        steps = await ramp(tree, args, publisher, deadline)
        print(conclusion(steps))
        return {"latency": figures, "steps": steps}
    finally:
        await tree.stop()


def conclusion(steps: list[dict]) -> str:
    """The last step whose viewers lost under LOSS_LIMIT and kept up, and why the ramp ended."""
    good = [s for s in steps if "loss" in s and s["loss"] <= LOSS_LIMIT and "fell behind" not in s.get("stopped", "")
            and not s["starved"]]  # a publisher that sent under 80 % of its frames: the machine, not the edge
    last = steps[-1] if steps else {}
    if "loss" in last and last["loss"] > LOSS_LIMIT:
        why = f"loss {last['loss']:.2%} at {last['viewers']} viewers"
    else:
        why = last.get("stopped", "the last step of --ramp")
    if not good:
        return (f"no step under {LOSS_LIMIT:.1%} with the viewers and the publisher keeping up; "
                f"the ramp ended at: {why}")
    g = good[-1]
    return (f"last step under {LOSS_LIMIT:.1%}: {g['viewers']} viewers, the edge at {g['edge_share']:.1%} of a "
            f"core: {g['per_core']:.0f} viewers per edge core at {g['packets_per_viewer']:.0f} packets/s each "
            f"({g['per_core'] * g['packets_per_viewer'] / 100:.0f} at 100 packets/s), {g['us_per_packet']:.1f} us per "
            f"packet; the ramp ended at: {why}")


def print_latency(f: dict, n: int, idle: dict[str, float]) -> None:
    print(f"\nglass-to-glass latency, {n} viewers on each path, {f['span']:.0f} s, load {f['load']:.1f}:")
    for name in ("direct", "cascade"):
        r = f[name]
        print(f"  {name:8} p50 {r['p50'] * 1000:6.1f} ms  p99 {r['p99'] * 1000:6.1f} ms  mean "
              f"{r['mean'] * 1000:6.1f} ms  ({r['frames']} pictures, {r['shown']:.1%} of the frames shown)")
    p50 = (f["cascade"]["p50"] - f["direct"]["p50"]) / 2 * 1000
    p99 = (f["cascade"]["p99"] - f["direct"]["p99"]) / 2 * 1000
    print(f"  added per tier (cascade - direct) / 2 hops: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    pair = f["paired"]
    print(f"  added per tier, frame by frame (a cascade viewer's latency less the direct viewers' median of the "
          f"same frame) / 2: p50 {pair['p50'] * 500:.1f} ms, p99 {pair['p99'] * 500:.1f} ms ({pair['frames']} pairs)")
    if f.get("hops"):
        print("each server's hop: a video frame's first packet in to its first copy out (kernel time stamps on lo):")
        for name, values in f["hops"].items():
            print(f"  {name:25} p50 {percentile(values, 0.5) * 1000:6.2f} ms  "
                  f"p99 {percentile(values, 0.99) * 1000:6.2f} ms  "
                  f"max {max(values, default=float('nan')) * 1000:6.1f} ms  ({len(values)} frames)")
    print("CPU per packet sent (to viewers and on links below), each server process (above idle: less its CPU "
          "before the publisher started):")
    for name, s in f["servers"].items():
        rate = s["packets"] / f["span"]
        above = (f["share"][name] - idle[name]) / rate * 1e6 if rate else float("nan")
        print(f"  {name:7} {s['us_per_packet']:7.1f} us/packet ({above:.1f} above idle)  {rate:5.0f} packets/s "
              f"({s['viewers'] / f['span']:.0f} to viewers, {s['links'] / f['span']:.0f} on links)  "
              f"CPU {f['share'][name]:.1%} (idle {idle[name]:.1%})" + (f", viewers' loss {s['loss']:.2%}"
                                                                        if s["viewers"] else ""))
    ratio = f["servers"]["edge"]["us_per_packet"] / f["servers"]["origin"]["us_per_packet"]
    print(f"  edge / origin (a call server with the same viewers and the publisher) per packet: {ratio:.2f}")
    print("  other processes' CPU: " + ", ".join(f"{k} {v:.1%}" for k, v in f["share"].items()
                                                 if k not in f["servers"]))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/broadcast.py --real", description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=4, help="viewers on each path for the latency (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="latency window (default 20)")
    parser.add_argument("--ramp", default="20,40,60,80,100,120,150",
                        help="viewers on the edge at each step (default 20,40,60,80,100,120,150)")
    parser.add_argument("--per-process", type=int, default=10, help="viewers per netcore-call process (default 10)")
    parser.add_argument("--stagger", type=float, default=2.0,
                        help="seconds between a step's viewer processes (default 2: a burst of joins on a loaded "
                             "machine can hold a server's loop past its signaling's 2 s liveness timeout)")
    parser.add_argument("--decode-all", action="store_true",
                        help="the ramp's viewers decode every frame (default: the key frames only, so that this "
                             "machine's cores go to more viewers; the loss is measured before decoding)")
    parser.add_argument("--step-seconds", type=float, default=8.0, help="each step's window (default 8)")
    parser.add_argument("--size", default="320x240", help="the publisher's camera (default 320x240)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for the whole run (default 600)")
    parser.add_argument("--keep", help="directory for the logs and notes (else a temporary one)")
    args = parser.parse_args(argv)
    args.ramp = sorted({int(x) for x in args.ramp.split(",") if x})
    return args


def main(argv: list[str]) -> None:
    asyncio.run(run(parse(argv)))


# -- where a frame waits: each server's hop, from the datagrams on the loopback interface ----------------

SO_TIMESTAMPNS = 35  # Linux: a receive time stamp (struct timespec) with each packet


class LoopbackCapture:
    """Every RTP datagram sent on the loopback interface while it runs (an AF_PACKET socket: root only):
    (kernel time, source port, destination port, SSRC, RTP timestamp). The RTP header is in the clear under
    SRTP, so a link's packets (forwarded with the publisher's SSRC and numbers) and each viewer's (rewritten,
    timestamps offset by a constant) can be followed from process to process."""

    def __init__(self) -> None:
        self.records: list[tuple[float, int, int, int, int]] = []
        self._monotonic = time.time() - time.monotonic()  # kernel stamps are wall-clock time
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, address = self.sock.recvmsg(2048, 64)
            except socket.timeout:
                continue
            if len(data) < 40 or data[9] != 17:  # UDP only (a datagram seen twice counts at its first sight)
                continue
            ihl = (data[0] & 15) * 4
            rtp = data[ihl + 8:]
            if len(rtp) < 12 or rtp[0] >> 6 != 2 or 64 <= (rtp[1] & 0x7F) <= 95:  # not RTP, or RTCP (RFC 5761)
                continue
            sport, dport = struct.unpack_from("!HH", data, ihl)
            timestamp, ssrc = struct.unpack_from("!II", rtp, 4)
            at = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    at = seconds + nanoseconds / 1e9
            self.records.append((at - self._monotonic, sport, dport, ssrc, timestamp))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def relay(sink: int) -> None:
    """The anchor of the hop figures (a process of its own): every datagram to our port goes on to port
    ``sink``, on the servers' event loop (netcore.aio), with no other work: what a hop costs on this
    machine's scheduler at this load."""
    from netcore.aio import run

    class Relay(asyncio.DatagramProtocol):
        def connection_made(self, transport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, address) -> None:
            self.transport.sendto(data, ("127.0.0.1", sink))

    async def serve() -> None:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Relay, local_addr=("127.0.0.1", 0))
        print(f"listening {transport.get_extra_info('sockname')[1]}", flush=True)
        await asyncio.Event().wait()

    run(serve())


class AnchorStream:
    """A frame-rate stream of RTP-shaped 1,000-byte datagrams through a :func:`relay` process to a socket of
    ours, while the hop figures are captured."""

    SSRC = 0x0BEEF00D

    async def start(self, fps: float) -> None:
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out.bind(("127.0.0.1", 0))
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__)), "--relay", str(self.sink.getsockname()[1]),
            stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert self.proc.stdout is not None
        self.port = int((await self.proc.stdout.readline()).split()[1])
        self.task = asyncio.ensure_future(self._send(fps))

    async def _send(self, fps: float) -> None:
        for n in range(1_000_000):
            header = struct.pack("!BBHII", 0x80, 96, n & 0xFFFF, n * int(90_000 / fps) & 0xFFFFFFFF, self.SSRC)
            self.out.sendto(header + bytes(1000), ("127.0.0.1", self.port))
            try:
                while self.sink.recv(2048, socket.MSG_DONTWAIT):
                    pass
            except BlockingIOError:
                pass
            await asyncio.sleep(1 / fps)

    def ports(self) -> dict[str, set[int]]:
        return {"sender": {self.out.getsockname()[1]}, "relay": {self.port}, "sink": {self.sink.getsockname()[1]}}

    async def stop(self) -> None:
        self.task.cancel()
        self.proc.kill()
        await self.proc.wait()
        self.sink.close()
        self.out.close()


def udp_ports(pid: int) -> set[int]:
    """The local UDP ports of a process's sockets (/proc/PID/fd against /proc/net/udp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def first_seen(records: list, keep) -> dict[tuple[int, int], dict[int, float]]:
    """(destination port, SSRC) -> RTP timestamp -> the first time a datagram of that frame went, for the
    records ``keep(source port, destination port)`` accepts."""
    flows: dict[tuple[int, int], dict[int, float]] = {}
    for at, sport, dport, ssrc, timestamp in records:
        if keep(sport, dport):
            flows.setdefault((dport, ssrc), {}).setdefault(timestamp, at)
    return flows


def hop_delays(source: dict[int, float], out: dict[int, float]) -> list[float]:
    """For each frame of ``source`` (RTP timestamp -> first time in) also in ``out`` (a flow whose
    timestamps are the source's plus a constant: the most common difference of nearby frames), the time
    from its first packet in to its first packet out."""
    ins = sorted((t, ts) for ts, t in source.items())
    times = [t for t, _ in ins]
    differences: dict[int, int] = {}
    for ts, t in out.items():
        i = bisect.bisect_right(times, t) - 1
        if i >= 0:
            d = (ts - ins[i][1]) & 0xFFFFFFFF
            differences[d] = differences.get(d, 0) + 1
    if not differences:
        return []
    offset = max(differences, key=differences.get)
    return [out[(ts + offset) & 0xFFFFFFFF] - t for ts, t in source.items() if (ts + offset) & 0xFFFFFFFF in out]


def hops(records: list, ports: dict[str, set[int]], window: tuple[float, float]) -> dict[str, list[float]]:
    """Each server's hop delays (s) for the publisher's video frames: origin to its link and to its viewers,
    tier 2 to its link, edge to its viewers."""
    records = [r for r in records if window[0] <= r[0] <= window[1]]
    servers = ports["origin"] | ports["tier2"] | ports["edge"]
    into = {name: first_seen(records, lambda s, d, src=src, dst=ports[name]: s in src and d in dst)
            for name, src in (("origin", ports["publisher"]), ("tier2", ports["origin"]), ("edge", ports["tier2"]))}
    # the publisher's video: the SSRC whose frames are 90 kHz / fps apart (audio's are 960 apart)
    video = [key for key, frames in into["origin"].items()
             if len(frames) > 10 and statistics.median(b - a for a, b in zip(sorted(frames), sorted(frames)[1:]))
             > 1000]
    if not video:
        return {}
    ssrc = video[0][1]
    source = {name: next((f for (_, s), f in flows.items() if s == ssrc), {}) for name, flows in into.items()}
    viewers = {name: first_seen(records, lambda s, d, own=ports[name]: s in own and d not in servers)
               for name in ("origin", "edge")}
    out: dict[str, list[float]] = {
        "origin to its link": hop_delays(source["origin"], source["tier2"]),
        "tier 2 to its link": hop_delays(source["tier2"], source["edge"]),
    }
    if "relay" in ports:  # the anchor: a relay that does nothing else
        into_relay = first_seen(records, lambda s, d: s in ports["sender"] and d in ports["relay"])
        from_relay = first_seen(records, lambda s, d: s in ports["relay"] and d in ports["sink"])
        out["anchor: a bare UDP relay"] = hop_delays(next(iter(into_relay.values()), {}),
                                                     next(iter(from_relay.values()), {}))
    for name, label in (("origin", "origin to its viewers"), ("edge", "edge to its viewers")):
        delays: list[float] = []
        for frames in viewers[name].values():
            if len(frames) > 10 and statistics.median(
                    b - a for a, b in zip(sorted(frames), sorted(frames)[1:])) > 1000:  # video flows
                delays += hop_delays(source[name], frames)
        out[label] = delays
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--relay"]:
        relay(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--traced-call"]:
        light = sys.argv[3:4] == ["--light"]
        traced_call(sys.argv[2], sys.argv[3 + light:], light)
    else:
        main(sys.argv[1:])

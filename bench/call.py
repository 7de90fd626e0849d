"""A call between two of our peers and between two aiortc peers: latency, CPU and bitrate.

Each call runs two peer processes on loopback (ours: ``netcore.testing.callpeer``;
aiortc's: this script with ``--peer``), each sending synthetic 640x480 video
at 30 fps (the frame number drawn in, ``SyntheticCamera``) and audio, and a
forwarder between them (a thread of this process) that every datagram
crosses: the candidates in the offer and the answer are rewritten to its
ports. The forwarder counts the bytes each way and, for the impaired rows,
drops 5 % of the datagrams and delays each by 25 ms plus 0 to 30 ms (50 ms
round trip, 30 ms of jitter; reordering allowed), both ways.

Per call: glass-to-glass latency (the time a decoded picture's frame number
was read back, minus the time the sender took that frame from its camera,
on the one monotonic clock of the machine) p50 and p99 over both
directions, CPU per peer process (its own CPU time over the call, in % of
a core), the bitrate each way on the wire, the share of frames shown, and
for ours the video jitter buffer's W3C jitterBufferDelay per frame ("jb";
bench/call_chromium.py measures Chromium's under the same impairment).

Usage: python3 bench/call.py [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import re
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
WIDTH, HEIGHT, FPS = 640, 480, 30


# -- the aiortc peer (a process of its own) ----------------------------------------------------

def aiortc_peer(args: argparse.Namespace) -> None:
    import aioice.ice
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from netcore.media.synthetic import read_frame_number
    from tests.peer.aiortc_tracks import CameraTrack, MicrophoneTrack, frames_of

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]  # aioice skips 127.0.0.1
    sent: list = []
    decoded: list = []

    class Camera(CameraTrack):
        """Notes when each frame leaves the camera, for the glass-to-glass latency."""

        def make(self, number: int):
            frame = super().make(number)
            sent.append((number, time.monotonic()))
            return frame

    async def consume(track) -> None:
        async for frame in frames_of(track):
            if track.kind == "video":
                number = read_frame_number(frame)
                if number is not None:
                    decoded.append((number, time.monotonic()))

    async def run() -> None:
        pc = RTCPeerConnection()
        tasks = []
        pc.on("track", lambda track: tasks.append(asyncio.ensure_future(consume(track))))
        pc.addTrack(MicrophoneTrack())
        pc.addTrack(Camera(WIDTH, HEIGHT, FPS))
        loop = asyncio.get_running_loop()
        read = lambda: loop.run_in_executor(None, sys.stdin.readline)  # noqa: E731
        if args.offer:
            await pc.setLocalDescription(await pc.createOffer())
            emit({"type": "offer", "sdp": pc.localDescription.sdp})
            answer = json.loads(await read())
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        else:
            offer = json.loads(await read())
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            emit({"type": "answer", "sdp": pc.localDescription.sdp})
        stop = asyncio.ensure_future(read())
        end = loop.time() + args.duration
        while loop.time() < end and not stop.done():
            await asyncio.wait([stop], timeout=min(0.25, end - loop.time()))
            emit({"type": "report", "t": time.monotonic(), "cpu": time.process_time(),
                  "sent": sent[:], "decoded": decoded[:]})
            sent.clear()
            decoded.clear()
        emit({"type": "end", "t": time.monotonic(), "cpu": time.process_time(), "sent": sent, "decoded": decoded})
        await pc.close()
        for task in tasks:
            task.cancel()
        os._exit(0)  # the executor thread may still wait on stdin

    asyncio.run(run())


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- the forwarder -----------------------------------------------------------------------------

class Forwarder:
    """Two sockets standing for the two peers; what one peer sends to the other's stand-in
    leaves from its own stand-in, after the impairment. Runs in a thread."""

    def __init__(self, loss: float, delay: float, jitter: float, seed: int = 1) -> None:
        self.loss, self.delay, self.jitter = loss, delay, jitter
        self.random = random.Random(seed)
        self.for_a = self._socket()  # A's stand-in: B sends here
        self.for_b = self._socket()  # B's stand-in: A sends here
        self.real: dict[str, tuple[str, int] | None] = {"a": None, "b": None}
        self.bytes = {"a->b": 0, "b->a": 0}
        self._queue: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((HOST, 0))
        s.setblocking(False)
        return s

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.for_a, selectors.EVENT_READ, "b->a")
        selector.register(self.for_b, selectors.EVENT_READ, "a->b")
        while not self._stop.is_set():
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, out, data, destination = heapq.heappop(self._queue)
                try:
                    out.sendto(data, destination)
                except OSError:
                    pass
            timeout = max(0.0, self._queue[0][0] - now) if self._queue else 0.05
            for key, _ in selector.select(min(timeout, 0.05)):
                self._read(key.fileobj, key.data)

    def _read(self, sock: socket.socket, direction: str) -> None:
        while True:
            try:
                data, _ = sock.recvfrom(65536)
            except BlockingIOError:
                return
            destination = self.real["a" if direction == "b->a" else "b"]
            if destination is None:
                continue
            self.bytes[direction] += len(data)
            if self.loss and self.random.random() < self.loss:
                continue
            out = self.for_b if direction == "b->a" else self.for_a
            due = time.monotonic() + self.delay + self.random.uniform(0.0, self.jitter)
            heapq.heappush(self._queue, (due, id(data), out, data, destination))

    def rewrite(self, sdp: str, side: str) -> str:
        """``side``'s description with its host candidates replaced by its stand-in (other types dropped)."""
        stand_in = (self.for_a if side == "a" else self.for_b).getsockname()
        lines, seen = [], False
        for line in sdp.replace("\r\n", "\n").split("\n"):
            match = re.match(r"a=candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ (\S+)", line)
            if match:
                if match.group(7) != "host" or match.group(2) != "1" or seen:
                    continue
                seen = True
                self.real[side] = (match.group(5), int(match.group(6)))
                line = (f"a=candidate:{match.group(1)} 1 {match.group(3)} {match.group(4)} "
                        f"{stand_in[0]} {stand_in[1]} typ host")
            lines.append(line)
        return "\r\n".join(line for line in lines if line) + "\r\n"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.for_a.close()
        self.for_b.close()


# -- one call ----------------------------------------------------------------------------------

class Peer:
    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        self.messages: list[dict] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._ready = threading.Event()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            try:
                self.messages.append(json.loads(line))
            except ValueError:
                continue

    def wait_for(self, kind: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if message["type"] == kind:
                    return message
            time.sleep(0.02)
        raise TimeoutError(f"no {kind} from {self.process.args}")

    def send(self, message: dict | str) -> None:
        self.process.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        try:
            self.send("stop")
        except OSError:
            pass
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._thread.join(5)

    def series(self, key: str) -> list:
        return [tuple(x) for m in self.messages if m["type"] in ("report", "end") for x in m.get(key, [])]


def peer_command(implementation: str, offer: bool, duration: float, trace: str | None = None) -> list[str]:
    if implementation == "ours":
        cmd = [sys.executable, "-m", "netcore.testing.callpeer", "--host", HOST, "--width", str(WIDTH),
               "--height", str(HEIGHT), "--fps", str(FPS), "--audio", "--duration", str(duration + 20)]
        if trace is not None:  # per-frame stage times (bench/call_frames.py)
            cmd += ["--trace", f"{trace}/{'a' if offer else 'b'}.json"]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--peer", "--duration", str(duration + 20)]
    return cmd + (["--offer"] if offer else [])


def run_call(implementation: str, duration: float, impaired: bool, trace: str | None = None) -> dict:
    """One call; ``trace``: a directory our peers write their stage times to (a.json, b.json)."""
    forwarder = Forwarder(0.05, 0.025, 0.03) if impaired else Forwarder(0.0, 0.0, 0.0)
    a = Peer(peer_command(implementation, True, duration, trace))
    b = Peer(peer_command(implementation, False, duration, trace))
    try:
        offer = a.wait_for("offer")
        b.send({"type": "offer", "sdp": forwarder.rewrite(offer["sdp"], "a")})
        answer = b.wait_for("answer")
        a.send({"type": "answer", "sdp": forwarder.rewrite(answer["sdp"], "b")})
        # Measure from the first picture shown either way, for ``duration`` seconds.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (a.series("decoded") and b.series("decoded")):
            time.sleep(0.05)
        start = time.monotonic()
        cpu_start = [_cpu_at(p, start) for p in (a, b)]
        bytes_start = dict(forwarder.bytes)
        time.sleep(duration)
        end = time.monotonic()
        bytes_end = dict(forwarder.bytes)
        cpu_end = [_cpu_at(p, end) for p in (a, b)]
    finally:
        for peer in (a, b):
            peer.finish()
        forwarder.stop()
    latencies, shown, taken = [], 0, 0
    for sender, receiver in ((a, b), (b, a)):
        sent = {n: t for n, t in sender.series("sent") if start <= t <= end}
        decoded = {n: t for n, t in receiver.series("decoded") if n in sent}
        latencies += [decoded[n] - sent[n] for n in decoded]
        shown += len(decoded)
        taken += len(sent)
    latencies.sort()
    seconds = end - start
    return {
        "p50": latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "cpu": statistics.mean((e - s) / seconds for s, e in zip(cpu_start, cpu_end)),
        "kbps": statistics.mean((bytes_end[d] - bytes_start[d]) * 8 / seconds / 1000 for d in bytes_end),
        "shown": shown / taken if taken else 0.0,
        "window": (start, end),
        "jitter_buffer": _jitter_buffer_delay((a, b), start, end),
    }


def _jitter_buffer_delay(peers: tuple[Peer, Peer], start: float, end: float) -> float | None:
    """Our video jitter buffers' W3C jitterBufferDelay per frame over [start, end], both peers
    (first packet in to the frame leaving for the decoder); None for aiortc, which has none."""
    delay, frames = 0.0, 0
    for peer in peers:
        reports = [m for m in peer.messages if m["type"] in ("report", "end") and "jitter" in m]
        if not reports:
            return None
        first = min(reports, key=lambda m: abs(m["t"] - start))["jitter"]
        last = min(reports, key=lambda m: abs(m["t"] - end))["jitter"]
        for mid, metrics in last.items():
            if metrics["kind"] == "video" and mid in first:
                delay += metrics["delay_total"] - first[mid]["delay_total"]
                frames += metrics["frames_popped"] - first[mid]["frames_popped"]
    return delay / frames if frames else None


def _cpu_at(peer: Peer, moment: float) -> float:
    """The peer's CPU time in its report nearest ``moment``."""
    reports = [m for m in peer.messages if m["type"] in ("report", "end")]
    if not reports:
        return 0.0
    return min(reports, key=lambda m: abs(m["t"] - moment))["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each measured call")
    parser.add_argument("--aiortc-first", action="store_true", help="run aiortc's call of each condition first")
    parser.add_argument("--condition", choices=("both", "loopback", "impaired"), default="both",
                        help="which link to run the calls on")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)  # an aiortc peer process
    parser.add_argument("--offer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        aiortc_peer(args)
        return
    print(f"{args.duration:.0f} s calls, {WIDTH}x{HEIGHT} at {FPS} fps video + audio, each peer a process")
    rows = []
    for impaired in {"both": (False, True), "loopback": (False,), "impaired": (True,)}[args.condition]:
        condition = "5% loss, 30 ms jitter, 50 ms RTT" if impaired else "loopback"
        order = ("aiortc", "ours") if args.aiortc_first else ("ours", "aiortc")
        results = {impl: run_call(impl, args.duration, impaired) for impl in order}
        rows.append((condition, results))
    print(f"{'condition':34} {'peer':7} {'p50 ms':>7} {'p99 ms':>7} {'CPU %':>6} {'kbit/s':>7} {'shown':>6} "
          f"{'jb ms':>6}")
    for condition, results in rows:
        for impl in ("ours", "aiortc"):
            r = results[impl]
            jitter_buffer = "-" if r["jitter_buffer"] is None else f"{r['jitter_buffer'] * 1000:.0f}"
            print(f"{condition:34} {impl:7} {r['p50'] * 1000:7.0f} {r['p99'] * 1000:7.0f} {r['cpu'] * 100:6.0f} "
                  f"{r['kbps']:7.0f} {r['shown'] * 100:5.0f}% {jitter_buffer:>6}")
        ours, theirs = results["ours"], results["aiortc"]
        print(f"{'':34} {'ratio':7} {ours['p50'] / theirs['p50']:7.2f} {ours['p99'] / theirs['p99']:7.2f} "
              f"{ours['cpu'] / theirs['cpu']:6.2f} {ours['kbps'] / theirs['kbps']:7.2f}   (ours/aiortc)")


if __name__ == "__main__":
    main()

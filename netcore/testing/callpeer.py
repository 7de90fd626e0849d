"""One of our peers in its own process, for tests and benchmarks on real (shaped) links.

::

    python -m netcore.testing.callpeer --host 10.0.0.1 --offer [--turn 10.0.0.3:3478 --turn-user u:p]

Runs a :class:`~netcore.peer.connection.PeerConnection` bound to ``--host``
(run it with ``ip netns exec`` to put it in a network namespace) that sends
a :class:`~netcore.media.synthetic.SyntheticCamera` (and with ``--audio``
a microphone) and decodes what the peer sends. It speaks JSON lines:

* signaling, through whoever started it: the offerer prints
  ``{"type": "offer", "sdp": ...}`` once its candidates are gathered and
  reads ``{"type": "answer", ...}`` from stdin; the answerer reads the
  offer and prints the answer;
* ``{"type": "path", "t", "direction", "relayed", "local_type", "remote_type", "reason"}``
  each time a direction's path changes (the ``pathchange`` event);
* every ``--report`` seconds ``{"type": "report", "t", "cpu", "bytes_sent",
  "target", "frames_decoded", "sent": [[frame, t], ...], "decoded": [[frame, t], ...], ...}``:
  ``t`` is ``time.monotonic()`` (one clock for every process on the machine),
  ``sent`` the frames taken from the camera since the last report and when,
  ``decoded`` the frame numbers read back from the decoded pictures and when;
* ``{"type": "end", ...}`` after ``--duration`` seconds or a ``stop`` line on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import threading
import time
from typing import Any

import av
import numpy as np

from netcore.ice.gathering import TurnServerConfig
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone, read_frame_number
from netcore.peer.connection import ConnectionState, Description, PeerConfiguration, PeerConnection
from netcore.peer.events import PathChanged
from netcore.peer.tracks import LocalAudioTrack, LocalVideoTrack
from netcore.testing import calltrace

__all__ = ["main", "parse_address"]


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class RecordedTrack(LocalVideoTrack):
    """A video track that notes each frame the sender takes to encode (number, time); frames
    dropped because the sender was late are not noted: they never left, and are not drawn."""

    def __init__(self, camera: SyntheticCamera, noise: int, recorder: Recorder) -> None:
        super().__init__((), fps=camera.fps)
        self.camera = camera
        self.recorder = recorder
        self.number = 0
        self.grain = _grain(camera, noise) if noise else None

    def next_frame(self):
        frame = self.camera.frame(self.number)
        if self.grain is not None:  # detail for the encoder to spend a high bitrate on, below the number
            frame = _with_grain(frame, self.grain[self.number % len(self.grain)], self.camera.width // 40 * 3)
        self.recorder.sent.append((self.number, time.monotonic()))
        self.number += 1
        return frame

    def skip(self) -> bool:
        self.number += 1
        return True


class Recorder:
    """What the process reports: frames sent and decoded since the last report, path changes."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float]] = []
        self.decoded: list[tuple[int, float]] = []
        self.all_sent: list[tuple[int, float]] = []  # over the whole call (for --trace)
        self.all_decoded: list[tuple[int, float]] = []
        self.audio_frames = 0

    def on_track(self, track) -> None:
        if track.kind == "video":
            track.on_frame(self._video)
        else:
            track.on_frame(self._audio)

    def _video(self, frame) -> None:
        number = read_frame_number(frame)
        if number is not None:
            self.decoded.append((number, time.monotonic()))

    def _audio(self, frame) -> None:
        self.audio_frames += 1

    @staticmethod
    def on_path(event: PathChanged) -> None:
        emit({"type": "path", "t": time.monotonic(), "direction": event.direction.value, "relayed": event.relayed,
              "local_type": event.local_type, "remote_type": event.remote_type, "reason": event.reason,
              "local": list(event.local), "remote": list(event.remote)})


def _grain(camera: SyntheticCamera, amplitude: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(-amplitude, amplitude + 1, (camera.height, camera.width), dtype=np.int16)
            for _ in range(8)]


def _with_grain(frame: av.VideoFrame, grain: np.ndarray, top: int) -> av.VideoFrame:
    planes = frame.to_ndarray()
    height = grain.shape[0]
    luma = planes[top:height].astype(np.int16) + grain[top:]
    planes[top:height] = np.clip(luma, 16, 235).astype(np.uint8)
    noisy = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    noisy.pts, noisy.time_base = frame.pts, frame.time_base
    return noisy


async def read_line() -> str:
    """The next line of stdin, read in a daemon thread (a pending read must not hold the exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        line = sys.stdin.readline()
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(line))
    threading.Thread(target=read, daemon=True).start()
    return await future


def report(pc: PeerConnection, recorder: Recorder, kind: str = "report") -> dict[str, Any]:
    transport = pc.transport
    stats = pc.get_stats()
    inbound = [s for s in stats.values() if s["type"] == "inbound-rtp"]
    message = {
        "type": kind, "t": time.monotonic(), "cpu": time.process_time(),
        "state": pc.connection_state.value,
        "bytes_sent": transport.sender.bytes_sent if transport is not None else 0,
        "packets_sent": transport.sender.packets_sent if transport is not None else 0,
        "padding_sent": transport.sender.padding_sent if transport is not None else 0,
        "retransmissions": transport.sender.retransmissions if transport is not None else 0,
        "target": transport.target_bitrate if transport is not None else 0,
        "frames_decoded": sum(s.get("framesDecoded", 0) for s in inbound),
        "packets_received": sum(s["packetsReceived"] for s in inbound),
        "bytes_received": sum(s["bytesReceived"] for s in inbound),
        "audio_frames": recorder.audio_frames,
        "nacks_sent": transport.stats.nacks_sent if transport is not None else 0,
        "plis_received": transport.stats.plis_received if transport is not None else 0,
        "rtx_received": transport.stats.rtx_received if transport is not None else 0,
        "padding_received": transport.stats.padding_received if transport is not None else 0,
        "unroutable": transport.stats.unroutable if transport is not None else 0,
        "rtt": next((s.get("currentRoundTripTime") for s in stats.values() if s["type"] == "candidate-pair"), None),
        "rtcp_rtt": transport._rtt() if transport is not None else None,
        "retransmissions_refused": transport.sender.retransmissions_refused if transport is not None else 0,
        "jitter": {mid: dict(dataclasses.asdict(r.jitter.metrics), kind=r.track.kind)
                   for mid, r in pc._receivers.items()},
        "sent": recorder.sent, "decoded": recorder.decoded,
    }
    recorder.all_sent += recorder.sent
    recorder.all_decoded += recorder.decoded
    recorder.sent, recorder.decoded = [], []
    return message


async def run(args: argparse.Namespace) -> None:
    turn = ()
    if args.turn:
        user, _, password = args.turn_user.partition(":")
        turn = (TurnServerConfig(parse_address(args.turn), user, password),)
    pc = PeerConnection(PeerConfiguration(hosts=(args.host,), turn_servers=turn, max_bitrate=args.max_bitrate))
    recorder = Recorder()
    pc.on("track", recorder.on_track)
    pc.on("pathchange", recorder.on_path)
    done = asyncio.Event()
    pc.on("icecandidate", lambda candidate: done.set() if candidate is None else None)
    if args.send:
        camera = SyntheticCamera(args.width, args.height, args.fps)
        pc.add_track(RecordedTrack(camera, args.noise, recorder))
    else:
        pc.add_transceiver("video", "recvonly")
    if args.audio and args.send:
        pc.add_track(LocalAudioTrack(SyntheticMicrophone()))
    try:
        if args.offer:
            await pc.set_local_description(pc.create_offer())
            await asyncio.wait_for(done.wait(), 10.0)
            emit({"type": "offer", "sdp": pc.local_description.sdp})
            answer = json.loads(await read_line())
            await pc.set_remote_description(Description(answer["sdp"], "answer"))
        else:
            offer = json.loads(await read_line())
            await pc.set_remote_description(Description(offer["sdp"], "offer"))
            await pc.set_local_description(pc.create_answer())
            await asyncio.wait_for(done.wait(), 10.0)
            emit({"type": "answer", "sdp": pc.local_description.sdp})
        stop = asyncio.ensure_future(read_line())
        loop = asyncio.get_running_loop()
        end = loop.time() + args.duration
        while loop.time() < end and not stop.done():
            await asyncio.wait([stop], timeout=min(args.report, end - loop.time()))
            emit(report(pc, recorder))
            if pc.connection_state in (ConnectionState.FAILED, ConnectionState.CLOSED):
                break
        emit(report(pc, recorder, "end"))
    finally:
        await pc.close()
        if args.trace:
            calltrace.dump(args.trace, {"sent": recorder.all_sent, "shown": recorder.all_decoded})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="callpeer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True, help="address to bind the host candidate to")
    parser.add_argument("--offer", action="store_true", help="make the offer (else answer one from stdin)")
    parser.add_argument("--turn", help="TURN server HOST:PORT")
    parser.add_argument("--turn-user", default="test:test", help="NAME:PASSWORD on the TURN server")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--audio", action="store_true")
    parser.add_argument("--noise", type=int, default=0, help="grain in the picture (luma steps), for a high bitrate")
    parser.add_argument("--receive-only", dest="send", action="store_false", help="send nothing, receive video")
    parser.add_argument("--max-bitrate", type=float, default=2_500_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--report", type=float, default=0.25, help="seconds between reports")
    parser.add_argument("--trace", help="write per-frame stage times to this JSON file (netcore.testing.calltrace)")
    args = parser.parse_args(argv)
    if args.trace:
        calltrace.install()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

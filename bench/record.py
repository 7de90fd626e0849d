"""Recording: file creator speed and the logger's cost per packet.

1. A room of three synthetic publishers (netcore.record.synthetic: real
   VP8/Opus encoders, 320x240 at 15 fps, network jitter, sender reports,
   drifting clocks) is journalled for MINUTES minutes (not timed), then the
   file creator turns it into files: the remux (one WebM per participant,
   no re-encoding) and the composite (grid and mix, encoded once) are
   timed separately, in seconds of call per second of work (wall and CPU).
2. The logger's cost per packet: ``RoomLogger.rtp`` of 1200-byte video
   packets and 100-byte audio packets into journal files on disk (one
   ``write`` each), and the record encoding alone, in CPU microseconds per
   packet, best of several rounds.
3. The call server with recording on and off: three participants
   publishing VP8-shaped video (20 fps, two packets a frame) and Opus-shaped
   audio, each receiving the two others, through one ``SfuCore`` on the
   simulated network (real ICE, DTLS, SRTP, RTCP), for a few virtual
   seconds; CPU of the core's entry points per received media packet,
   rounds alternating off and on, best of each; the on rounds journal every
   packet and sender report to disk (``netcore.sfu.recorder``). The first
   second, where each track's first packet writes the manifest, is not
   timed: that is a cost per track, not per packet.

Usage: python3 bench/record.py [minutes, default 10]   (0: only 2 and 3)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netcore.record.composite import write_composite  # noqa: E402
from netcore.record.creator import create_recording, track_clocks  # noqa: E402
from netcore.record.frames import track_frames  # noqa: E402
from netcore.record.journal import encode_rtp  # noqa: E402
from netcore.record.logger import RoomLogger  # noqa: E402
from netcore.record.manifest import Codec  # noqa: E402
from netcore.record.mux import MuxTrack  # noqa: E402
from netcore.record.reader import read_room  # noqa: E402
from netcore.record.synthetic import Publisher, synthesize_room  # noqa: E402
from netcore.record.writer import DirectoryStorage  # noqa: E402
from netcore.rtp.packet import RtpPacket  # noqa: E402
from netcore.rtp.vp8 import Vp8Descriptor  # noqa: E402

ROUNDS = 5
PACKETS = 50_000


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def file_creator(minutes: float, work: Path) -> None:
    seconds = minutes * 60
    publishers = [
        Publisher("alice", duration=seconds, width=320, height=240, fps=15, wallclock_drift=1e-4, audio_drift=2e-4),
        Publisher("bob", duration=seconds - 10, video_start=10, audio_start=10, width=320, height=240, fps=15,
                  wallclock_offset=-3600),
        Publisher("carol", duration=seconds, width=320, height=240, fps=15, audio_drift=-1e-4),
    ]
    _, wall, _ = timed(lambda: synthesize_room(work / "journal", publishers, max_segment_bytes=16 << 20))
    size = sum(p.stat().st_size for p in (work / "journal").rglob("*") if p.is_file())
    print(f"journal: 3 participants, {minutes:g} min, {size / 1e6:.1f} MB (synthesised in {wall:.0f} s)")
    recording, wall, cpu = timed(lambda: create_recording(work / "journal", work / "out"))
    print(f"remux (files per participant)  {recording.duration / wall:8.1f} s of call per s of wall"
          f"   {recording.duration / cpu:8.1f} per s of CPU   ({wall:.1f} s wall, {cpu:.1f} s CPU)")

    def composite():
        journal = read_room(work / "journal")
        clocks, _ = track_clocks(journal)
        participants = {}
        for entry in journal.manifest.tracks:
            frames = track_frames(journal.tracks[entry.track_id], entry.codec, clocks[entry.track_id])
            participants.setdefault(entry.participant, []).append(MuxTrack(entry.track_id, entry.codec, frames.frames))
        write_composite(work / "composite.webm", list(participants.values()), recording.duration)

    _, wall, cpu = timed(composite)
    print(f"composite (grid + mix, VP8)    {recording.duration / wall:8.1f} s of call per s of wall"
          f"   {recording.duration / cpu:8.1f} per s of CPU   ({wall:.1f} s wall, {cpu:.1f} s CPU)")


def logger_cost(work: Path) -> None:
    video = [RtpPacket.build(payload_type=96, sequence_number=i & 0xFFFF, timestamp=3000 * (i // 4), ssrc=1,
                             payload=Vp8Descriptor(i % 4 == 0, 0, picture_id=i // 4 & 0x7FFF).serialize()
                             + bytes(1180)).serialize() for i in range(PACKETS)]
    audio = [RtpPacket.build(payload_type=111, sequence_number=i & 0xFFFF, timestamp=960 * i, ssrc=2,
                             payload=b"\xfc" + bytes(99)).serialize() for i in range(PACKETS)]
    results = {}
    for round_ in range(ROUNDS):
        logger = RoomLogger("bench", DirectoryStorage(work / f"logger{round_}", 64 << 20), now=0.0)
        logger.add_participant("p", 0.0)
        logger.add_track("v", "p", Codec("VP8", 90000, 96), 0.0)
        logger.add_track("a", "p", Codec("opus", 48000, 111), 0.0)
        for name, track, packets in (("video 1200 B", "v", video), ("audio 100 B", "a", audio)):
            cpu = time.process_time()
            for i, packet in enumerate(packets):
                logger.rtp(track, packet, i * 0.001)
            per = (time.process_time() - cpu) / len(packets)
            results[name] = min(results.get(name, per), per)
        logger.close(1.0)
        cpu = time.process_time()
        for i, packet in enumerate(video):
            encode_rtp(packet, i * 0.001)
        per = (time.process_time() - cpu) / len(video)
        results["record encoding only"] = min(results.get("record encoding only", per), per)
    for name, per in results.items():
        print(f"logger.rtp {name:<22} {per * 1e6:6.2f} us CPU per packet")


class CoreCpu:
    """CPU seconds a core spends in its entry points (``handle_datagram``, ``handle_timeout``)."""

    def __init__(self, core) -> None:
        self.seconds = 0.0
        for name in ("handle_datagram", "handle_timeout"):
            setattr(core, name, self._metered(getattr(core, name)))

    def _metered(self, entry):
        def metered(*args):
            cpu = time.process_time()
            entry(*args)
            self.seconds += time.process_time() - cpu
        return metered


def sfu_round(work: Path | None, seconds: float = 6.0) -> tuple[float, int]:
    """CPU seconds in the call server core and media packets it received, recording into ``work`` or not."""
    from netcore.sfu.recorder import SfuRecorder
    from tests.sfu.harness import Room

    room = Room(seed=7)
    for name in ("a", "b", "c"):
        room.join(name, slots=2)
    room.connect(until=10.0)
    core = room.core
    if work is not None:
        recorder = SfuRecorder(core, lambda room_id, now: DirectoryStorage(work))
        room.server.on_event = lambda event: recorder.on_event(event, room.net.now)
        recorder.start("r1", room.net.now)
    room.stream(1.0, fps=20)  # not timed: tracks added (a manifest written and fsynced for each)
    meter = CoreCpu(core)
    before = core.stats.packets_received
    room.stream(seconds, fps=20)
    return meter.seconds, core.stats.packets_received - before


def sfu_cost(work: Path) -> None:
    best: dict[str, float] = {}
    for round_ in range(2 * ROUNDS):
        mode = "on" if round_ % 2 else "off"
        cpu, packets = sfu_round(work / f"sfu{round_}" if mode == "on" else None)
        best[mode] = min(best.get(mode, cpu / packets), cpu / packets)
    print(f"call server, 3 participants: {best['off'] * 1e6:6.1f} us CPU per received packet recording off, "
          f"{best['on'] * 1e6:6.1f} us on: +{(best['on'] - best['off']) * 1e6:.1f} us "
          f"({best['on'] / best['off']:.3f}x)")


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        logger_cost(Path(tmp))
        sfu_cost(Path(tmp))
        if minutes > 0:
            file_creator(minutes, Path(tmp))


if __name__ == "__main__":
    main()

"""The transcoder against FFmpeg's command line: real-time factor per core, and the latency a rendition adds.

Input: SECONDS of FFmpeg's ``testsrc2`` pattern at 1280x720, 30 fps, coded
as VP8 the way a browser publishes it (libvpx realtime, 2 Mbit/s, a key
frame every 5 s), written to an IVF file.  The same file is converted three
ways, in alternating rounds (the best round of each is kept, so a load that
comes and goes on a shared machine favours none):

* **ours** -- :class:`netcore.transcode.core.Transcoder`, fed the file's
  frames as the RTP payloads a call server would forward (packetized before
  timing; depacketizing is counted, it is the service's work), one thread;
* **PyAV** -- the same libraries (PyAV's FFmpeg, libvpx, libx264) called
  directly in a minimal loop with the same settings, one thread: the floor
  of what a Python transcoder can cost, so ``ours / PyAV`` is our own
  overhead and ``PyAV / ffmpeg`` the difference between PyAV's bundled
  libraries and the system's;
* **ffmpeg** -- the ``ffmpeg`` command line decoding once, splitting,
  scaling (bilinear, as swscale's default in PyAV) and encoding each
  rendition with the same encoder options, key frames where the source has
  them, one thread everywhere, output discarded (``-f null``).

Two conversions: the ladder (720p VP8 into 360p + 180p VP8) and the codec
change (720p VP8 into 720p H.264).  The figure is the real-time factor per
core: seconds of video per CPU second (user + system) of the process or of
the ``ffmpeg`` child; wall time is printed too.  Targets: the ladder at
least 1x on one core, and ours at most 10 % above ffmpeg's CPU.

Then the latency: the file is played into the transcoder in real time (a
frame every 1/30 s, as a call server forwards them) and each rendition's
frames are timed from the source frame's arrival to the rendition frame
being ready: what a subscriber of a rendition waits beyond one of the
original (which the call server forwards as it arrives).  Frames skipped to
stay real time are counted.

With a third argument N, the pattern gets temporal noise of strength N (FFmpeg's ``noise`` filter;
8 is about a webcam's sensor noise in a dim room), which costs every encoder more.

Usage: python3 bench/transcode.py [seconds of video, default 10] [rounds, default 3] [noise, default 0]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
from av.video.reformatter import VideoReformatter  # noqa: E402

from netcore.media.codecs import _OPTIONS as ENCODER_OPTIONS  # noqa: E402
from netcore.rtp.vp8 import Vp8Packetizer  # noqa: E402
from netcore.transcode.core import RenditionEncoded, SourceFrame, Transcoder  # noqa: E402
from netcore.transcode.ladder import Rendition, codec_ladder, simulcast_ladder  # noqa: E402

FPS = 30
WIDTH, HEIGHT = 1280, 720
SOURCE_BITRATE = "2M"
KEYFRAME_EVERY = 5 * FPS
_FFMPEG_ENCODERS = {"VP8": "libvpx", "H264": "libx264"}
_FFMPEG_OPTIONS = {
    "VP8": ["-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-error-resilient", "1",
            "-max-intra-rate", "300"],
    "H264": ["-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline"],
}
CONVERSIONS = {
    "720p VP8 -> 360p+180p VP8": simulcast_ladder("VP8"),
    "720p VP8 -> 720p H.264": codec_ladder("H264"),
}


def make_source(path: Path, seconds: float, noise: int) -> None:
    pattern = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}" + (f",noise=alls={noise}:allf=t" if noise else "")
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", pattern, "-t", str(seconds), "-pix_fmt", "yuv420p",
         "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0",
         "-b:v", SOURCE_BITRATE, "-g", str(KEYFRAME_EVERY), "-keyint_min", str(KEYFRAME_EVERY), str(path)],
        check=True)


def source_frames(path: Path) -> list[SourceFrame]:
    """The file's frames as a call server would forward them: RTP payloads on the 90 kHz clock."""
    packetizer = Vp8Packetizer(1200)
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for number, packet in enumerate(container.demux(stream)):
            if packet.size == 0:
                continue
            timestamp = int(packet.pts * stream.time_base * 90_000)
            frames.append(SourceFrame(packetizer.packetize(bytes(packet)), timestamp & 0xFFFFFFFF,
                                      packet.is_keyframe, number / FPS))
    return frames


def run_ours(ladder: tuple[Rendition, ...], frames: list[SourceFrame]) -> tuple[float, float, int]:
    """CPU and wall seconds of the transcoder over every frame (nothing dropped), and frames made."""
    transcoder = Transcoder("VP8", ladder, clock=time.perf_counter, max_delay=float("inf"))
    made = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for frame in frames:
        transcoder.push(frame)
        transcoder.process()
        while (event := transcoder.poll_event()) is not None:
            made += isinstance(event, RenditionEncoded)
    return time.process_time() - cpu, time.perf_counter() - wall, made


def run_pyav(ladder: tuple[Rendition, ...], path: Path) -> tuple[float, float, int]:
    """The same work in a minimal loop over PyAV: demux, decode, scale, encode."""
    cpu, wall = time.process_time(), time.perf_counter()
    made = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        encoders, scalers = [], {}
        for rendition in ladder:
            width, height = rendition.size_for(WIDTH, HEIGHT)
            context = av.CodecContext.create(_FFMPEG_ENCODERS[rendition.codec], "w")
            context.width, context.height, context.pix_fmt = width, height, "yuv420p"
            context.time_base, context.framerate = Fraction(1, 90_000), Fraction(FPS)
            context.bit_rate, context.gop_size, context.thread_count = rendition.bitrate, 3000, 1
            context.options = dict(ENCODER_OPTIONS[rendition.codec])
            context.open()
            encoders.append((context, (width, height)))
            scalers[(width, height)] = VideoReformatter()
        for packet in container.demux(stream):
            for picture in packet.decode():
                scaled = {}
                key = packet.is_keyframe
                for context, size in encoders:
                    image = scaled.get(size)
                    if image is None:
                        image = picture if size == (WIDTH, HEIGHT) else scalers[size].reformat(
                            picture, width=size[0], height=size[1], format="yuv420p", threads=1)
                        scaled[size] = image
                    image.pts, image.time_base = int(picture.pts * stream.time_base * 90_000), Fraction(1, 90_000)
                    image.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
                    made += sum(1 for _ in context.encode(image))
    return time.process_time() - cpu, time.perf_counter() - wall, made


def ffmpeg_command(ladder: tuple[Rendition, ...], path: Path) -> list[str]:
    sizes = [r.size_for(WIDTH, HEIGHT) for r in ladder]
    labels = [f"v{i}" for i in range(len(ladder))]
    if len(ladder) == 1 and sizes[0] == (WIDTH, HEIGHT):
        graph, maps = [], ["0:v"]
    else:
        split = f"[0:v]split={len(ladder)}" + "".join(f"[s{i}]" for i in range(len(ladder)))
        scales = [f"[s{i}]scale={w}:{h}:flags=bilinear[{label}]" for i, ((w, h), label) in enumerate(zip(sizes, labels))]
        graph, maps = ["-filter_complex", ";".join([split] + scales)], [f"[{label}]" for label in labels]
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
               "-filter_complex_threads", "1", "-i", str(path)] + graph
    for rendition, stream in zip(ladder, maps):
        command += ["-map", stream, "-c:v", _FFMPEG_ENCODERS[rendition.codec], *_FFMPEG_OPTIONS[rendition.codec],
                    "-b:v", str(rendition.bitrate), "-g", "3000", "-threads", "1", "-force_key_frames", "source",
                    "-pix_fmt", "yuv420p", "-f", "null", "-"]
    return command


def run_ffmpeg(command: list[str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall, 0


def throughput(seconds: float, rounds: int, path: Path, frames: list[SourceFrame]) -> None:
    size = path.stat().st_size * 8 / seconds / 1000
    print(f"real-time factor per core ({seconds:g} s of {WIDTH}x{HEIGHT} at {FPS} fps, {size:.0f} kbit/s, best of {rounds}; "
          "video seconds per CPU second, wall in brackets)")
    for name, ladder in CONVERSIONS.items():
        command = ffmpeg_command(ladder, path)
        best = {"ours": (float("inf"), 0.0), "PyAV": (float("inf"), 0.0), "ffmpeg": (float("inf"), 0.0)}
        for _ in range(rounds):
            for who, run in (("ours", lambda: run_ours(ladder, frames)), ("PyAV", lambda: run_pyav(ladder, path)),
                             ("ffmpeg", lambda: run_ffmpeg(command))):
                cpu, wall, _ = run()
                if cpu < best[who][0]:
                    best[who] = (cpu, wall)
        rtf = {who: seconds / cpu for who, (cpu, _) in best.items()}
        print(f"  {name:<28}" + "".join(f" {who} {rtf[who]:5.2f}x ({seconds / best[who][1]:5.2f}x)"
                                         for who in best))
        print(f"  {'':<28} ours/ffmpeg CPU {best['ours'][0] / best['ffmpeg'][0]:5.2f}   "
              f"ours/PyAV {best['ours'][0] / best['PyAV'][0]:5.2f}   PyAV/ffmpeg {best['PyAV'][0] / best['ffmpeg'][0]:5.2f}")


def latency(frames: list[SourceFrame]) -> None:
    ladder = simulcast_ladder("VP8") + codec_ladder("H264")
    transcoder = Transcoder("VP8", ladder, clock=time.perf_counter)
    latencies: dict[str, list[float]] = {r.name: [] for r in ladder}
    start = time.perf_counter()
    for frame in frames:
        due = start + frame.arrival
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        transcoder.push(SourceFrame(frame.payloads, frame.timestamp, frame.keyframe, time.perf_counter()))
        transcoder.process()
        while (event := transcoder.poll_event()) is not None:
            if isinstance(event, RenditionEncoded):
                latencies[event.rendition.name].append(event.latency * 1000)
    metrics = transcoder.metrics
    print(f"added latency, played in real time (q, h: the VP8 ladder; h264: 720p H.264; encoded in that order "
          f"after one decode of {metrics.decode_time * 1000:.1f} ms a frame)")
    for rendition in ladder:
        values = sorted(latencies[rendition.name])
        m = metrics.renditions[rendition.name]
        print(f"  {rendition.name:<5} {rendition.codec:<4} {rendition.size_for(WIDTH, HEIGHT)[1]:>4}p  "
              f"p50 {statistics.median(values):6.1f} ms  p95 {values[int(len(values) * 0.95)]:6.1f} ms  "
              f"max {values[-1]:6.1f} ms  encode {m.encode_time * 1000:5.1f} ms/frame  "
              f"skipped {m.frames_dropped}/{len(frames)}")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    noise = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} cores; "
          f"ffmpeg CLI {subprocess.run(['ffmpeg', '-version'], capture_output=True, text=True).stdout.split()[2]}, "
          f"PyAV {av.__version__} on FFmpeg {av.ffmpeg_version_info}")
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "source.ivf"
        make_source(path, seconds, noise)
        frames = source_frames(path)
        throughput(len(frames) / FPS, rounds, path, frames)
        latency(frames)


if __name__ == "__main__":
    main()

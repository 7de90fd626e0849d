"""Interop with a real, independent RTP implementation: FFmpeg's libavformat
(through PyAV), over UDP on 127.0.0.1.

* FFmpeg's RTP muxer packetizes libvpx VP8 and libx264 H.264 frames and
  sends them, with an RTCP SR and SDES, to our sockets; we parse, reassemble
  and get exactly the encoder's frames.
* We packetize and send; FFmpeg's RTP demuxer (opened from an SDP) hands
  back exactly the frames we sent.
"""

from __future__ import annotations

import fractions
import socket
import threading

import pytest

import av
import numpy as np

from netcore.rtp.h264 import (  # noqa: E402
    H264Packetizer,
    h264_depacketize,
    h264_frame_is_keyframe,
    split_annexb,
)
from netcore.rtp.opus import opus_duration  # noqa: E402
from netcore.rtp.packet import RtpPacket  # noqa: E402
from netcore.rtp.rtcp import SenderReport, Sdes, parse_rtcp  # noqa: E402
from netcore.rtp.vp8 import Vp8Packetizer, vp8_depacketize, vp8_is_keyframe  # noqa: E402
from tests.rtp.media import ENCODERS, encode, picture  # noqa: E402

W, H, FRAMES = 320, 240, 12


def _udp_pair() -> tuple[socket.socket, socket.socket]:
    """Sockets on an even port and the next one (RTP and RTCP, RFC 3550 11)."""
    for _ in range(100):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                rtcp.close()
            else:
                for s in (rtp, rtcp):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                return rtp, rtcp
        rtp.close()
    raise RuntimeError("no free even/odd UDP port pair on loopback")


def _drain(sock: socket.socket, idle: float = 0.5) -> list[bytes]:
    """Datagrams until the peer has gone quiet (the muxer has closed)."""
    sock.settimeout(idle)
    out = []
    try:
        while True:
            out.append(sock.recv(65536))
    except socket.timeout:
        return out


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_ffmpeg_sends_we_reassemble(codec):
    encoder_name, options = ENCODERS[codec]
    rtp_sock, rtcp_sock = _udp_pair()
    port = rtp_sock.getsockname()[1]
    with rtp_sock, rtcp_sock:
        # Small packets, so frames span several (FU-A for H.264).
        url = f"rtp://127.0.0.1:{port}?pkt_size=600"
        out = av.open(url, "w", format="rtp", options={"cname": "ffmpeg@peer"})
        stream = out.add_stream(encoder_name, rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = options
        encoded = []
        for i in range(FRAMES):
            for packet in stream.encode(picture(i, W, H)):
                encoded.append(bytes(packet))
                out.mux(packet)
        for packet in stream.encode(None):
            encoded.append(bytes(packet))
            out.mux(packet)
        out.close()  # everything is sent once close() returns
        packets = [RtpPacket.parse(d) for d in _drain(rtp_sock)]
        rtcp = [parse_rtcp(d, reduced_size=False) for d in _drain(rtcp_sock, 0.1)]

    assert len(encoded) == FRAMES
    assert len({p.ssrc for p in packets}) == 1
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))  # nothing lost
    frames: list[list[RtpPacket]] = [[]]
    for p in packets:
        frames[-1].append(p)
        if p.marker:
            frames.append([])
    frames.pop()  # the empty list after the last marker
    assert len(frames) == FRAMES
    assert all(len({p.timestamp for p in f}) == 1 for f in frames)
    assert max(len(f) for f in frames) > 1 and max(len(d.data) for f in frames for d in f) <= 600
    payloads = [[p.payload for p in f] for f in frames]
    if codec == "VP8":
        assert [vp8_depacketize(f) for f in payloads] == encoded
        assert [vp8_is_keyframe(f[0]) for f in payloads] == [True] + [False] * (FRAMES - 1)
    else:
        assert [split_annexb(h264_depacketize(f)) for f in payloads] == [split_annexb(e) for e in encoded]
        assert [h264_frame_is_keyframe(f) for f in payloads] == [True] + [False] * (FRAMES - 1)
        types = {p[0] & 0x1F for f in payloads for p in f}
        assert 28 in types  # FFmpeg used FU-A

    # FFmpeg's RTCP: a valid compound SR + SDES with its CNAME.
    assert rtcp, "FFmpeg sends an SR at the start"
    sr, sdes = rtcp[0][:2]
    assert isinstance(sr, SenderReport) and sr.ssrc == packets[0].ssrc
    assert isinstance(sdes, Sdes) and sdes.chunks[0].cname == b"ffmpeg@peer"
    # FFmpeg derives the SR's RTP timestamp from its clock at sending time:
    # close to the first packet's, not equal.
    assert (sr.rtp_timestamp - packets[0].timestamp) & 0xFFFFFFFF < 90000 // 2


def _ends_with(received: list[bytes], norm, expected: list) -> bool:
    """``expected`` is the tail of ``received``, or the tail but one (the
    frame sent after the stream to flush FFmpeg's parser)."""
    n = len(expected)
    return [norm(r) for r in received[-n:]] == expected or (
        [norm(r) for r in received[-n - 1 : -1]] == expected
    )


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_we_send_ffmpeg_reassembles(tmp_path, codec):
    frames = encode(codec, FRAMES, W, H)
    rtp_sock, rtcp_sock = _udp_pair()
    port = rtp_sock.getsockname()[1]
    rtp_sock.close()  # FFmpeg binds these two ports itself
    rtcp_sock.close()
    fmtp = "a=fmtp:96 packetization-mode=1\n" if codec == "H264" else ""
    sdp = tmp_path / "stream.sdp"
    sdp.write_text(
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=netcore\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=video {port} RTP/AVP 96\na=rtpmap:96 {codec}/90000\n{fmtp}"
    )

    # RTP packets: frame 0 (a key frame) repeated as a probe until FFmpeg
    # has bound its socket and output it, then the whole stream.
    packetize = (
        Vp8Packetizer(400).packetize
        if codec == "VP8"
        else lambda f: H264Packetizer(400).packetize(split_annexb(f))
    )
    seq = 0

    def packets_of(frame: bytes, index: int) -> list[bytes]:
        nonlocal seq
        payloads = packetize(frame)
        out = []
        for j, payload in enumerate(payloads):
            out.append(
                RtpPacket.build(
                    payload_type=96, sequence_number=seq, timestamp=index * 3000, ssrc=0xC0FFEE,
                    payload=payload, marker=j == len(payloads) - 1,
                ).serialize()
            )
            seq += 1
        return out

    norm = (lambda b: b) if codec == "VP8" else split_annexb
    expected = [norm(f) for f in frames]
    received: list[bytes] = []
    first = threading.Event()
    done = threading.Event()
    failure: list[BaseException] = []

    def receive() -> None:
        try:
            container = av.open(
                str(sdp), format="sdp",
                options={"protocol_whitelist": "file,udp,rtp", "timeout": "3000000"},
            )
            with container:
                for packet in container.demux(video=0):
                    if packet.size:
                        received.append(bytes(packet))
                        first.set()
                    if _ends_with(received, norm, expected):
                        break
        except BaseException as exc:  # reported to the test thread
            failure.append(exc)
        finally:
            first.set()
            done.set()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tx:
        index = 0
        for _ in range(200):  # probe until FFmpeg hands back a frame
            for d in packets_of(frames[0], index):
                tx.sendto(d, ("127.0.0.1", port))
            index += 1
            if first.wait(0.05):
                break
        assert first.is_set() and not failure, failure
        for _ in range(5):  # UDP may drop on a loaded machine: send again
            # The stream itself, continuing sequence numbers and timestamps.
            for frame in frames:
                for d in packets_of(frame, index):
                    tx.sendto(d, ("127.0.0.1", port))
                index += 1
            # FFmpeg's H.264 parser holds a frame until the next one starts:
            # keep sending one more until the receiver has them all.
            for _ in range(40):
                if done.wait(0.05):
                    break
                for d in packets_of(frames[0], index):
                    tx.sendto(d, ("127.0.0.1", port))
                index += 1
            if done.is_set():
                break
        assert done.is_set(), "FFmpeg did not hand back every frame"
    assert not failure, failure
    assert _ends_with(received, norm, expected)


@pytest.mark.parametrize("frame_ms", [10, 20, 60])
def test_ffmpeg_opus_durations_match_rtp_timestamps(frame_ms):
    """RFC 7587: the 48 kHz RTP clock advances by each packet's duration,
    which we read from the Opus TOC byte (RFC 6716 3.1) of libopus output."""
    rtp_sock, rtcp_sock = _udp_pair()
    port = rtp_sock.getsockname()[1]
    samples = 48 * frame_ms
    with rtp_sock, rtcp_sock:
        out = av.open(f"rtp://127.0.0.1:{port}", "w", format="rtp")
        stream = out.add_stream("libopus", rate=48000)
        stream.options = {"frame_duration": str(frame_ms)}
        tone = (np.sin(np.arange(samples * 2) / 7) * 8000).astype(np.int16).reshape(1, -1)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="stereo")
            frame.sample_rate = 48000
            frame.pts = i * samples
            frame.time_base = fractions.Fraction(1, 48000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        out.close()
        packets = [RtpPacket.parse(d) for d in _drain(rtp_sock)]
    assert len(packets) >= 8
    durations = [opus_duration(p.payload) for p in packets]
    assert set(durations) == {samples}
    steps = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(packets, packets[1:])]
    assert steps == durations[:-1]

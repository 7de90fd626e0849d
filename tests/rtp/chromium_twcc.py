"""Capture Chromium's transport-wide congestion control feedback (test helper).

aiortc carries the call (DTLS, SRTP, ICE between two relayed candidates of
coturn on 127.0.0.1, since Chromium gathers no loopback host candidate where
another interface exists) to a headless Chromium page that receives one video stream.  The offer Chromium
sees also negotiates the transport-wide sequence number extension
(draft-holmer-rmcat-transport-wide-cc-extensions-01); aiortc itself does
not write it, so the RTP packets are ours, built with
:class:`netcore.rtp.packet.RtpPacket` and handed to aiortc's SRTP transport,
and Chromium's RTCP is read as aiortc decrypts it.  The schedule of sends
(gaps, losses, reordering) gives Chromium's encoder runs, one-bit and
two-bit vectors and large deltas to write.

``python3 -m tests.rtp.chromium_twcc FILE`` writes fresh vectors.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiortc import (
    RTCConfiguration,
    RTCIceTransportPolicy,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from netcore.rtp.extensions import URI_MID, URI_TRANSPORT_CC
from netcore.rtp.packet import RtpPacket
from netcore.rtp.rtcp import parse_rtcp
from netcore.rtp.rtcp_header import RTPFB
from tests.conftest import require_program
from tests.peers import coturn
from tests.sdp.chromium import Browser, Page

TWCC_FMT = 15


@dataclass(frozen=True)
class Send:
    """Send transport-wide number ``seq`` after waiting ``wait`` seconds."""

    seq: int
    wait: float = 0.0


def schedule() -> list[Send]:
    """Runs of arrivals, losses, alternation, long gaps and reordering."""
    out: list[Send] = []
    seq = 1

    def run(count: int, wait: float, step: int = 1) -> None:
        nonlocal seq
        for _ in range(count):
            out.append(Send(seq, wait))
            seq += step

    run(30, 0.004)  # a run of small deltas
    seq += 25  # a run of losses
    run(20, 0.003, step=2)  # every other one lost: one-bit vectors
    run(1, 0.09)  # a gap of more than 64 ms: a large delta
    run(5, 0.002)
    # Reordered pairs: the later number first, so the earlier one's delta is negative.
    for _ in range(4):
        out.append(Send(seq + 1, 0.005))
        out.append(Send(seq, 0.0))
        seq += 2
    run(3, 0.12)  # large deltas in a row
    seq += 3
    run(40, 0.002)
    run(1, 0.01)
    seq += 1
    run(1, 0.3)  # alone after losses and a long gap
    return out


class _Silent(MediaStreamTrack):
    """A video track that never yields a frame: the RTP comes from the test."""

    kind = "video"

    async def recv(self):  # noqa: ANN201
        await asyncio.Future()


_PAGE = """
(async () => {
  const pc = new RTCPeerConnection({iceTransportPolicy: 'relay',
    iceServers: [{urls: 'turn:127.0.0.1:%d', username: 'test', credential: 'test'}]});
  window.pc = pc;
  await pc.setRemoteDescription({type: 'offer', sdp: %s});
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  if (pc.iceGatheringState !== 'complete') {
    await new Promise(r => pc.addEventListener('icegatheringstatechange',
      () => pc.iceGatheringState === 'complete' && r()));
  }
  return pc.localDescription.sdp;
})()
"""


def _negotiate_transport_cc(offer: str) -> tuple[str, int, int, str, int, int]:
    """The offer with the extension and ``transport-cc`` feedback added.

    Returns it with the extension's id, the VP8 payload type, the mid, the
    mid extension's id and the SSRC aiortc announced.
    """
    ids = [int(i) for i in re.findall(r"^a=extmap:(\d+)", offer, re.M)]
    ext_id = max(ids, default=0) + 1
    pt = int(re.search(r"^a=rtpmap:(\d+) VP8/90000", offer, re.M).group(1))
    mid = re.search(r"^a=mid:(\S+)", offer, re.M).group(1)
    mid_id = int(re.search(rf"^a=extmap:(\d+) {re.escape(URI_MID)}", offer, re.M).group(1))
    ssrc = int(re.search(r"^a=ssrc:(\d+) ", offer, re.M).group(1))
    lines = offer.split("\r\n")
    last_extmap = max(i for i, line in enumerate(lines) if line.startswith("a=extmap:"))
    lines.insert(last_extmap + 1, f"a=extmap:{ext_id} {URI_TRANSPORT_CC}")
    rtpmap = lines.index(next(line for line in lines if line.startswith(f"a=rtpmap:{pt} ")))
    lines.insert(rtpmap + 1, f"a=rtcp-fb:{pt} transport-cc")
    return "\r\n".join(lines), ext_id, pt, mid, mid_id, ssrc


def _loopback_only(sdp: str) -> str:
    """Drop candidates that are not on 127.0.0.1: traffic stays on loopback."""
    keep = [
        line for line in sdp.split("\r\n")
        if not line.startswith("a=candidate:") or " 127.0.0.1 " in line
    ]
    return "\r\n".join(keep)


def split_compound(data: bytes) -> list[bytes]:
    """The sub-packets of a compound RTCP packet, as raw bytes."""
    out = []
    pos = 0
    while pos + 4 <= len(data):
        end = pos + 4 + 4 * int.from_bytes(data[pos + 2 : pos + 4], "big")
        out.append(data[pos:end])
        pos = end
    return out


def is_twcc(packet: bytes) -> bool:
    return len(packet) >= 4 and packet[1] == RTPFB and packet[0] & 0x1F == TWCC_FMT


async def capture(workdir: Path, sends: list[Send], timeout: float = 10.0) -> list[bytes]:
    """Send ``sends`` to a Chromium receiver; its transport-wide feedback packets,
    up to the one that reports the highest number sent."""
    chromium = require_program("chromium")
    feedback: list[bytes] = []
    with coturn(workdir, "--allow-loopback-peers") as turn_port:
        browser = Browser(chromium)
        pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[RTCIceServer(f"turn:127.0.0.1:{turn_port}", "test", "test")],
                iceTransportPolicy=RTCIceTransportPolicy.RELAY,
            )
        )
        try:
            async with Page(browser) as page:
                pc.addTransceiver(_Silent(), direction="sendonly")
                await pc.setLocalDescription(await pc.createOffer())
                offer, ext_id, pt, mid, mid_id, ssrc = _negotiate_transport_cc(pc.localDescription.sdp)
                answer = await asyncio.wait_for(page.eval(_PAGE % (turn_port, json.dumps(offer))), 30)
                connected = asyncio.Event()

                @pc.on("connectionstatechange")
                def _state() -> None:
                    if pc.connectionState == "connected":
                        connected.set()

                await pc.setRemoteDescription(RTCSessionDescription(_loopback_only(answer), "answer"))
                await asyncio.wait_for(connected.wait(), 30)
                dtls = pc.getTransceivers()[0].sender.transport
                handle_rtcp = dtls._handle_rtcp_data  # aiortc hands decrypted RTCP here

                last = max(send.seq for send in sends)
                reported_last = asyncio.Event()

                async def tap(data: bytes) -> None:
                    for packet in filter(is_twcc, split_compound(data)):
                        feedback.append(packet)
                        if any(seq == last for seq, _ in parse_rtcp(packet)[0].arrivals()):
                            reported_last.set()
                    await handle_rtcp(data)

                dtls._handle_rtcp_data = tap
                await _send_all(dtls, sends, ext_id, pt, mid.encode(), mid_id, ssrc)
                await asyncio.wait_for(reported_last.wait(), timeout)
        finally:
            await pc.close()
            browser.close()
    return feedback


async def _send_all(dtls, sends: list[Send], ext_id: int, pt: int, mid: bytes, mid_id: int, ssrc: int) -> None:
    # A VP8 payload descriptor (RFC 7741 section 4.2) starting each packet:
    # Chromium reports arrivals before it decodes anything.
    for rtp_seq, send in enumerate(sends):
        if send.wait:
            await asyncio.sleep(send.wait)
        packet = RtpPacket.build(
            payload_type=pt,
            sequence_number=1000 + rtp_seq,
            timestamp=90 * rtp_seq,
            ssrc=ssrc,
            payload=b"\x10" + bytes(100),
            extensions=[(mid_id, mid), (ext_id, send.seq.to_bytes(2, "big"))],
        )
        await dtls._send_rtp(packet.serialize())


def main(path: str) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        packets = asyncio.run(capture(Path(workdir), schedule()))
    vectors = []
    for raw in packets:
        (fb,) = parse_rtcp(raw)
        vectors.append({"hex": raw.hex(), "arrivals": fb.arrivals()})
    version = os.popen("chromium --version").read().strip()
    Path(path).write_text(json.dumps({"source": version, "feedback": vectors}, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

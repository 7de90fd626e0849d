"""``get_stats()``: the W3C WebRTC statistics (webrtc-stats) read from the transport, senders and receivers.

One dict per stats object, keyed by its id, with the W3C ``type`` and field
names, so that code written against a browser's ``RTCStatsReport`` reads
ours: ``outbound-rtp`` per sending SSRC, ``inbound-rtp`` per receiving one,
``remote-inbound-rtp`` from the report blocks the peer sent about our SSRCs
(its RRs and SRs), ``candidate-pair`` for the selected pair and
``transport``. Times are seconds (``currentRoundTripTime``, ``jitter``), as
in the specification; ``timestamp`` is in milliseconds of the loop's clock.
"""

from __future__ import annotations

from typing import Any

from netcore.peer import events as peer_events
from netcore.rtp.rtcp import ReceiverReport, SenderReport

__all__ = ["StatsCollector"]


class StatsCollector:
    """Remembers what only passes by as events (report blocks, the selected pair) and builds the report."""

    def __init__(self) -> None:
        self._blocks: dict[int, tuple[Any, float]] = {}  # our SSRC -> (latest ReportBlock, when)
        self._pair: Any = None

    def rtcp_received(self, packets: list, now: float) -> None:
        for packet in packets:
            if isinstance(packet, (SenderReport, ReceiverReport)):
                for block in packet.reports:
                    self._blocks[block.ssrc] = (block, now)

    def path_changed(self, event: peer_events.PathChanged) -> None:
        self._pair = event.pair

    def report(self, transport, senders: dict, receivers: dict, now: float) -> dict[str, dict[str, Any]]:
        stamp = now * 1000.0
        out: dict[str, dict[str, Any]] = {}
        if transport is None:
            return out
        rtt = _rtt(transport)
        pair = self._pair
        pair_id = "CP-selected"
        out["T01"] = {"id": "T01", "type": "transport", "timestamp": stamp,
                      "dtlsState": _dtls_state(transport.state.value),
                      "selectedCandidatePairId": pair_id if pair is not None else None,
                      "rtcpPacketsReceived": transport.stats.rtcp_received,
                      "rtcpPacketsSent": transport.stats.rtcp_sent}
        if pair is not None:
            out[pair_id] = {
                "id": pair_id, "type": "candidate-pair", "timestamp": stamp, "transportId": "T01",
                "state": _pair_state(pair), "nominated": bool(pair.nominated),
                "currentRoundTripTime": pair.rtt if pair.rtt is not None else rtt,
                "availableOutgoingBitrate": transport.target_bitrate,
                "localCandidateId": f"{pair.local.address[0]}:{pair.local.address[1]}",
                "remoteCandidateId": f"{pair.remote.address[0]}:{pair.remote.address[1]}",
            }
        for ssrc, sender in senders.items():
            stream = transport.sender.streams.get(ssrc)
            reporter = stream.reporter if stream is not None else None
            out[f"OT{ssrc}"] = {
                "id": f"OT{ssrc}", "type": "outbound-rtp", "timestamp": stamp, "ssrc": ssrc, "kind": sender.kind,
                "mid": sender.mid, "transportId": "T01",
                "packetsSent": stream.packets_sent if stream is not None else 0,
                "bytesSent": reporter.octet_count if reporter is not None else 0,
                "framesEncoded": sender.frames_encoded, "targetBitrate": sender.target_bitrate,
            }
            if stream is not None and stream.rid is not None:
                out[f"OT{ssrc}"]["rid"] = stream.rid  # a simulcast layer (W3C RTCOutboundRtpStreamStats.rid)
            if ssrc in self._blocks:
                block, _ = self._blocks[ssrc]
                out[f"RI{ssrc}"] = {
                    "id": f"RI{ssrc}", "type": "remote-inbound-rtp", "timestamp": stamp, "ssrc": ssrc,
                    "kind": sender.kind, "localId": f"OT{ssrc}", "packetsLost": block.packets_lost,
                    "fractionLost": block.fraction_lost / 256.0,
                    "jitter": block.jitter / _clock(sender.kind), "roundTripTime": rtt,
                }
        for mid, receiver in receivers.items():
            ssrc = receiver.ssrc
            if ssrc is None:
                continue
            statistics = transport._reporter.statistics(ssrc)
            received = statistics.received if statistics is not None else 0
            lost = 0
            if statistics is not None and statistics.validated:
                expected = statistics.extended_highest_sequence - statistics.base_seq + 1
                lost = max(0, expected - received)
            entry = {
                "id": f"IT{ssrc}", "type": "inbound-rtp", "timestamp": stamp, "ssrc": ssrc,
                "kind": receiver.track.kind, "mid": mid, "transportId": "T01",
                "packetsReceived": received, "bytesReceived": receiver.bytes_received,
                "packetsLost": lost,
                "jitter": (statistics._jitter / receiver.clock_rate) if statistics is not None else 0.0,
                "jitterBufferTargetDelay": receiver.jitter.metrics.target_delay,
                "jitterBufferDelay": receiver.jitter.metrics.delay_total,
                "jitterBufferEmittedCount": receiver.jitter.metrics.frames_popped,
            }
            if receiver.track.kind == "video":
                entry["framesDecoded"] = receiver.frames_decoded
            else:
                entry["totalSamplesReceived"] = receiver.frames_decoded * 960
            out[entry["id"]] = entry
        return out


def _clock(kind: str) -> float:
    return 48_000.0 if kind == "audio" else 90_000.0


def _rtt(transport) -> float | None:
    rtts = [r.rtt for r in transport._reporters() if r.rtt is not None]
    return min(rtts) if rtts else None


def _pair_state(pair) -> str:
    value = getattr(pair.state, "value", str(pair.state))
    return str(value).lower()


def _dtls_state(transport_state: str) -> str:
    return {"connected": "connected", "failed": "failed", "closed": "closed",
            "handshaking": "connecting"}.get(transport_state, "new")

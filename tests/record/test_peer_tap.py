"""The peer connection's receive taps feed the recorder: every packet and sender report is journalled."""

from __future__ import annotations

import asyncio

from netcore.record.reader import read_room
from tests.record.calls import recorded_call


def test_every_packet_and_sender_report_a_peer_receives_is_journalled(tmp_path):
    call = asyncio.run(recorded_call(tmp_path, 3.0))
    assert call.rtp_seen > 20 and call.sender_reports_seen >= 1
    room = read_room(tmp_path)
    alice = [t for t in room.manifest.tracks if t.participant == "alice"]
    assert sorted(t.kind for t in alice) == ["audio", "video"]
    assert {t.codec.name.upper() for t in alice} == {"VP8", "OPUS"}
    assert sum(len(room.tracks[t.track_id].packets) for t in alice) == call.rtp_seen
    assert sum(len(room.tracks[t.track_id].reports) for t in alice) == call.sender_reports_seen
    assert all(not r.torn_tail and r.damaged == 0 for r in room.tracks.values())
    assert room.manifest.participant("bob").left_at == call.ended

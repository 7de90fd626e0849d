"""A 1-to-1 call between two of our PeerConnections on 127.0.0.1, recorded on both receiving sides."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone
from netcore.peer.connection import ConnectionState, PeerConnection
from netcore.peer.tracks import LocalAudioTrack, LocalVideoTrack
from netcore.record.logger import RoomLogger
from netcore.record.peertap import PeerRecorder
from netcore.record.writer import DirectoryStorage


@dataclass
class RecordedCall:
    directory: Path
    started: float = 0.0  # loop time the recording started
    media_started: float = 0.0  # both connected: the senders start
    ended: float = 0.0
    rtp_seen: int = 0
    sender_reports_seen: int = 0
    logger: RoomLogger | None = None
    recorders: list = field(default_factory=list)


async def recorded_call(directory: Path, seconds: float, *, width: int = 320, height: int = 240,
                        fps: float = 30.0) -> RecordedCall:
    loop = asyncio.get_running_loop()
    out = RecordedCall(Path(directory))
    alice, bob = PeerConnection(), PeerConnection()
    local_tracks = []
    for me, other in ((alice, bob), (bob, alice)):
        me.on("icecandidate", lambda c, other=other: loop.create_task(other.add_ice_candidate(c)))
        local_tracks.append(LocalVideoTrack(SyntheticCamera(width, height, fps, flash=True),
                                            count=int(seconds * fps)))
        local_tracks.append(LocalAudioTrack(SyntheticMicrophone(), count=int(seconds * 50)))
        me.add_track(local_tracks[-2])
        me.add_track(local_tracks[-1])
    out.started = loop.time()
    logger = out.logger = RoomLogger("call", DirectoryStorage(directory), now=out.started,
                                     wallclock_offset=time.time() - out.started)
    # What bob receives is alice's media, and the other way round.
    out.recorders = [PeerRecorder(bob, logger, "alice", out.started), PeerRecorder(alice, logger, "bob", out.started)]

    def count_rtp(mid, packet, now):
        out.rtp_seen += 1

    def count_rtcp(packets, now):
        out.sender_reports_seen += sum(type(p).__name__ == "SenderReport" for p in packets)

    bob.on("rtpreceived", count_rtp)
    bob.on("rtcpreceived", count_rtcp)
    connected = asyncio.Event()
    alice.on("connectionstatechange",
             lambda: connected.set() if alice.connection_state is ConnectionState.CONNECTED else None)
    await alice.set_local_description(alice.create_offer())
    await bob.set_remote_description(alice.local_description)
    await bob.set_local_description(bob.create_answer())
    await alice.set_remote_description(bob.local_description)
    await asyncio.wait_for(connected.wait(), 10)
    out.media_started = loop.time()
    await asyncio.sleep(seconds)
    # A sender starved of CPU falls behind its frame schedule: wait until every frame is sent.
    deadline = loop.time() + 3 * seconds
    while not all(t.ended for t in local_tracks) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    out.ended = loop.time()
    for recorder in out.recorders:
        recorder.leave(out.ended)
    logger.close(out.ended)
    await alice.close()
    await bob.close()
    return out

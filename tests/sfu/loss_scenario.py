"""The 5 %-loss scenario of tests/sfu/test_loss_daemon.py, run inside the network namespace that test makes.

``python -m tests.sfu.loss_scenario DIR``: netcore-signal and netcore-sfu,
a publisher (320x240 VP8 at 15 frames/s with noise) and two receive-only
subscribers, all our PeerConnections in this process; once the lossy
subscriber's port is known, an nftables rule in the input hook drops 5 %
of what the call server sends it at random (this namespace's own table:
no netem in this kernel). Prints one JSON line of what the test checks.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

from netcore.media.synthetic import SyntheticCamera
from netcore.peer.connection import Description, PeerConnection
from tests.sfu.live import metrics, offer_to_call_server, signal_and_sfu, users_in_a_room
from tests.sfu.test_simulcast_daemon import CountingTrack, Subscriber, noisy_frames, until

FPS = 15
LOSS = 5  # per cent
SECONDS = 20


def host_port(sdp: str) -> int:
    return int(re.search(r"a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ host", sdp).group(1))


def lossy_rule(server_port: int, client_port: int) -> str:
    return ("table inet sfuloss {\n chain inp {\n  type filter hook input priority 0; policy accept;\n"
            f"  udp sport {server_port} udp dport {client_port} numgen random mod 100 < {LOSS} counter drop\n"
            " }\n}\n")


def dropped_by_rule() -> int:
    listing = subprocess.run(["nft", "list", "table", "inet", "sfuloss"], capture_output=True, text=True).stdout
    found = re.search(r"counter packets (\d+)", listing)
    return int(found.group(1)) if found else 0


def shown(subscriber: Subscriber, track: CountingTrack, start: int) -> float:
    """Of the frames the publisher encoded from its ``start``-th on, the share the subscriber decoded."""
    encoded = set(track.encoded[start:])
    decoded = {n for n, _ in subscriber.frames if n in encoded}
    return len(decoded) / max(1, len(encoded))


async def scenario(directory: Path) -> dict:
    async with signal_and_sfu(directory) as env:
        room_id, clients = await users_in_a_room(env["signal_port"], ["ls_pub", "ls_clean", "ls_lossy"])
        await clients[0].expect("room.topology", timeout=5)
        publisher = PeerConnection()
        track = CountingTrack(noisy_frames(SyntheticCamera(320, 240, fps=FPS)), fps=FPS, count=FPS * 120)
        publisher.add_transceiver(track, "sendonly")
        clean, lossy = Subscriber(), Subscriber()
        try:
            await publisher.set_local_description(publisher.create_offer())
            answer = await offer_to_call_server(clients[0], room_id, publisher.local_description.sdp)
            await publisher.set_remote_description(Description(answer["sdp"], "answer"))
            await clean.join(clients[1], room_id, env["sfu_media"])
            await lossy.join(clients[2], room_id, env["sfu_media"])
            rule = lossy_rule(env["sfu_media"], host_port(lossy.pc.local_description.sdp))
            subprocess.run(["nft", "-f", "-"], input=rule, text=True, check=True)
            assert await until(lambda: len(clean.frames) > FPS and len(lossy.frames) > FPS, 30)
            start = len(track.encoded)
            await asyncio.sleep(SECONDS)
            figures = await asyncio.to_thread(metrics, env["sfu_http"])

            def of(name: str, client) -> float:
                return next(v for k, v in figures.items() if k.startswith(name + "{") and client.session_id in k)

            return {
                "dropped_by_rule": dropped_by_rule(),
                "encoded": len(track.encoded) - start,
                "shown": {"clean": shown(clean, track, start), "lossy": shown(lossy, track, start)},
                "in_order": {name: [n for n, _ in s.frames if n is not None] == sorted(
                    n for n, _ in s.frames if n is not None) for name, s in (("clean", clean), ("lossy", lossy))},
                "nacks_sent": {"clean": clean.pc.transport.stats.nacks_sent,
                               "lossy": lossy.pc.transport.stats.nacks_sent},
                "recovered": {"lossy": lossy.pc.transport.receiver.recovered},  # NACKed packets that came back
                "publisher_nacks_received": publisher.transport.stats.nacks_received,
                "server": {
                    "retransmitted": {"clean": of("sfu_subscriber_retransmissions_total", clients[1]),
                                      "lossy": of("sfu_subscriber_retransmissions_total", clients[2])},
                    "nacked": {"clean": of("sfu_subscriber_nacked_packets_total", clients[1]),
                               "lossy": of("sfu_subscriber_nacked_packets_total", clients[2])},
                    "asked_publisher": of("sfu_publisher_nacked_packets_total", clients[0]),
                },
            }
        finally:
            for pc in (publisher, clean.pc, lossy.pc):
                await pc.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(scenario(Path(sys.argv[1])))), flush=True)

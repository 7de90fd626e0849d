"""Call a friend who is logged in on the web page: our synthetic camera and microphone go out, frames come back.

Usage: python3 examples/call_the_page.py ws://127.0.0.1:8080 alice PASSWORD bob [SECONDS]
(docs/peer.md walks through it; ``netcore-call`` is the full client.)
"""
import asyncio, sys
from collections import Counter
from netcore.media.synthetic import SyntheticCamera, SyntheticMicrophone
from netcore.peer.connection import PeerConfiguration, PeerConnection
from netcore.peer.tracks import LocalAudioTrack, LocalVideoTrack
from servers.call.session import call_link
from servers.signal.client import SignalingClient, ice_servers

async def main(server: str, user: str, password: str, friend: str, seconds: float = 10) -> None:
    client = await SignalingClient.connect(server)
    stun, turn = ice_servers((await client.login(user, password)).ice_servers)
    pc = PeerConnection(PeerConfiguration(stun_servers=stun, turn_servers=turn))
    pc.add_track(LocalVideoTrack(SyntheticCamera(640, 480)))
    pc.add_track(LocalAudioTrack(SyntheticMicrophone()))
    decoded: Counter[str] = Counter()                     # frames decoded per kind
    pc.on("track", lambda track: track.on_frame(lambda frame: decoded.update([track.kind])))
    call_id = await client.invite(friend, ["audio", "video"])
    await client.wait_accepted(call_id)                   # the page's user pressed "accept"
    link = call_link(client, call_id, pc)                 # offer, answer and candidates over signaling
    await link.offer()
    end = asyncio.get_running_loop().time() + seconds
    while (left := end - asyncio.get_running_loop().time()) > 0:
        try:
            message = await client.receive(timeout=left)
        except asyncio.TimeoutError:
            continue                                      # the time is up: hang up below
        if message.type == "call.answer":
            await link.handle_description("answer", message.payload["sdp"])
        elif message.type == "call.candidate":
            await link.handle_candidate(message.payload.get("candidate") or {})
        elif message.type == "call.ended":
            break
    else:
        await client.hangup(call_id)                      # time up (a "call.ended" means the page hung up)
    print(f"decoded from {friend}: {decoded['video']} video frames, {decoded['audio']} audio frames")
    await link.close()
    await client.close()

if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], *map(float, sys.argv[5:6])))

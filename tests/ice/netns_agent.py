"""One ICE agent in its own network namespace, driven by tests/ice/test_netns.py over stdin/stdout.

It gathers, prints ``{"ufrag", "pwd", "candidates"}`` as one JSON line, reads the
peer's line, connects, exchanges a datagram each way on the selected pair and
prints ``{"local", "remote", "relayed", "echo"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from netcore.ice.agent import Agent, TurnServerConfig
from netcore.ice.aio import IceConnection
from netcore.sdp.candidate import Candidate


def address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--controlling", action="store_true")
    parser.add_argument("--ip", required=True)
    parser.add_argument("--server", type=address, required=True)
    args = parser.parse_args()
    received: asyncio.Queue = asyncio.Queue()
    agent = Agent(args.controlling, stun_servers=(args.server,),
                  turn_servers=(TurnServerConfig(args.server, "test", "test"),))
    conn = IceConnection(agent, on_data=lambda data, pair: received.put_nowait(data))
    await conn.bind([args.ip])
    await conn.gather()
    print(json.dumps({"ufrag": agent.local_ufrag, "pwd": agent.local_pwd,
                      "candidates": [str(c) for c in agent.local_candidates]}), flush=True)
    peer = json.loads(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    conn.call(agent.set_remote_credentials, peer["ufrag"], peer["pwd"])
    for line in peer["candidates"]:
        conn.call(agent.add_remote_candidate, Candidate.parse(line))
    conn.call(agent.add_remote_candidate, None)
    pair = await conn.connect(20)
    for _ in range(20):
        conn.send(b"\x80\x00hello")
        try:
            echo = await asyncio.wait_for(received.get(), 0.25)
            break
        except TimeoutError:
            continue
    else:
        echo = b""
    for _ in range(8):  # keep answering the peer for a moment
        conn.send(b"\x80\x00hello")
        await asyncio.sleep(0.1)
    print(json.dumps({"local": pair.local.type, "remote": pair.remote.type, "relayed": pair.relayed,
                      "echo": echo.decode("latin-1")}), flush=True)
    conn.close()


if __name__ == "__main__":
    asyncio.run(main())

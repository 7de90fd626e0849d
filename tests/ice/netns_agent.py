"""One ICE agent in its own network namespace, driven by tests/ice/test_netns.py over stdin/stdout.

It gathers, prints ``{"ufrag", "pwd", "candidates"}`` as one JSON line, reads the
peer's line, connects, exchanges a datagram each way on the selected pair and
prints ``{"local", "remote", "relayed", "echo"}``. Each side sends HELLO until
it has the peer's HELLO and an ACK of its own (a lost datagram is sent again
after 0.25 s), then keeps answering HELLOs with ACKs until the test writes a
line saying the peer is done too: no side waits a fixed time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from netcore.ice.agent import Agent, TurnServerConfig
from netcore.ice.aio import IceConnection
from netcore.sdp.candidate import Candidate


HELLO = b"\x80\x00hello"
ACK = b"\x80\x00ack"


def address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--controlling", action="store_true")
    parser.add_argument("--ip", required=True)
    parser.add_argument("--server", type=address, required=True)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    got_hello, acked = asyncio.Event(), asyncio.Event()
    agent = Agent(args.controlling, stun_servers=(args.server,),
                  turn_servers=(TurnServerConfig(args.server, "test", "test"),))

    def on_data(data: bytes, pair: object) -> None:
        if data == HELLO:
            got_hello.set()
            loop.call_soon(conn.send, ACK)  # not from inside the driver's own flush
        elif data == ACK:
            acked.set()

    conn = IceConnection(agent, on_data=on_data)
    await conn.bind([args.ip])
    await conn.gather()
    print(json.dumps({"ufrag": agent.local_ufrag, "pwd": agent.local_pwd,
                      "candidates": [str(c) for c in agent.local_candidates]}), flush=True)
    peer = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    conn.call(agent.set_remote_credentials, peer["ufrag"], peer["pwd"])
    for line in peer["candidates"]:
        conn.call(agent.add_remote_candidate, Candidate.parse(line))
    conn.call(agent.add_remote_candidate, None)
    pair = await conn.connect(20)
    both = asyncio.ensure_future(asyncio.gather(got_hello.wait(), acked.wait()))
    for _ in range(40):  # 10 s at most
        conn.send(HELLO)
        try:
            await asyncio.wait_for(asyncio.shield(both), 0.25)
            break
        except TimeoutError:
            continue
    echo = HELLO if got_hello.is_set() and acked.is_set() else b""
    print(json.dumps({"local": pair.local.type, "remote": pair.remote.type, "relayed": pair.relayed,
                      "echo": echo.decode("latin-1")}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the peer is done: nobody needs our ACKs
    both.cancel()
    conn.close()


if __name__ == "__main__":
    asyncio.run(main())

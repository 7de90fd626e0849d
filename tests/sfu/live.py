"""Real processes for the call server's end-to-end tests: netcore-signal, netcore-sfu, signaling clients."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

from tests.signal.helpers import Client, login, register

ROOT = str(Path(__file__).resolve().parents[2])
SECRET = "service-secret-for-tests"


async def _start(args: list[str], log: Path, env: dict[str, str] | None = None,
                 ready: bytes = b"listening") -> tuple[asyncio.subprocess.Process, bytes]:
    env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=open(log, "wb"), cwd=ROOT, env=env)
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(ready), (line, log.read_text())
    return proc, line


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.terminate()
        try:
            return await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode


async def start_signal(tmp_path: Path, threshold: int, call_server: str | None = "netcore-sfu",
                       settings: str = "") -> tuple:
    """netcore-signal taking rooms to a call server above ``threshold``, with more TOML ``settings``:
    (process, port)."""
    config = tmp_path / "signal.toml"
    configured = f'call_server = "{call_server}"\n' if call_server else ""
    config.write_text(f'service_secret = "{SECRET}"\n{configured}group_threshold = {threshold}\n'
                      f'friends_only = false\ntoken_secret = "t"\n{settings}')
    signal, line = await _start(["-m", "servers.signal.main", "--port", "0", "--data-dir", str(tmp_path / "data"),
                                 "--config", str(config)], tmp_path / "signal.log")
    return signal, int(line.split()[2])


async def start_sfu(tmp_path: Path, signal_port: int, name: str | None = None, *extra: str) -> dict:
    """netcore-sfu linked to netcore-signal (waits for the link), with ``extra`` flags: process, ports, log."""
    log = tmp_path / f"{name or 'sfu'}.log"
    named = ["--name", name] if name else []
    sfu, line = await _start(["-m", "servers.sfu.main", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                              "--signal", f"ws://127.0.0.1:{signal_port}/v1/service", "--service-secret", SECRET,
                              *named, *extra], log)
    fields = dict(f.split("=") for f in line.decode().split()[1:])
    http = int(fields["http"])
    for _ in range(100):
        if (await asyncio.to_thread(health, http)).get("signal_linked"):
            break
        await asyncio.sleep(0.1)
    return {"sfu": sfu, "sfu_http": http, "sfu_media": int(fields["media"]), "sfu_log": log,
            "sfu_transcode": int(fields["transcode"]) if "transcode" in fields else None}


@asynccontextmanager
async def signal_and_sfu(tmp_path: Path, threshold: int = 2, sfu_args: tuple[str, ...] = ()):
    """netcore-signal (rooms go to the call server above ``threshold``) and netcore-sfu linked to it
    (``sfu_args``: more of its flags)."""
    signal, port = await start_signal(tmp_path, threshold)
    sfu = None
    try:
        analytics = tmp_path / "sfu-analytics.jsonl"
        sfu = await start_sfu(tmp_path, port, None, "--analytics", str(analytics), "--node", "sfu-1", *sfu_args)
        yield {"signal_port": port, "signal": signal, **sfu, "sfu_analytics": analytics}
    finally:
        if sfu is not None:
            await stop(sfu["sfu"])
        await stop(signal)


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return {}


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def users_in_a_room(port: int, names: list[str]) -> tuple[str, list[Client]]:
    """Register and log in ``names``; the first creates a room, invites and the others join."""
    clients = []
    for name in names:
        await register(port, name)
        clients.append(await login(port, name))
    owner = clients[0]
    room_id = (await owner.ok("room.create", {}))["room_id"]
    for client in clients[1:]:
        await owner.ok("room.invite", {"room_id": room_id, "to": client.user})
        await client.expect("room.invited")
        await client.ok("room.join", {"room_id": room_id})
    return room_id, clients


async def offer_to_call_server(client: Client, room_id: str, sdp: str) -> dict:
    """``room.media`` with our offer; the call server's answer (``room.media`` with ``sdp`` and ``slots``)."""
    await client.ok("room.media", {"room_id": room_id, "sdp": sdp})
    answer = await client.expect("room.media", timeout=20)
    assert "sdp" in answer, answer
    return answer


async def current_slots(client: Client, slots: list[dict]) -> dict[str, dict]:
    """``slots`` updated by every ``room.slots`` pushed since (read for up to 0.3 s): mid -> slot."""
    try:
        while True:
            await client.expect("never", timeout=0.3)
    except asyncio.TimeoutError:
        pass
    for message in client.inbox:
        if message["type"] == "room.slots":
            slots = message["payload"]["slots"]
    return {s["mid"]: s for s in slots}

"""A recorded call-server room of three ``netcore-call`` processes (synthetic sources with sync marks), made
into files by ``netcore-record worker``; every participant hears of them, one at its next login."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from tests.call.conftest import Cli, make_users, password
from tests.record.media import Decoded, ffprobe
from tests.sfu.live import signal_and_sfu, stop
from tests.sfu.test_recording import p99, start_worker
from tests.signal.helpers import login

SECONDS = 12
FPS = 15
MEDIA = ("--size", "320x240", "--fps", str(FPS), "--sync-marks")


def test_three_netcore_call_participants_in_a_recorded_room(tmp_path):
    asyncio.run(_recorded(tmp_path))


async def _recorded(tmp_path: Path) -> None:
    root, out = tmp_path / "journals", tmp_path / "recordings"
    async with signal_and_sfu(tmp_path, threshold=4, sfu_args=("--record-dir", str(root))) as env:
        worker, _ = await start_worker(tmp_path, env["signal_port"], root, out, 30)
        try:
            url = f"ws://127.0.0.1:{env['signal_port']}"
            owner, guests = "clio", ["clib", "clic"]
            await make_users(url, owner, *guests)
            joined = [Cli(tmp_path, url, user, *MEDIA, "join", "invited", "--slots", "1",
                          "--duration", str(SECONDS), *(["--wait-recording", "120"] if user == "clib" else []))
                      for user in guests]
            for cli in joined:
                await asyncio.to_thread(cli.expect, "waiting for an invitation")
            invites = [arg for user in guests for arg in ("--invite", user)]
            host = Cli(tmp_path, url, owner, *MEDIA, "join", "new", *invites, "--record-room", "--slots", "1",
                       "--duration", str(SECONDS), "--wait-recording", "120")
            results = [await asyncio.to_thread(cli.finish, 180) for cli in (host, *joined)]
            for result in results:
                assert result.code == 0, result.stderr
            # clic left when its call ended, before the file was ready: it hears at its next login
            later = await login(env["signal_port"], "clic", password("clic"))
            late = await later.expect("recording.ready", timeout=60)
            await later.close()
        finally:
            await stop(worker)
    summaries = {r.summary["sessions"][0]["user"]: r.summary["sessions"][0] for r in results}
    ready = [summaries[u]["recordings"][0] for u in (owner, "clib")]
    assert ready[0] == ready[1] == late
    for user, session in summaries.items():
        assert session["call_server"] and not session["moves"]
        # one other participant seen through its one slot, in order; its own video sent
        seen = [link for link in session["links"] if link["received"]["video"]["frames"]]
        assert seen and all(link["connected"] and link["received"]["video"]["in_order"] for link in seen), session
        assert seen[0]["sent"]["video_frames"] > 0, (user, seen[0])
    files = {f["participant"]: f for f in late["files"]}
    sidecar = json.loads(Path(late["location"]).read_text())
    assert sorted(p["name"] for p in sidecar["participants"]) == sorted([owner, *guests])
    assert len(files) == 3
    for participant, f in files.items():
        probe = ffprobe(f["location"])
        assert sorted(s["codec_name"] for s in probe["streams"]) == ["opus", "vp8"]
        media = Decoded(f["location"])
        numbers = media.numbers
        assert numbers and None not in numbers and all(b > a for a, b in zip(numbers, numbers[1:]))
        start, end = float(probe["format"]["start_time"]), float(probe["format"]["duration"])
        # the file's timeline is the sender's: its span is the span of the frames' own numbers
        span = (numbers[-1] - numbers[0] + 1) / FPS
        assert abs((end - start) - span) <= 0.5, (participant, probe, span)
        assert end - start <= SECONDS + 0.5
        offsets = media.offsets()
        assert len(offsets) >= SECONDS - 4, (participant, offsets)
        print(f"{participant}: {end - start:.2f} s, frames {numbers[0]}..{numbers[-1]} ({len(numbers)}), "
              f"A/V offset p99 {p99(offsets) * 1000:.1f} ms, mean {np.mean(offsets) * 1000:.1f} ms, "
              f"spread {np.ptp(offsets) * 1000:.1f} ms")
        assert p99(offsets) <= 0.020, (participant, offsets)  # flash and click in step within 20 ms


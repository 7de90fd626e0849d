"""Recordings per user: recording.list from the recording.ready notifications, and the files served to who
took part only (someone else's: 404; a path out of recordings_dir: 404; Range: 206 with those bytes)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from servers.signal.credentials import issue_file_token
from servers.signal.recordings import MAX_CHUNK, MAX_WHOLE, parse_range

from .helpers import login, register

SECRET = "svc-secret"


def fetch(port: int, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    """One raw HTTP request (the path sent exactly as given, no client normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


async def get(port: int, path: str, headers: dict | None = None, method: str = "GET"):
    return await asyncio.to_thread(fetch, port, path, headers, method)


def media(directory: Path, name: str, size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    (directory / name).write_bytes(data)
    return str(directory / name), data


async def ready(port: int, payload: dict) -> None:
    """recording.ready from a recording worker's link, acknowledged."""
    async with connect(f"ws://127.0.0.1:{port}/v1/service?role=recorder",
                       additional_headers={"Authorization": f"Bearer {SECRET}"}) as recorder:
        await recorder.send(json.dumps({"v": 1, "type": "recording.ready", "id": "r1", "payload": payload}))
        assert json.loads(await recorder.recv())["type"] == "ack"


async def setting(start_server, tmp_path, names):
    rec = tmp_path / "recordings"
    rec.mkdir()
    server = await start_server(service_secret=SECRET, recordings_dir=str(rec))
    people = [names(p) for p in ("ann", "ben", "eve")]
    for user in people:
        await register(server.port, user)
    return server, rec, people


async def test_the_list_holds_a_users_recordings_newest_first_with_urls(start_server, tmp_path, names):
    server, rec, (ann, ben, eve) = await setting(start_server, tmp_path, names)
    a_loc, _ = media(rec, "r1-20260101T000000Z-s1.webm", 1000)
    b_loc, _ = media(rec, "r1-20260101T000000Z-s2.mkv", 1000)
    c_loc, _ = media(rec, "r1-20260101T000000Z-composite.webm", 1000)
    e_loc, _ = media(rec, "r2-20260102T000000Z-s3.webm", 1000)
    client = await login(server.port, ann)  # online: told at once; ben is away: at his next login
    await ready(server.port, {
        "room_id": "r1", "location": str(rec / "r1-20260101T000000Z.json"), "users": [ann, ben],
        "started": 1767225600.0, "duration": 12.5, "composite": {"name": Path(c_loc).name, "location": c_loc},
        "files": [{"participant": "s1", "user": ann, "name": Path(a_loc).name, "location": a_loc, "start": 0.0,
                   "end": 12.5, "tracks": [{"kind": "video", "codec": "VP8"}, {"kind": "audio", "codec": "opus"}]},
                  {"participant": "s2", "user": ben, "name": Path(b_loc).name, "location": b_loc, "start": 1.0,
                   "end": 12.0, "tracks": [{"kind": "video", "codec": "H264"}], "sha256": "ignored"}]})
    await ready(server.port, {"room_id": "r2", "location": str(rec / "r2.json"), "users": [eve, ann],
                              "started": 1767312000.0, "duration": 3.0,
                              "files": [{"participant": "s3", "name": Path(e_loc).name, "location": e_loc}]})
    assert (await client.expect("recording.ready", room_id="r1"))["duration"] == 12.5
    listed = (await client.ok("recording.list", {}))["recordings"]
    assert [r["room_id"] for r in listed] == ["r2", "r1"]  # newest first
    r1 = listed[1]
    assert (r1["started"], r1["duration"]) == (1767225600.0, 12.5)
    assert [(f["user"], f["start"], f["end"]) for f in r1["files"]] == [(ann, 0.0, 12.5), (ben, 1.0, 12.0)]
    assert r1["files"][0]["tracks"] == [{"kind": "video", "codec": "VP8"}, {"kind": "audio", "codec": "opus"}]
    assert "sha256" not in r1["files"][1]  # only the fields the list knows
    for f in (*r1["files"], r1["composite"]):
        assert f["url"].startswith(f"/v1/recordings/{f['name']}?access=")
    assert (await client.ok("recording.list", {"limit": 1}))["recordings"][0]["room_id"] == "r2"
    bad = await client.request("recording.list", {"limit": 0})
    assert bad["type"] == "error" and bad["payload"]["code"] == 400
    later = await login(server.port, ben)  # kept while ben was away
    assert [r["room_id"] for r in (await later.ok("recording.list", {}))["recordings"]] == ["r1"]
    other = await login(server.port, eve)
    assert [r["room_id"] for r in (await other.ok("recording.list", {}))["recordings"]] == ["r2"]
    for c in (client, later, other):
        await c.close()


async def test_files_go_to_who_took_part_with_range_and_nowhere_else(start_server, tmp_path, names):
    server, rec, (ann, ben, eve) = await setting(start_server, tmp_path, names)
    port = server.port
    mine, data = media(rec, "r1-s1.webm", 300_000)
    theirs, _ = media(rec, "r2-s2.mkv", 1000)
    outside, _ = media(tmp_path, "outside.webm", 1000)  # not in recordings_dir
    (rec / "sub").mkdir()
    os.symlink(outside, rec / "sub" / "link.webm")  # in it by name, outside once resolved
    sneaky = str(rec / "sub" / ".." / ".." / "outside.webm")
    await ready(port, {"room_id": "r1", "location": str(rec / "r1.json"), "users": [ann],
                       "files": [{"participant": "s1", "name": "r1-s1.webm", "location": mine},
                                 {"participant": "x", "name": "outside.webm", "location": outside},
                                 {"participant": "y", "name": "link.webm", "location": str(rec / "sub" / "link.webm")},
                                 {"participant": "z", "name": "dots.webm", "location": sneaky},
                                 {"participant": "w", "name": "../r2-s2.mkv", "location": theirs}]})
    await ready(port, {"room_id": "r2", "location": str(rec / "r2.json"), "users": [eve],
                       "files": [{"participant": "s2", "name": "r2-s2.mkv", "location": theirs}]})
    client = await login(port, ann)
    files = (await client.ok("recording.list", {}))["recordings"][0]["files"]
    assert [f["name"] for f in files] == ["r1-s1.webm", "outside.webm", "link.webm", "dots.webm"]  # no "../"
    url = files[0]["url"]
    assert [f["url"] for f in files[1:]] == [None, None, None]  # not under recordings_dir: no URL

    status, headers, body = await get(port, url)
    assert (status, headers["content-type"], headers["accept-ranges"], body) == (200, "video/webm", "bytes", data)
    status, headers, body = await get(port, url, {"Range": "bytes=1000-1999"})
    assert (status, headers["content-range"], body) == (206, f"bytes 1000-1999/{len(data)}", data[1000:2000])
    assert headers["content-length"] == "1000"
    status, headers, body = await get(port, url, {"Range": "bytes=299990-"})
    assert (status, headers["content-range"], body) == (206, f"bytes 299990-299999/{len(data)}", data[299990:])
    status, headers, body = await get(port, url, {"Range": "bytes=-5"})
    assert (status, body) == (206, data[-5:])
    status, headers, _ = await get(port, url, {"Range": f"bytes={len(data)}-"})
    assert (status, headers["content-range"]) == (416, f"bytes */{len(data)}")
    status, headers, body = await get(port, url, {"Range": "bytes=0-"}, method="HEAD")
    assert (status, headers["content-length"], body) == (206, str(len(data)), b"")
    bearer = {"Authorization": f"Bearer {client.token}"}
    assert (await get(port, "/v1/recordings/r1-s1.webm", bearer))[2] == data  # the session token works too

    # someone else's recording, with ann's token for her own file or her bearer token: 404
    access = url.split("access=")[1]
    assert (await get(port, f"/v1/recordings/r2-s2.mkv?access={access}"))[0] == 404
    assert (await get(port, "/v1/recordings/r2-s2.mkv", bearer))[0] == 404
    assert (await get(port, "/v1/recordings/r1-s1.webm"))[0] == 404  # no credentials
    assert (await get(port, "/v1/recordings/r1-s1.webm?access=" + access[:-2] + "xx"))[0] == 404  # forged
    expired = issue_file_token(b"test-secret", ann, "r1-s1.webm", int(time.time()) - 1)
    assert (await get(port, f"/v1/recordings/r1-s1.webm?access={expired}"))[0] == 404
    # out of the directory: listed for ann, still 404; and traversal in the request path
    for name in ("outside.webm", "link.webm", "dots.webm"):
        assert (await get(port, f"/v1/recordings/{name}", bearer))[0] == 404
    for path in ("/v1/recordings/../r2-s2.mkv", "/v1/recordings/..%2Fr2-s2.mkv", "/v1/recordings/%2e%2e/r2-s2.mkv",
                 "/v1/recordings/sub/link.webm", f"/v1/recordings/{Path(theirs)}",
                 "/v1/recordings/../../node0/signal.db"):
        assert (await get(port, path, bearer))[0] == 404, path
    await client.close()


async def test_no_recordings_dir_no_urls_and_no_files(start_server, tmp_path, names):
    server = await start_server(service_secret=SECRET)
    user = names("nod")
    await register(server.port, user)
    location, _ = media(tmp_path, "r-s1.webm", 100)
    await ready(server.port, {"room_id": "r", "location": "/x/r.json", "users": [user],
                              "files": [{"participant": "s1", "name": "r-s1.webm", "location": location}]})
    client = await login(server.port, user)
    listed = (await client.ok("recording.list", {}))["recordings"]
    assert listed[0]["files"][0]["url"] is None and listed[0]["duration"] is None  # an older worker's notice
    bearer = {"Authorization": f"Bearer {client.token}"}
    assert (await get(server.port, "/v1/recordings/r-s1.webm", bearer))[0] == 404
    await client.close()


@given(size=st.integers(0, 3 * MAX_CHUNK), first=st.integers(0, 4 * MAX_CHUNK) | st.none(),
       last=st.integers(0, 4 * MAX_CHUNK) | st.none())
def test_a_range_is_inside_the_file_and_at_most_a_chunk(size, first, last):
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    got = parse_range(header, size)
    if first is None and last is None:
        assert got is None
    elif first is not None and last is not None and last < first:
        assert got is None  # not a valid range: ignored, the whole file
    elif got == "unsatisfiable":
        assert (first is not None and first >= size) or (first is None and (last == 0 or size == 0))
    else:
        lo, hi = got
        assert 0 <= lo <= hi < size and hi - lo < MAX_CHUNK
        if first is not None:
            assert lo == first and (hi == min(size - 1, first + MAX_CHUNK - 1, last if last is not None else size))
        else:
            assert lo == max(0, size - last)


async def test_a_big_file_comes_in_chunks_and_whole_only_up_to_the_limit(start_server, tmp_path, names):
    server, rec, (ann, _, _) = await setting(start_server, tmp_path, names)
    big = rec / "r-big.webm"
    with open(big, "wb") as fh:  # sparse: MAX_WHOLE + 1 bytes, the last ones written
        fh.truncate(MAX_WHOLE + 1)
        fh.seek(MAX_WHOLE - 3)
        fh.write(b"end!")
    await ready(server.port, {"room_id": "r", "location": str(rec / "r.json"), "users": [ann],
                              "files": [{"participant": "s1", "name": big.name, "location": str(big)}]})
    client = await login(server.port, ann)
    url = (await client.ok("recording.list", {}))["recordings"][0]["files"][0]["url"]
    size = MAX_WHOLE + 1
    status, headers, body = await get(server.port, url, {"Range": "bytes=0-"})
    assert (status, headers["content-range"], len(body)) == (206, f"bytes 0-{MAX_CHUNK - 1}/{size}", MAX_CHUNK)
    status, headers, body = await get(server.port, url, {"Range": "bytes=-4"})
    assert (status, headers["content-range"], body) == (206, f"bytes {size - 4}-{size - 1}/{size}", b"end!")
    assert (await get(server.port, url))[0] == 413  # whole only up to MAX_WHOLE: a player asks in parts
    await client.close()

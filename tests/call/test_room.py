"""``netcore-call join``: a publisher and three receive-only subscribers (``--subscribers 3``, one
process) in a mesh room of a real ``netcore-signal``; every subscriber decodes the publisher's video."""

from __future__ import annotations

from tests.call.conftest import Cli, users

MEDIA = ("--size", "320x240", "--fps", "10")
FRAMES = 8  # of the ~50 each subscriber is sent; three encoders share the machine with the decoders


def test_three_subscribers_in_one_process_decode_the_publisher_in_a_mesh_room(tmp_path, signal, names):
    publisher, sub = names("pub"), names("sub")
    subscribers = [f"{sub}{i}" for i in (1, 2, 3)]
    # one password for the subscribers; the publisher befriends each, so it may invite them
    users(signal.url, publisher, *subscribers, passwords={user: "subscribers" for user in subscribers})
    invites = [arg for user in subscribers for arg in ("--invite", user)]
    pub = Cli(tmp_path, signal.url, publisher, *MEDIA, "join", "new", *invites, "--duration", "20")
    room_id = pub.expect("created").split()[1]
    subs = Cli(tmp_path, signal.url, sub, "--password", "subscribers", "--subscribers", "3",
               "join", room_id, "--duration", "8")
    got = subs.finish(60)
    published = pub.finish(60)
    assert got.code == 0, got.stderr
    assert published.code == 0, published.stderr
    sessions = {s["user"]: s for s in got.summary["sessions"]}
    assert sorted(sessions) == subscribers
    for user, session in sessions.items():
        assert session["room_id"] == room_id
        assert [link["peer"] for link in session["links"]] == [publisher], session  # never each other
        video = session["links"][0]["received"]["video"]
        assert len(video["numbers"]) >= FRAMES and video["in_order"], (user, video)
        assert session["links"][0]["received"]["audio"]["frames"] > 0
        assert session["links"][0]["sent"]["video_frames"] == 0  # receive-only
    links = published.summary["sessions"][0]["links"]
    assert sorted(link["peer"] for link in links) == subscribers
    assert all(link["connected"] and link["sent"]["video_frames"] > 0 for link in links)

"""A studio room on the call server core, in virtual time: two cameras, a viewer given the program
only, the operator's cuts switching what the viewer receives on the source's key frame, asked for at
the cut; the card; the audio pick."""

from __future__ import annotations

import pytest

from netcore.broadcast.card import card_image, encode_card
from netcore.broadcast.studio import PROGRAM_ID, PROGRAM_MIDS, Studios
from netcore.errors import UsageError
from netcore.peer.events import KeyFrameRequested
from netcore.rtp.vp8 import Vp8Descriptor
from tests.sfu.harness import Room, frames

OPERATOR = "op"


@pytest.fixture(scope="module")
def card_frame() -> bytes:
    return encode_card(card_image(320, 180))


def studio_room(card: bytes | None = None) -> tuple[Room, Studios]:
    room = Room()
    room.join("cam-a", slots=1)
    room.join("cam-b", slots=1)
    room.connect()
    studios = Studios(room.core, card, users=lambda sid: {"opview": OPERATOR}.get(sid, sid))
    studios.start("r1", OPERATOR, room.net.now)
    room.server.flush()
    return room, studios


def stream(room: Room, studios: Studios, seconds: float, fps: int = 30) -> None:
    """The cameras cam-a and cam-b (those in the room) send (key frames only when asked), the studio's card
    timer runs."""
    end = room.net.now + seconds
    while room.net.now < end - 1e-9:
        now = room.net.now
        for client in [c for name, c in room.clients.items() if name in ("cam-a", "cam-b")]:
            room.send(client, [client.audio_packet(now)])
            room.send(client, client.video_packet(now, room.keyframe_wanted(client) or client.frame == 0))
        studios.handle_timeout(now)
        room.server.flush()
        room.run(1 / fps)


def video_of(room: Room, name: str) -> list:
    client = room.clients[name]
    mid = next(m for m, k in client.slots.items() if k == "video")
    return client.received.get(mid, [])


def test_a_viewer_is_given_the_program_only_and_a_cut_reaches_it_at_the_new_sources_key_frame():
    room, studios = studio_room()
    viewer = room.join("viewer", publish=(), slots=2)
    room.connect()
    operator = room.join("opview", publish=(), slots=3)
    room.connect()
    slots = {s.mid: (s.publisher, s.track) for s in room.core.slots("viewer")}
    assert sorted(v for v in slots.values() if v != (None, None)) == sorted(
        (PROGRAM_ID, mid) for mid in PROGRAM_MIDS.values())
    shown = {s.publisher for s in room.core.slots("opview")}
    assert {"cam-a", "cam-b", PROGRAM_ID} <= shown  # the operator sees every source and the program
    room.clients["cam-b"].frame = 10000  # its frames told apart from A's
    now = room.net.now
    studios.command("studio.cut", "r1", {"source": {"publisher": "cam-a", "track": "1"}}, now)
    studios.command("studio.audio", "r1", {"source": {"publisher": "cam-a", "track": "0"}}, now)
    stream(room, studios, 1.0)
    got = video_of(room, "viewer")
    assert got, "the viewer received no video"
    a_frames = frames(got)
    assert len(a_frames) > 20
    cam_b = room.clients["cam-b"]
    asked_before = sum(1 for e in cam_b.node.events if isinstance(e, KeyFrameRequested))
    cut_at = room.net.now
    b_at_cut = cam_b.frame
    studio = studios.command("studio.cut", "r1", {"source": {"publisher": "cam-b", "track": "1"}}, cut_at)
    room.server.flush()
    assert studio.switcher.waiting == ("cam-b", "1")
    stream(room, studios, 1.0)
    asked = [e for e in cam_b.node.events if isinstance(e, KeyFrameRequested)]
    assert len(asked) > asked_before  # the cut asked camera B for a key frame at once
    assert studio.switcher.state.video == ("cam-b", "1") and studio.switcher.waiting is None
    packets = video_of(room, "viewer")
    # one stream at the viewer: one SSRC, sequence numbers +1 each, picture ids +1 per frame, timestamps on
    assert len({p.ssrc for p in packets}) == 1
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in zip(packets, packets[1:]))
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF < 0x80000000 for a, b in zip(packets, packets[1:]))
    pids = [Vp8Descriptor.parse(p.payload)[0].picture_id for p in packets if p.payload[0] & 0x10]
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(pids, pids[1:]))
    # the frames are A's until B's key frame, then B's (B counts from 10000), each run without a gap
    numbers = frames(packets)
    first_b = next(i for i, n in enumerate(numbers) if n >= 10000)
    assert all(n < 10000 for n in numbers[:first_b]) and all(n >= 10000 for n in numbers[first_b:])
    assert numbers[:first_b] == list(range(numbers[0], numbers[0] + first_b))
    assert numbers[first_b:] == list(range(numbers[first_b], numbers[first_b] + len(numbers) - first_b))
    # B's key frame was its next frame after the request (made at the cut, 10 ms each way): within two frames
    assert numbers[first_b] - b_at_cut <= 2
    audio = [p for m, k in viewer.slots.items() if k == "audio" for p in viewer.received.get(m, [])]
    assert len(audio) >= 55 and len({p.ssrc for p in audio}) == 1


def test_the_card_is_on_air_from_the_start_and_when_the_operator_puts_it_on(card_frame):
    room, studios = studio_room(card_frame)
    room.join("viewer", publish=(), slots=1)
    room.connect()
    stream(room, studios, 1.0)
    studio = studios.studios["r1"]
    got = video_of(room, "viewer")
    assert got and studio.switcher.state.video == ("", "card")
    assert studio.switcher.card is not None and studio.switcher.card.frames >= 4
    studios.command("studio.cut", "r1", {"source": {"publisher": "cam-a", "track": "1"}}, room.net.now)
    stream(room, studios, 0.5)
    assert studio.switcher.state.video == ("cam-a", "1") and not studio.switcher.card.running
    studios.command("studio.card", "r1", {}, room.net.now)
    stream(room, studios, 0.5)
    assert studio.switcher.state.video == ("", "card")
    packets = video_of(room, "viewer")
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in zip(packets, packets[1:]))
    assert len(frames(packets)) > 0  # camera A's frames came between the two cards


def test_commands_for_a_room_that_is_no_studio_or_a_source_not_in_it_are_refused():
    room, studios = studio_room()
    with pytest.raises(UsageError):
        studios.command("studio.cut", "other", {"source": {"publisher": "cam-a", "track": "1"}}, room.net.now)
    with pytest.raises(UsageError):
        studios.command("studio.cut", "r1", {"source": {"publisher": "nobody", "track": "1"}}, room.net.now)
    with pytest.raises(UsageError):
        studios.command("studio.cut", "r1", {}, room.net.now)
    with pytest.raises(UsageError):
        studios.command("studio.cut", "r1", {"source": "cam-a"}, room.net.now)
    with pytest.raises(UsageError):
        studios.command("studio.fade", "r1", {}, room.net.now)


def test_a_camera_that_joins_later_is_a_source_and_one_that_leaves_is_taken_off_air(card_frame):
    room, studios = studio_room(card_frame)
    seen = len(room.events)  # the core's events, as the server node drained them
    room.join("cam-c", publish=("video",), slots=0)
    for event in room.events[seen:]:
        studios.on_event(event, room.net.now)
    studio = studios.studios["r1"]
    assert ("cam-c", "0") in studio.switcher.sources
    room.connect()
    studios.command("studio.cut", "r1", {"source": {"publisher": "cam-a", "track": "1"}}, room.net.now)
    stream(room, studios, 0.5)
    assert studio.switcher.state.video == ("cam-a", "1")
    seen = len(room.events)
    room.core.leave("cam-a", room.net.now)
    room.server.flush()
    for event in room.events[seen:]:
        studios.on_event(event, room.net.now)
    # off the program, and the card on air at once (its first frame went out as the camera left)
    assert ("cam-a", "1") not in studio.switcher.sources and studio.switcher.state.video == ("", "card")


def test_the_mix_goes_on_air_in_place_of_a_microphone_and_the_stream_runs_on():
    room, studios = studio_room()
    viewer = room.join("viewer", publish=(), slots=1)
    room.connect()
    studios.command("studio.audio", "r1", {"source": {"publisher": "cam-a", "track": "0"}}, room.net.now)
    stream(room, studios, 0.5, fps=50)
    studios.command("studio.audio", "r1", {"source": {"mix": True}}, room.net.now)
    assert studios.next_deadline() is not None  # the mix's 20 ms frames
    stream(room, studios, 1.0, fps=50)
    studio = studios.studios["r1"]
    assert studio.state()["audio"] == {"mix": True} and studio.mix.running
    audio = [p for m, k in viewer.slots.items() if k == "audio" for p in viewer.received.get(m, [])]
    assert len({p.ssrc for p in audio}) == 1
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in zip(audio, audio[1:]))
    assert all(0 < (b.timestamp - a.timestamp) & 0xFFFFFFFF < 48000 for a, b in zip(audio, audio[1:]))
    microphone = [p for p in audio if p.payload == bytes(40)]  # the harness's microphones send zeros
    mixed = audio[len(microphone):]
    assert microphone == audio[:len(microphone)] and len(microphone) > 15 and len(mixed) > 35
    studios.command("studio.audio", "r1", {}, room.net.now)  # none
    assert not studio.mix.running and studio.state()["audio"] is None


def test_a_studio_ends_when_its_room_has_nobody_left_but_the_program():
    room, studios = studio_room()
    for name in ("cam-a", "cam-b"):
        seen = len(room.events)
        room.core.leave(name, room.net.now)
        room.server.flush()
        for event in room.events[seen:]:
            studios.on_event(event, room.net.now)
    assert "r1" not in studios.studios and "r1" not in room.core.rooms


def test_each_camera_is_asked_for_what_the_programs_subscribers_take_even_off_air():
    from netcore.peer.events import RtcpReceived
    from netcore.rtp.feedback import Remb
    from netcore.sfu.core import MIN_REMB

    room = Room()
    room.join("cam-a", slots=0)  # nobody subscribes to the cameras themselves: only to the program
    room.join("cam-b", slots=0)
    room.connect()
    studios = Studios(room.core)
    studios.start("r1", OPERATOR, room.net.now)
    room.join("viewer", publish=(), slots=1)
    room.connect()
    studios.command("studio.cut", "r1", {"source": {"publisher": "cam-a", "track": "1"}}, room.net.now)
    stream(room, studios, 3.0)
    studio = studios.studios["r1"]
    assert studio.demand(room.net.now) > MIN_REMB
    for name in ("cam-a", "cam-b"):  # cam-b is off air, and asked all the same
        rembs = [p.bitrate for e in room.clients[name].node.events if isinstance(e, RtcpReceived)
                 for p in e.packets if isinstance(p, Remb)]
        assert rembs and rembs[-1] > MIN_REMB, (name, rembs[-3:])


def test_a_viewer_that_joined_before_the_start_is_given_the_program_in_place_of_the_cameras():
    from netcore.sfu.events import SlotsChanged

    room = Room()
    room.join("cam-a", slots=0)
    viewer = room.join("viewer", publish=(), slots=1)
    room.connect()
    assert {s.publisher for s in room.core.slots("viewer")} == {"cam-a"}
    seen = len(room.events)
    studios = Studios(room.core)
    studios.start("r1", OPERATOR, room.net.now)
    room.server.flush()
    assert {s.publisher for s in room.core.slots("viewer")} == {PROGRAM_ID}
    told = [e for e in room.events[seen:] if isinstance(e, SlotsChanged) and e.participant_id == "viewer"]
    assert told and {s.publisher for s in told[-1].slots} == {PROGRAM_ID}
    studios.command("studio.cut", "r1", {"source": {"publisher": "cam-a", "track": "1"}}, room.net.now)
    before = len(video_of(room, "viewer"))
    stream(room, studios, 1.0)
    assert len(frames(video_of(room, "viewer")[before:])) > 20 and viewer.received


def test_a_simulcast_camera_goes_on_air_as_its_largest_layer():
    from tests.sfu.harness import SimulcastPublisher

    room = Room()
    camera = room.join("cam-s", slots=0, simulcast=("q", "h", "f"))
    room.connect()
    studios = Studios(room.core)
    studios.start("r1", OPERATOR, room.net.now)
    room.join("viewer", publish=(), slots=1)
    room.connect()
    publisher = SimulcastPublisher(room, camera, {"q": 180, "h": 360, "f": 720}, {"q": 300, "h": 900, "f": 2900})
    publisher.stream(0.5)  # every layer sends: their sizes known from their key frames
    studios.command("studio.cut", "r1", {"source": {"publisher": "cam-s", "track": "1"}}, room.net.now)
    publisher.stream(1.0)
    packets = video_of(room, "viewer")
    assert len(frames(packets)) > 20
    assert len(packets) == 3 * len(frames(packets))  # the top layer's 2900-byte frames: three packets each
    assert all((b.sequence_number - a.sequence_number) & 0xFFFF == 1 for a, b in zip(packets, packets[1:]))


def test_a_stopped_studio_takes_the_program_off_air_and_gives_its_viewer_the_cameras_again():
    from netcore.sfu.events import SlotsChanged

    room, studios = studio_room()
    room.join("viewer", publish=(), slots=2)
    room.connect()
    assert {s.publisher for s in room.core.slots("viewer")} - {None} == {PROGRAM_ID}
    seen = len(room.events)
    assert studios.stop("r1", room.net.now) and not studios.stop("r1", room.net.now)  # once: then no studio
    room.server.flush()
    assert {s.publisher for s in room.core.slots("viewer")} - {None} == {"cam-a", "cam-b"}
    told = [e for e in room.events[seen:] if isinstance(e, SlotsChanged) and e.participant_id == "viewer"]
    assert told and {s.publisher for s in told[-1].slots} - {None} == {"cam-a", "cam-b"}
    with pytest.raises(UsageError):
        studios.command("studio.card", "r1", {}, room.net.now)

"""The call server core with three clients on the simulated network, in virtual time."""

from __future__ import annotations

from netcore.rtp.sequence import seq_diff
from netcore.rtp.vp8 import Vp8Descriptor
from netcore.sfu.events import KeyFrameRequested, ParticipantJoined, ParticipantLeft, SlotsChanged
from tests.sfu.harness import SERVER, Room, frames

SERVER_IP = SERVER[0]


def test_three_participants_each_receive_the_two_others_audio_and_video():
    room = Room()
    for name in ("a", "b", "c"):
        room.join(name)
    room.connect()
    room.stream(2.0, keyframe_every=1000)
    for name, client in room.clients.items():
        video = [mid for mid, kind in client.slots.items() if kind == "video"]
        audio = [mid for mid, kind in client.slots.items() if kind == "audio"]
        got_video = [client.received.get(mid, []) for mid in video]
        got_audio = [client.received.get(mid, []) for mid in audio]
        assert all(len(v) > 50 for v in got_video), (name, [len(v) for v in got_video])
        assert all(len(a) > 80 for a in got_audio), (name, [len(a) for a in got_audio])
        for packets in got_video:
            seqs = [p.sequence_number for p in packets]
            assert all(seq_diff(b, a) == 1 for a, b in zip(seqs, seqs[1:]))
            numbers = frames(packets)
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    kinds = [e for e in room.events if isinstance(e, ParticipantJoined)]
    assert [e.participant_id for e in kinds] == ["a", "b", "c"]
    slots = [e for e in room.events if isinstance(e, SlotsChanged) and e.participant_id == "a"][-1].slots
    assert sorted((s.publisher, s.kind) for s in slots if s.publisher) == [
        ("b", "audio"), ("b", "video"), ("c", "audio"), ("c", "video")]


def test_a_late_subscriber_gets_a_key_frame_quickly_and_requests_are_arbitrated():
    room = Room()
    room.join("a")
    room.join("b")
    room.connect()
    room.stream(1.0)
    room.join("c")
    room.join("d")
    room.connect()
    start = room.net.now
    room.stream(1.0)
    for name in ("c", "d"):
        client = room.clients[name]
        video = [client.received.get(mid, []) for mid, k in client.slots.items() if k == "video"]
        assert all(video), name
    # two subscribers joined at once: each publisher was asked about once per join, not once per subscriber
    for participant in room.core.participants.values():
        arbiter = participant.publications[next(m for m, p in participant.publications.items()
                                                if p.kind == "video")].arbiter
        assert arbiter.requested <= 2, (participant.id, arbiter.requested)
    assert room.core.stats.keyframe_requests_coalesced >= 2
    assert room.net.now - start < 1.5
    # each request that went upstream is an event (for the analytics), naming the publisher's track
    asked = [e for e in room.events if isinstance(e, KeyFrameRequested)]
    assert len(asked) == room.core.stats.keyframe_requests
    assert {e.participant_id for e in asked} <= set(room.core.participants)
    assert all(e.reason in ("subscriber", "held", "retry") for e in asked)


def test_a_held_key_frame_request_goes_up_when_its_interval_ends_and_not_after_its_publisher_left():
    room = Room()
    room.join("a")
    room.join("b")
    room.join("c")
    room.connect()
    room.stream(1.0)
    core = room.core

    def video(name):
        return next(p for p in core.participants[name].publications.values() if p.kind == "video")

    def held(name):
        return [e for e in room.events if isinstance(e, KeyFrameRequested) and e.participant_id == name
                and e.reason == "held"]

    for name in ("a", "b"):
        core.request_keyframe(video(name), room.net.now)  # goes up
    room.server.flush()
    room.stream(0.2)  # its key frame comes
    for name in ("a", "b"):
        core.request_keyframe(video(name), room.net.now)  # within the interval after it: held
    room.server.flush()
    assert video("a").arbiter.next_deadline() is not None and video("b").arbiter.next_deadline() is not None
    deadline = video("a").arbiter.next_deadline()
    assert core.next_deadline() <= deadline  # the core wakes up for it
    core.leave("b", room.net.now)
    room.server.flush()
    room.stream(1.0, senders=["a", "c"])
    assert len(held("a")) == 1  # sent once, when its interval ended
    assert held("b") == []  # its publisher left: nothing was asked of a closed transport
    assert video("a").arbiter.next_deadline() is None and core._held == {}


def test_leave_frees_the_slot_and_a_rejoin_continues_the_same_outgoing_stream():
    room = Room()
    a, b = room.join("a"), room.join("b")
    room.connect()
    room.stream(1.0)
    video_mid = next(m for m, k in a.slots.items() if k == "video" and a.received.get(m))
    before = list(a.received[video_mid])
    room.core.leave("b", room.net.now)
    room.server.flush()
    left = [e for e in room.events if isinstance(e, ParticipantLeft)]
    assert left and left[0].participant_id == "b" and left[0].packets_received > 0
    del room.clients["b"]
    room.run(0.5)
    room.join("b2")
    room.connect()
    room.stream(1.0)
    after = a.received[video_mid][len(before):]
    assert after, "the rejoined publisher is forwarded into the same slot"
    assert after[0].ssrc == before[-1].ssrc
    assert seq_diff(after[0].sequence_number, before[-1].sequence_number) == 1
    assert (after[0].timestamp - before[-1].timestamp) & 0xFFFFFFFF < 0x80000000
    pids = [Vp8Descriptor.parse(p.payload)[0].picture_id for p in before[-2:] + after[:2]]
    assert (pids[2] - pids[1]) & 0x7FFF == 1
    assert frames(after)[0] == 0 and b.frame > 0


def test_loss_on_one_subscribers_link_is_repaired_from_the_servers_history_only_for_it():
    from netcore.testing.simnet import Link
    room = Room(seed=7)
    a = room.join("a", slots=1)
    room.join("b", slots=1)
    room.join("c", slots=1, publish=(), link=Link(delay=0.01))
    room.connect()
    room.net.link("192.0.2.3").loss = 0.05  # what c sends (its NACKs included) and ...
    lossy_in = Link(delay=0.005, loss=0.05)
    room.net._links[SERVER_IP] = lossy_in  # ... what the server sends, to everyone: c is the one that NACKs
    room.stream(3.0, audio=False)
    room.net._links[SERVER_IP] = Link(delay=0.005)
    room.run(1.0)
    server_c = room.core.participants["c"].transport
    server_a_pub = room.core.participants["a"].transport
    assert server_c.stats.nacks_received > 0 and server_c.sender.retransmissions > 0
    # the publishers' own links were clean: nothing asked upstream
    assert a.transport.stats.nacks_received == 0
    c = room.clients["c"]
    for mid, kind in c.slots.items():
        packets = c.received.get(mid, [])
        if kind != "video" or not packets:
            continue
        seqs = sorted({p.sequence_number for p in packets})
        assert seqs[-1] - seqs[0] + 1 - len(seqs) <= 2  # repaired, but for the very last few
    assert server_a_pub.stats.nacks_sent == 0


def test_junk_and_checks_from_strangers_change_nothing():
    import random as rnd

    from netcore.net import Receive
    from netcore.stun.attributes import USERNAME
    from netcore.stun.message import Message, MessageClass
    room = Room()
    room.join("a", slots=1)
    room.join("b", slots=1)
    room.connect()
    room.stream(0.5)
    before = room.core.stats.forwarded_packets
    rng = rnd.Random(3)
    ufrag = room.core.participants["a"].negotiator.ice_ufrag
    for i in range(2000):
        source = (f"172.16.{i % 200}.{i % 250}", 1000 + i)
        kind = i % 4
        if kind == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        elif kind == 1:  # a check naming a real participant, without its password
            message = Message(0x0001, MessageClass.REQUEST, rng.randbytes(12))
            message.add(USERNAME, f"{ufrag}:evil")
            data = message.encode()
        elif kind == 2:  # DTLS and SRTP-looking bytes
            data = bytes((22, 254, 253)) + rng.randbytes(60)
        else:
            data = bytes((0x80, 96)) + rng.randbytes(100)
        room.core.handle_datagram(Receive(data, source, SERVER), room.net.now)
    room.server.flush()
    assert len(room.core.router) <= 2 * 4  # only the two real clients' addresses
    room.stream(0.5)
    assert room.core.stats.forwarded_packets > before + 40
    assert sum(room.core.router.dropped.values()) >= 1500


def test_a_slot_waiting_for_a_key_frame_asks_again_when_the_first_request_goes_unanswered():
    room = Room()
    a = room.join("a", slots=1)
    room.join("b", slots=1, publish=())
    a.frame = 1  # a never sends a key frame of its own: only on request
    a.deaf = 1  # and the first request is lost
    room.connect()
    room.stream(3.0, keyframe_every=10**9, audio=False)
    b = room.clients["b"]
    video = [p for m, k in b.slots.items() if k == "video" for p in b.received.get(m, [])]
    assert video and frames(video)[0] > 0
    assert room.core.participants["a"].publications[next(iter(
        m for m, p in room.core.participants["a"].publications.items() if p.kind == "video"))].arbiter.requested >= 2


def test_the_call_servers_transports_send_each_repair_once():
    """Repair copies (netcore.peer.sender) are for a peer's own calls: the server's would come out of the
    retransmission budget of each subscriber's next NACK."""
    room = Room()
    room.join("a")
    assert room.core.participants["a"].transport.config.repair_copies is False

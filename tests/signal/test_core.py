"""The sans-IO core driven directly: a fake clock, a seeded random source, no sockets."""

from __future__ import annotations

import dataclasses
import json
import random as _random

import pytest

from netcore.net import Event

from servers.signal.analytics import ANALYTICS_EVENTS
from servers.signal.core import (
    CallState,
    Outgoing,
    Presence,
    SignalEvent,
    CallAnswered,
    CallEnded,
    CallStarted,
    CoreConfig,
    SessionExpired,
    SignalCore,
    UserRequested,
)
from servers.signal.replication import Replication
from servers.signal.rooms import Rooms


def seeded(seed: int = 1):
    rng = _random.Random(seed)
    return lambda n: rng.randbytes(n)


class Harness:
    def __init__(self, **config) -> None:
        self.core = SignalCore(CoreConfig(**config), random=seeded())
        self.now = 100.0
        self.seq = 0

    def connect(self, user, friends=(), **kw):
        return self.core.handle_connect(user, self.now, friends=set(friends), blocked=set(), **kw)

    def send(self, sid, kind, payload=None, mid=None):
        self.seq += 1
        text = json.dumps({"v": 1, "type": kind, "id": mid or f"m{self.seq}", "payload": payload or {}})
        self.core.handle_text(sid, text, self.now)

    def drain(self):
        out = []
        while (item := self.core.poll_transmit()) is not None:
            out.append((item.session_id, json.loads(item.text)))
        return out

    def events(self):
        out = []
        while (e := self.core.poll_event()) is not None:
            out.append(e)
        return out

    def advance(self, seconds):
        self.now += seconds
        deadline = self.core.next_deadline()
        if deadline is not None and deadline <= self.now:
            self.core.handle_timeout(self.now)


def cluster_node(node_id: str, seed: int, **config) -> Harness:
    """A harness whose core is a node of a cluster: it writes call and room snapshots (RoomChanged events)."""
    h = Harness(**config)
    h.core = SignalCore(CoreConfig(**config), random=seeded(seed), node_id=node_id, journal=True)
    return h


def resumed_on(h: Harness, session_id: str, user: str, resume_token: str) -> None:
    """``session_id`` adopted by ``h``'s node (as from a dead or restarted node's journal), then resumed there."""
    h.core.adopt_session(session_id, user, resume_token, 0, [], h.now)
    assert h.connect(user, resume_token=resume_token, last_seq=0) == session_id


def ann_calls_bob(h, *, accept: bool = True):
    """ann and bob connected as friends, ann invites bob (who accepts): (a, b, call_id, output)."""
    a = h.connect("ann", friends={"bob"})
    b = h.connect("bob", friends={"ann"})
    h.send(a, "call.invite", {"to": "bob", "media": ["audio"]})
    out = h.drain()
    call_id = of(out, a, "ack")[0]["payload"]["call_id"]
    if accept:
        h.send(b, "call.accept", {"call_id": call_id})
        out += h.drain()
    return a, b, call_id, out


def of(messages, sid, kind):
    return [m for s, m in messages if s == sid and m["type"] == kind]


def test_same_seed_gives_the_same_ids():
    a, b = Harness(), Harness()
    assert a.connect("ann") == b.connect("ann")


def test_ring_timeout_fires_at_the_deadline_and_not_before():
    h = Harness(ring_timeout=30.0)
    a = h.connect("ann", friends={"bob"})
    b = h.connect("bob", friends={"ann"})
    h.drain()
    h.send(a, "call.invite", {"to": "bob", "media": ["audio"]})
    out = h.drain()
    call_id = of(out, a, "ack")[0]["payload"]["call_id"]
    assert of(out, b, "call.incoming")[0]["payload"]["call_id"] == call_id
    assert h.core.next_deadline() == 130.0
    h.advance(29.9)
    assert not of(h.drain(), a, "call.ended")
    h.advance(0.1)
    out = h.drain()
    assert of(out, a, "call.ended")[0]["payload"]["reason"] == "timeout"
    assert of(out, b, "call.ended")[0]["payload"]["reason"] == "timeout"
    ended = [e for e in h.events() if isinstance(e, CallEnded)]
    assert ended[0].reason == "timeout" and ended[0].answered is False


def test_analytics_events_for_an_answered_call():
    h = Harness()
    a = h.connect("ann", friends={"bob"})
    b = h.connect("bob", friends={"ann"})
    h.send(a, "call.invite", {"to": "bob", "media": ["audio", "video"]})
    call_id = of(h.drain(), a, "ack")[0]["payload"]["call_id"]
    h.now += 2.5
    h.send(b, "call.accept", {"call_id": call_id})
    h.now += 60
    h.send(b, "call.quality", {"call_id": call_id, "path": "relay", "rtt_ms": 42.0, "loss": 0.01})
    h.send(a, "call.hangup", {"call_id": call_id})
    kinds = [type(e).__name__ for e in h.events() if type(e) in ANALYTICS_EVENTS]
    assert kinds == ["CallStarted", "CallAnswered", "QualityReported", "CallEnded"]
    h2 = Harness()
    a = h2.connect("ann", friends={"bob"})
    b = h2.connect("bob", friends={"ann"})
    h2.send(a, "call.invite", {"to": "bob", "media": ["audio"]})
    call_id = of(h2.drain(), a, "ack")[0]["payload"]["call_id"]
    h2.now += 1.0
    h2.send(b, "call.accept", {"call_id": call_id})
    h2.now += 10.0
    h2.send(b, "call.hangup", {"call_id": call_id})
    events = [e for e in h2.events() if type(e) in ANALYTICS_EVENTS]
    assert isinstance(events[0], CallStarted) and events[0].media == ("audio",)
    assert isinstance(events[1], CallAnswered) and events[1].setup_time == 1.0
    assert isinstance(events[2], CallEnded) and events[2].duration == 10.0 and events[2].reason == "hangup"


def test_disconnect_within_window_keeps_the_call_and_buffers():
    h = Harness(resume_window=30.0)
    a, b, call_id, welcome_b = ann_calls_bob(h)
    h.core.handle_disconnect(b, h.now)
    h.send(a, "call.offer", {"call_id": call_id, "sdp": "v=0"})
    assert not [m for s, m in h.drain() if s == b]  # nothing written to a closed socket
    h.advance(29)
    token = h.core.session(b).resume_token
    last_seq = max(m["seq"] for s, m in welcome_b if s == b and "seq" in m)
    again = h.connect("bob", resume_token=token, last_seq=last_seq)
    assert again == b
    out = h.drain()
    assert [m["type"] for s, m in out if s == b] == ["welcome", "call.offer"]
    h.advance(10)
    assert h.core.call(call_id) is not None


def test_disconnect_past_window_ends_call_and_session():
    h = Harness(resume_window=5.0)
    a, b, call_id, _ = ann_calls_bob(h)
    h.core.handle_disconnect(b, h.now)
    h.drain()
    h.advance(5.0)
    out = h.drain()
    assert of(out, a, "call.ended")[0]["payload"]["reason"] == "disconnected"
    assert of(out, a, "presence")[-1]["payload"] == {"user": "bob", "status": "offline"}
    assert any(isinstance(e, SessionExpired) for e in h.events())
    assert h.core.status("bob") == "offline"


def test_user_service_messages_become_events():
    h = Harness()
    a = h.connect("ann")
    h.events()
    h.send(a, "friend.request", {"username": "bob"}, mid="f1")
    [event] = h.events()
    assert isinstance(event, UserRequested) and event.user == "ann" and event.message.id == "f1"


def test_bad_input_is_counted_and_answered_never_raised():
    h = Harness(max_strikes=3)
    a = h.connect("ann")
    h.drain()
    for text in ("", "{", "null", '{"v":1}', b"\xff\xfe", "[" * 100000):
        h.core.handle_text(a, text, h.now)
    errors = of(h.drain(), a, "error")
    assert len(errors) == 6
    assert sum(v for k, v in h.core.counters.items() if k.startswith("errors:")) == 6
    assert any(type(e).__name__ == "CloseRequested" for e in h.events())


class Cluster:
    """Two cores joined by an in-memory bus: routes and forwards delivered at once."""

    def __init__(self):
        self.cores = {n: SignalCore(CoreConfig(resume_window=10.0), random=seeded(i), node_id=n, journal=True)
                      for i, n in enumerate(("A", "B"))}
        self.now = 0.0
        self.snapshots: dict[str, dict] = {}
        self.journal: dict[str, list[tuple[int, str]]] = {}
        self.out: dict[str, list[dict]] = {}
        self.dead: set[str] = set()

    def pump(self):
        busy = True
        while busy:
            busy = False
            for name, core in self.cores.items():
                if name in self.dead:
                    continue
                while (r := core.poll_route()) is not None:
                    busy = True
                    node, sid, kind, payload, mid = r
                    if node not in self.dead:
                        self.cores[node].handle_routed(sid, kind, payload, mid, name)
                while (j := core.poll_journal()) is not None:
                    self.journal.setdefault(j[0], []).append((j[1], j[2]))
                while (t := core.poll_transmit()) is not None:
                    self.out.setdefault(t.session_id, []).append(json.loads(t.text))
                while (e := core.poll_event()) is not None:
                    busy = True
                    if type(e).__name__ == "Forwarded":
                        self.cores[e.node].handle_forwarded(e.session_id, e.user, name, e.message, self.now)
                    elif type(e).__name__ == "CallChanged":
                        if e.snapshot is None:
                            self.snapshots.pop(e.call_id, None)
                        else:
                            self.snapshots[e.call_id] = e.snapshot

    def send(self, node, sid, kind, payload, mid="x"):
        text = json.dumps({"v": 1, "type": kind, "id": mid, "payload": payload})
        self.cores[node].handle_text(sid, text, self.now)
        self.pump()

    def take(self, sid, kind):
        msgs = [m for m in self.out.get(sid, []) if m["type"] == kind]
        self.out[sid] = [m for m in self.out.get(sid, []) if m["type"] != kind]
        return msgs


def test_call_across_two_cores_and_failover_of_the_owner():
    c = Cluster()
    a = c.cores["A"].handle_connect("ann", 0.0, friends={"bob"})
    b = c.cores["B"].handle_connect("bob", 0.0, friends={"ann"})
    c.cores["A"].add_foreign_session(b, "bob", "B")  # what the user map lookup provides
    c.pump()
    c.send("A", a, "call.invite", {"to": "bob", "media": ["audio"]}, mid="i")
    call_id = c.take(a, "ack")[0]["payload"]["call_id"]
    assert c.take(b, "call.incoming")[0]["payload"]["call_id"] == call_id
    c.send("B", b, "call.accept", {"call_id": call_id}, mid="acc")
    assert c.take(b, "ack")[0]["id"] == "acc"  # the answer travelled back from A
    assert c.take(a, "call.accepted")
    c.send("B", b, "call.answer", {"call_id": call_id, "sdp": "v=0"})
    assert c.take(a, "call.answer")[0]["payload"]["sdp"] == "v=0"
    # seq numbers on B's session stay gap-free although A produced the messages
    seqs = [seq for seq, _ in c.journal[b]]
    assert seqs == list(range(1, len(seqs) + 1))
    # A dies.  B adopts ann's session (journal) and the call (snapshot).
    c.dead.add("A")
    last_seq_seen_by_ann = c.journal[a][-2][0]  # ann missed her last message
    snapshot = c.snapshots[call_id]
    assert snapshot["owner"] == "A" and snapshot["state"] == "active"
    core_b = c.cores["B"]
    resume = c.cores["A"].session(a).resume_token
    c.out[a] = []
    core_b.adopt_session(a, "ann", resume, c.journal[a][-1][0], c.journal[a], c.now)
    core_b.adopt_call(snapshot, c.now)
    c.pump()
    assert core_b.handle_connect("ann", c.now, resume_token=resume, last_seq=last_seq_seen_by_ann) == a
    c.pump()
    replay = c.out[a]
    assert replay[0]["type"] == "welcome" and replay[0]["payload"]["resumed"] is True
    assert [m["seq"] for m in replay[1:]] == [last_seq_seen_by_ann + 1]
    c.out[a] = []
    c.send("B", b, "call.candidate", {"call_id": call_id, "candidate": {"candidate": "x"}})
    assert c.take(a, "call.candidate")
    c.send("B", a, "call.hangup", {"call_id": call_id})
    assert c.take(b, "call.ended")[0]["payload"]["reason"] == "hangup"


def test_room_across_two_cores():
    c = Cluster()
    core_a = c.cores["A"]
    a = core_a.handle_connect("ann", 0.0, friends={"bob"})
    b = c.cores["B"].handle_connect("bob", 0.0, friends={"ann"})
    c.pump()
    c.send("A", a, "room.create", {})
    room_id = c.take(a, "ack")[0]["payload"]["room_id"]
    core_a.add_foreign_session(b, "bob", "B")  # the invite prefetch
    c.send("A", a, "room.invite", {"room_id": room_id, "to": "bob"})
    assert c.take(b, "room.invited")[0]["payload"]["room_id"] == room_id
    c.send("B", b, "room.join", {"room_id": room_id}, mid="j")
    joined = c.take(b, "ack")[0]["payload"]
    assert [p["user"] for p in joined["participants"]] == ["ann", "bob"]
    assert c.take(a, "room.joined")[0]["payload"]["session_id"] == b
    c.send("A", a, "room.signal", {"room_id": room_id, "to": b, "kind": "offer", "sdp": "v=0"})
    assert c.take(b, "room.signal")[0]["payload"]["from"] == a
    c.send("B", b, "room.leave", {"room_id": room_id})
    assert c.take(a, "room.left")[0]["payload"]["user"] == "bob"
    assert room_id not in c.cores["B"].session(b).remote_owned
    assert core_a.session(b) is None  # A forgot the foreign session


def test_expiry_on_the_callee_node_ends_the_call_on_the_owner():
    c = Cluster()
    a = c.cores["A"].handle_connect("ann", 0.0, friends={"bob"})
    b = c.cores["B"].handle_connect("bob", 0.0, friends={"ann"})
    c.cores["A"].add_foreign_session(b, "bob", "B")
    c.pump()
    c.send("A", a, "call.invite", {"to": "bob", "media": ["audio"]})
    call_id = c.take(a, "ack")[0]["payload"]["call_id"]
    c.send("B", b, "call.accept", {"call_id": call_id})
    c.cores["B"].handle_disconnect(b, c.now)
    c.now = 10.0
    c.cores["B"].handle_timeout(c.now)
    c.pump()
    assert c.take(a, "call.ended")[0]["payload"]["reason"] == "disconnected"
    assert c.cores["A"].call(call_id) is None


def test_outputs_are_typed_records_and_states_are_enums_with_the_wire_strings():
    h = Harness()
    a = h.connect("ann", friends={"bob"})
    b = h.connect("bob", friends={"ann"})
    out = h.core.poll_transmit()
    assert isinstance(out, Outgoing) and out.session_id == a and json.loads(out.text)["type"] == "welcome"
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.text = "x"
    assert not hasattr(out, "__dict__")  # slotted
    h.drain()
    h.send(a, "call.invite", {"to": "bob", "media": ["audio"]})
    call_id = of(h.drain(), a, "ack")[0]["payload"]["call_id"]
    assert h.core.call(call_id).state is CallState.RINGING
    h.send(b, "call.accept", {"call_id": call_id})
    out = h.drain()
    assert h.core.call(call_id).state is CallState.ACTIVE
    assert h.core.status("ann") is Presence.BUSY
    # On the wire the states are the strings the page knows.
    assert {"user": "ann", "status": "busy"} in [m["payload"] for m in of(out, b, "presence")]
    assert json.dumps({"s": CallState.ACTIVE, "p": Presence.BUSY}) == '{"s": "active", "p": "busy"}'
    events = []
    while (event := h.core.poll_event()) is not None:
        events.append(event)
    assert events and all(isinstance(e, SignalEvent) and isinstance(e, Event) for e in events)
    assert {type(e).__name__ for e in events} >= {"CallStarted", "CallAnswered"}


def test_the_core_is_composed_not_mixed():
    assert SignalCore.__mro__ == (SignalCore, object)
    core = SignalCore()
    assert isinstance(core._rooms, Rooms) and isinstance(core._replication, Replication)
    # Each part owns its state; none reaches into another's through self.
    for part in (core._rooms, core._replication):
        assert not {"_sessions", "_calls", "_events", "_transmit"} & set(vars(part))

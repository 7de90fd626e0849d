"""Random sequences of client actions against the core: it never raises, and its
state stays consistent (every call and room is referenced by exactly its sessions)."""

from __future__ import annotations

import json
import os
import random as _random

from hypothesis import given, settings
from hypothesis import strategies as st

from servers.signal.core import ACTIVE, CoreConfig, SignalCore

USERS = ["ann", "bob", "cat", "dan"]
KINDS = ["call.invite", "call.accept", "call.reject", "call.cancel", "call.hangup", "call.offer",
         "call.candidate", "room.create", "room.invite", "room.join", "room.leave", "room.signal",
         "room.record", "ping", "garbage", "disconnect", "connect", "tick", "answer", "answer", "answer", "call.invite", "call.invite"]

action = st.tuples(st.sampled_from(KINDS), st.integers(0, 7), st.integers(0, 7), st.integers(0, 3))


def check_invariants(core: SignalCore) -> None:
    for call_id, call in core._calls.items():
        members = {call.caller_session, *call.ringing}
        if call.callee_session:
            members.add(call.callee_session)
            assert call.state == ACTIVE and not call.ringing
        for sid in members:
            assert call_id in core.session(sid).calls
    for session in core.sessions():
        sid = session.session_id
        for call_id in session.calls:
            assert core.call(call_id) is not None
        for room_id in session.rooms:
            assert core._rooms.get(room_id).participants[sid] == session.user
        assert sid in core._directory.sessions_of(session.user)
    for room in core._rooms.all():
        assert room.participants  # empty rooms are closed


@given(st.lists(action, max_size=60), st.integers(0, 2**32))
@settings(max_examples=int(os.environ.get("SIGNAL_FUZZ_EXAMPLES", "150")))
def test_random_actions_keep_the_core_consistent(actions, seed):
    rng = _random.Random(seed)
    core = SignalCore(CoreConfig(ring_timeout=5, resume_window=3, call_server="wss://cs", group_threshold=2,
                                 friends_only=False), random=lambda n: rng.randbytes(n))
    now = 0.0
    sessions = [core.handle_connect(u, now) for u in USERS]
    ids: list[str] = []
    incoming: list[tuple[str, str]] = []  # (session, call id) that rang
    for kind, a, b, c in actions:
        sid = sessions[a % len(sessions)]
        target_sid = sessions[b % len(sessions)]
        some_id = ids[-1 - c % min(len(ids), 3)] if ids else "0" * 32  # mostly recent ids
        if kind == "tick":
            now += c * 1.5
            core.handle_timeout(now)
        elif kind == "disconnect":
            core.handle_disconnect(sid, now)
        elif kind == "connect":
            sessions.append(core.handle_connect(USERS[a % 4], now))
        elif kind == "answer" and incoming:
            ringing_sid, call_id = incoming[-1 - c % min(len(incoming), 2)]
            core.handle_text(ringing_sid, json.dumps({"v": 1, "type": "call.accept", "id": "a",
                                                      "payload": {"call_id": call_id}}), now)
        elif kind == "garbage":
            core.handle_text(sid, ["{", "[]", '{"v":1,"type":"call.accept","payload":{"call_id":7}}'][c % 3], now)
        else:
            kind = "ping" if kind == "answer" else kind
            payload = {
                "call.invite": {"to": USERS[b % 4], "media": ["audio"]},
                "room.create": {},
                "room.invite": {"room_id": some_id, "to": USERS[c]},
                "room.join": {"room_id": some_id},
                "room.leave": {"room_id": some_id},
                "room.signal": {"room_id": some_id, "to": target_sid, "kind": "offer", "sdp": "v=0"},
                "room.record": {"room_id": some_id, "action": ["start", "stop"][c % 2]},
                "call.reject": {"call_id": some_id, "reason": "declined"},
                "call.offer": {"call_id": some_id, "sdp": "v=0"},
                "call.candidate": {"call_id": some_id, "candidate": {"candidate": "c"}},
                "ping": {},
            }.get(kind, {"call_id": some_id})
            core.handle_text(sid, json.dumps({"v": 1, "type": kind, "id": "x", "payload": payload}), now)
        while (out := core.poll_transmit()) is not None:
            message = json.loads(out.text)
            if message["type"] == "call.incoming":
                incoming.append((out.session_id, message["payload"]["call_id"]))
            for key in ("call_id", "room_id"):
                value = message["payload"].get(key)
                if isinstance(value, str) and value not in ids:
                    ids.append(value)
        while core.poll_event() is not None:
            pass
        check_invariants(core)

"""Call-server placement and failover, sans-IO: Placement alone, then through SignalCore, on a fake clock."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netcore.sfu.topology import ServerRecord
from servers.signal.core import CallServerDown, MediaOffered, RecordingRequested, RoomMoved
from servers.signal.events import MediaLeft, MediaQualityRequested, StudioCommanded
from servers.signal.events import CallServerSuspect
from servers.signal.placement import (FLAP_MEMORY, MOVE_BURST, MOVE_RATE, PROBE_TIMEOUT, REPORT_TIMEOUT,
                                      SETTLE, SILENT_GRACE, Load, LoopLag, MoveBudget, MoveBudgets, Placement,
                                      Settling, below_level, hold_after)

from .test_core import Harness


def load(participants=0, pps=0.0, rooms=0, tracks=0) -> Load:
    return Load(participants, rooms, tracks, pps)


# --- Placement alone -----------------------------------------------------------------


def test_rooms_go_to_the_least_loaded_server_counting_what_was_placed_since_its_report():
    p = Placement()
    p.link("a", 0.0)
    p.link("b", 0.0)
    p.report("a", load(participants=10), 0.1)
    p.report("b", load(participants=2), 0.1)
    weights = {"r1": 5, "r2": 5, "r3": 5}
    assert p.place("r1", weights.get, 0.2) == "b"  # 2 < 10
    assert p.place("r2", weights.get, 0.2) == "b"  # b: max(2, 5) = 5 < 10
    assert p.place("r3", weights.get, 0.2) == "a"  # tie at 10 participants and 0 packets/s: a has fewer rooms
    assert p.place("r1", weights.get, 0.2) == "b"  # placed rooms stay
    p.report("b", load(participants=30), 0.6)  # b's report now covers more than we placed
    assert p.place("r4", lambda r: 5, 0.7) == "a"


def test_packet_rate_breaks_participant_ties():
    p = Placement()
    for name in ("a", "b"):
        p.link(name, 0.0)
    p.report("a", load(participants=4, pps=900.0), 0.0)
    p.report("b", load(participants=4, pps=300.0), 0.0)
    assert p.place("r", lambda r: 0, 0.0) == "b"


def test_a_reporting_server_that_goes_silent_is_suspect_then_dead_and_an_unreporting_one_never_is():
    p = Placement()
    p.link("old", 0.0)  # never reports: live while linked
    p.link("new", 0.0)
    assert p.next_deadline() is None
    p.report("new", load(), 1.0)
    assert p.next_deadline() == 1.0 + REPORT_TIMEOUT
    assert p.check(1.0 + REPORT_TIMEOUT - 0.01) == ([], [])
    assert p.check(1.0 + REPORT_TIMEOUT) == ([("new", 1)], [])  # suspect: its link is to be pinged
    assert p.trusted(1.0 + REPORT_TIMEOUT) == ["old"]
    p.answered("new", 1)  # the ping answered: dead only at the end of the grace
    assert p.next_deadline() == 1.0 + REPORT_TIMEOUT + SILENT_GRACE
    assert p.check(1.0 + REPORT_TIMEOUT + SILENT_GRACE - 0.01) == ([], [])
    assert p.check(1.0 + REPORT_TIMEOUT + SILENT_GRACE) == ([], [("new", "silent")])
    p.place("r", lambda r: 1, 0.0)
    assert p.unlink(p.server_of("r")) == ["r"] and p.server_of("r") is None


def test_load_reports_are_validated():
    assert Load.from_payload({"participants": 3, "rooms": 1, "tracks": 6, "packets_per_second": 12.5}) == \
        Load(3, 1, 6, 12.5)
    for bad in ({"participants": -1, "rooms": 0, "tracks": 0, "packets_per_second": 0},
                {"participants": True, "rooms": 0, "tracks": 0, "packets_per_second": 0},
                {"participants": 1, "rooms": 0, "tracks": 0, "packets_per_second": float("nan")},
                {"participants": 1, "rooms": 0, "tracks": "2", "packets_per_second": 0},
                {"participants": 10**12, "rooms": 0, "tracks": 0, "packets_per_second": 0}):
        with pytest.raises(ValueError):
            Load.from_payload(bad)
    with pytest.raises(KeyError):
        Load.from_payload({"participants": 1})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("place release link unlink".split()),
                          st.integers(0, 5), st.integers(0, 3)), max_size=60))
def test_every_placed_room_is_on_exactly_one_live_server(ops):
    p = Placement()
    for op, room, server in ops:
        name, room_id = f"s{server}", f"r{room}"
        if op == "place":
            got = p.place(room_id, lambda r: 1, 0.0)
            assert (got is None) == (not p.servers)
        elif op == "release":
            p.release(room_id)
        elif op == "link":
            p.link(name, 0.0)
        else:
            for gone in p.unlink(name):
                assert p.server_of(gone) is None
        for room_id in (f"r{i}" for i in range(6)):
            holders = [s.name for s in p.servers.values() if room_id in s.rooms]
            where = p.server_of(room_id)
            assert holders == ([] if where is None else [where])


# --- through the core ----------------------------------------------------------------


def sfu_room(h: Harness, size: int = 5):
    """``size`` friends in one room above the threshold (4): (session ids, room id)."""
    names = [f"user{i}" for i in range(size)]
    sids = [h.connect(n, friends=set(names) - {n}) for n in names]
    h.send(sids[0], "room.create", {})
    room_id = [m for s, m in h.drain() if m["type"] == "ack"][0]["payload"]["room_id"]
    for sid, name in zip(sids[1:], names[1:]):
        h.send(sids[0], "room.invite", {"room_id": room_id, "to": name})
        h.send(sid, "room.join", {"room_id": room_id})
    h.drain()
    return sids, room_id


def room_of_two(h: Harness, i: int) -> tuple[str, str, str]:
    """Owner ``own{i}`` and guest ``gst{i}`` in a new room: (room id, owner's session, guest's session)."""
    owner, guest = h.connect(f"own{i}"), h.connect(f"gst{i}")
    h.send(owner, "room.create", {})
    room_id = [m for s, m in h.drain() if m["type"] == "ack"][0]["payload"]["room_id"]
    h.send(owner, "room.invite", {"room_id": room_id, "to": f"gst{i}"})
    h.send(guest, "room.join", {"room_id": room_id})
    h.drain()
    return room_id, owner, guest


def messages(out, kind):
    return {sid: m["payload"] for sid, m in out if m["type"] == kind}


def report(h: Harness, name: str, participants: int = 0) -> None:
    h.core.handle_call_server_load(name, {"participants": participants, "rooms": 0, "tracks": 0,
                                          "packets_per_second": 0.0}, h.now)


def test_a_room_above_the_threshold_is_placed_on_a_linked_server_and_offers_go_there():
    h = Harness(group_threshold=4, friends_only=False)
    h.core.handle_call_server_linked("a", h.now)
    h.core.handle_call_server_linked("b", h.now)
    report(h, "a", 7)
    report(h, "b", 1)
    sids, room_id = sfu_room(h)
    assert h.core.room_call_server(room_id) == "b"
    h.send(sids[0], "room.media", {"room_id": room_id, "sdp": "v=0"})
    offered = [e for e in h.events() if isinstance(e, MediaOffered)]
    assert offered[-1].call_server == "b"


def room_on_one_of_two() -> tuple:
    """Two reporting call servers and a room of five on one: (harness, sids, room id, its server, the other)."""
    h = Harness(group_threshold=4, friends_only=False)
    for name in ("a", "b"):
        h.core.handle_call_server_linked(name, h.now)
        report(h, name)
    sids, room_id = sfu_room(h)
    first = h.core.room_call_server(room_id)
    return h, sids, room_id, first, "b" if first == "a" else "a"


def test_a_dead_servers_rooms_move_and_every_participant_is_told():
    h, sids, room_id, first, other = room_on_one_of_two()
    h.events()
    h.core.handle_call_server_unlinked(first, h.now)
    moved = messages(h.drain(), "room.moved")
    assert set(moved) == set(sids)
    assert all(m == {"room_id": room_id, "call_server": other, "previous": first, "reason": "failover"}
               for m in moved.values())
    events = h.events()
    assert CallServerDown(first, "unlinked", 1) in events
    assert RoomMoved(room_id, first, other, "failover") in events
    h.send(sids[2], "room.media", {"room_id": room_id, "sdp": "v=0"})
    assert [e for e in h.events() if isinstance(e, MediaOffered)][-1].call_server == other


def silence(h: Harness, alive: str, seconds: float) -> None:
    """``seconds`` on the fake clock in 0.5 s steps, ``alive`` reporting at each."""
    for _ in range(round(seconds / 0.5)):
        h.advance(0.5)
        report(h, alive)


def test_a_late_but_linked_server_is_suspect_gets_no_new_room_and_keeps_its_own_until_the_grace():
    h, sids, room_id, silent, alive = room_on_one_of_two()
    report(h, alive, 50)  # the live one is far busier: a new room would go to the silent one if it were trusted
    h.events()
    silence(h, alive, REPORT_TIMEOUT - 0.5)
    assert not [e for e in h.events() if isinstance(e, CallServerSuspect)]  # 1.5 s: not even suspect
    silence(h, alive, 0.5)
    (suspect,) = [e for e in h.events() if isinstance(e, CallServerSuspect)]
    assert suspect.name == silent  # its link is to be pinged
    h.core.handle_call_server_pong(silent, suspect.probe, h.now)  # and answers: its process is there
    _, other_room = sfu_room(h)
    assert h.core.room_call_server(other_room) == alive  # no new room for a suspect
    silence(h, alive, SILENT_GRACE - 0.5)  # 7.5 s of silence: its room and participants stay
    assert h.core.room_call_server(room_id) == silent
    assert not messages(h.drain(), "room.moved") and not [e for e in h.events() if isinstance(e, CallServerDown)]
    silence(h, alive, 0.5)  # the grace is over: dead although linked
    assert h.core.room_call_server(room_id) == alive
    assert set(messages(h.drain(), "room.moved")) == set(sids)
    assert CallServerDown(silent, "silent", 1) in h.events()
    assert silent not in h.core.placement


def test_a_suspect_that_does_not_answer_its_ping_is_dead_after_the_probe_timeout():
    h, sids, room_id, silent, alive = room_on_one_of_two()
    silence(h, alive, REPORT_TIMEOUT)
    assert [e.name for e in h.events() if isinstance(e, CallServerSuspect)] == [silent]
    silence(h, alive, PROBE_TIMEOUT - 0.5)
    assert h.core.room_call_server(room_id) == silent
    silence(h, alive, 0.5)  # no pong: a stopped process, not a busy one
    assert h.core.room_call_server(room_id) == alive
    assert CallServerDown(silent, "unanswered", 1) in h.events()


def test_a_suspect_that_reports_again_is_trusted_again():
    h, sids, room_id, late, alive = room_on_one_of_two()
    report(h, alive, 50)
    silence(h, alive, REPORT_TIMEOUT + 1.0)
    _, second = sfu_room(h)
    assert h.core.room_call_server(second) == alive
    report(h, late)  # back before the grace: it never died, no back-off
    _, third = sfu_room(h)
    assert h.core.room_call_server(third) == late  # the least loaded again
    for _ in range(round(2 * SILENT_GRACE)):  # both report on: nothing is held against it
        silence(h, alive, 0.5)
        report(h, late)
    assert h.core.room_call_server(room_id) == late and not messages(h.drain(), "room.moved")
    assert not [e for e in h.events() if isinstance(e, CallServerDown)]


def test_a_closed_link_moves_its_rooms_at_once_even_while_suspect():
    h, sids, room_id, first, other = room_on_one_of_two()
    silence(h, other, REPORT_TIMEOUT + 0.5)
    h.drain()
    h.core.handle_call_server_unlinked(first, h.now)  # its process is gone: no grace
    assert set(messages(h.drain(), "room.moved")) == set(sids)
    assert h.core.room_call_server(room_id) == other


def test_a_stalled_own_loop_declares_nobody_suspect_or_dead():
    h, sids, room_id, first, other = room_on_one_of_two()
    h.events()
    # our loop is held up 30 s: both servers' reports wait unread in the sockets; the timer and the
    # loop-lag tick run first when the loop runs again, and the stall is given to the core first
    h.now += 30.0
    h.core.handle_loop_stall(30.0, h.now)
    h.core.handle_timeout(h.now)
    assert not [e for e in h.events() if isinstance(e, (CallServerSuspect, CallServerDown))]
    assert h.core.room_call_server(room_id) == first and not messages(h.drain(), "room.moved")
    report(h, first)  # the reports that waited are read
    report(h, other)
    # a silence after the stall is counted as usual: suspect at REPORT_TIMEOUT
    silence(h, other, REPORT_TIMEOUT)
    assert [e.name for e in h.events() if isinstance(e, CallServerSuspect)] == [first]


def test_a_stall_during_a_suspects_ping_does_not_count_against_it():
    h, sids, room_id, silent, alive = room_on_one_of_two()
    silence(h, alive, REPORT_TIMEOUT)
    (suspect,) = [e for e in h.events() if isinstance(e, CallServerSuspect)]
    h.now += PROBE_TIMEOUT
    h.core.handle_loop_stall(PROBE_TIMEOUT, h.now)  # the pong waited unread in the socket too
    h.core.handle_timeout(h.now)
    h.core.handle_call_server_pong(silent, suspect.probe, h.now)
    assert h.core.room_call_server(room_id) == silent


def test_loop_lag_counts_each_stall_once_whichever_sees_it_first():
    lag = LoopLag(tick=0.1, tolerance=0.05)
    assert lag.tick(10.0) == 0.0 and lag.expected == pytest.approx(10.1)
    assert lag.tick(10.12) == 0.0  # 20 ms late: within the tolerance
    assert lag.observe(10.2) == 0.0  # a deadline before the tick is due: nothing to say
    assert lag.observe(13.22) == pytest.approx(3.0)  # the tick due at 10.22 is 3 s overdue: a stall
    assert lag.tick(13.22) == 0.0  # the overdue tick itself, run next: already counted
    assert lag.tick(13.32) == 0.0


# --- moves off a dead server: bounded per second, spread by projected load ----------------


def viewers_on_one_edge(h: Harness, edges: tuple[str, ...], viewers: int, origin: bool) -> tuple[str, str]:
    """A room of ``viewers`` eu viewers, all placed on ``edges[0]`` (the others' records read 1000 meanwhile),
    the room itself on a call server of its own ("origin") if ``origin``: (its owner's session, its id)."""
    if origin:
        h.core.handle_call_server_linked("origin", h.now)
        owner = h.connect("owner")
        h.send(owner, "room.create", {})
    for name in edges:
        h.core.handle_call_server_linked(name, h.now)
    h.core.handle_edges([edge(edges[0], "eu", 0)] + [edge(name, "eu", 1000) for name in edges[1:]])
    if not origin:
        owner = h.connect("owner")
        h.send(owner, "room.create", {})
    room_id = [m for s, m in h.drain() if m["type"] == "ack"][0]["payload"]["room_id"]
    placed = {viewer_joins(h, owner, room_id, f"viewer{n}", "eu")[1]["call_server"] for n in range(viewers)}
    assert placed == {edges[0]}
    return owner, room_id


def edge_dies(h: Harness, records: list[ServerRecord], steps: int, step: float = 0.5) -> list[dict]:
    """Long after the viewers were placed (settled into the records), the records as last read are
    ``records`` (stale from here on) and the first of them dies: the ``room.moved`` sent at once, then
    after each of ``steps`` steps of ``step`` seconds."""
    h.advance(10.0)
    h.core.handle_edges(records)
    h.drain()
    h.core.handle_call_server_unlinked(records[0].name, h.now)
    moved = [messages(h.drain(), "room.moved")]
    for _ in range(steps):
        h.advance(step)
        moved.append(messages(h.drain(), "room.moved"))
    return moved


def test_a_dead_edges_viewers_move_at_each_survivors_budgets_pace_and_spread_by_projected_load():
    h = Harness(group_threshold=0, friends_only=False, max_room_size=200, rate=1000.0, burst=1000.0)
    owner, _ = viewers_on_one_edge(h, ("eu-a", "eu-b", "eu-c"), 100, origin=False)  # the room on eu-a too
    # eu-b carries 10 viewers of other nodes, eu-c none
    moved = edge_dies(h, [edge("eu-a", "eu", 100), edge("eu-b", "eu", 10), edge("eu-c", "eu", 0)], 4)
    # 101 to move (the room, first: its owner; then the 100 viewers), 40 at once onto each of the two
    # survivors, then 40 a second each
    assert [len(m) for m in moved] == [2 * MOVE_BURST, 101 - 2 * MOVE_BURST, 0, 0, 0]
    assert h.core.moves_pending == 0
    to = Counter(m["call_server"] for batch in moved for sid, m in batch.items() if sid != owner)
    # each survivor weighs its record plus the viewers just moved onto it, not its stale record alone
    assert abs((10 + to["eu-b"]) - (0 + to["eu-c"])) <= 1, to


def test_an_edge_dying_with_300_viewers_among_four_is_emptied_within_5_s_and_no_survivor_gets_more_than_its_rate():
    h = Harness(group_threshold=0, friends_only=False, max_room_size=400, rate=1e6, burst=1e6)
    edges = ("edge-a", "edge-b", "edge-c", "edge-d")
    viewers_on_one_edge(h, edges, 300, origin=True)
    # edge-b carries nobody: by load alone it would take the first 100 at once
    moved = edge_dies(h, [edge("edge-a", "eu", 300), edge("edge-b", "eu", 0), edge("edge-c", "eu", 100),
                          edge("edge-d", "eu", 100)], 50, 0.1)
    onto: Counter = Counter()
    for n, batch in enumerate(moved):  # what each survivor was sent by then: its burst and its rate since
        onto.update(m["call_server"] for m in batch.values())
        for name in edges[1:]:
            assert onto[name] <= MOVE_BURST + MOVE_RATE * 0.1 * n + 1e-6, (n, onto)
    assert h.core.moves_pending == 0 and sum(onto.values()) == 300, onto  # all told within 5 s
    assert set(onto) == set(edges[1:])  # every survivor took its share


def test_a_survivor_above_the_level_the_dead_edges_viewers_bring_the_others_to_gets_none_of_them():
    h = Harness(group_threshold=0, friends_only=False, max_room_size=200, rate=1e6, burst=1e6)
    viewers_on_one_edge(h, ("eu-a", "eu-b", "eu-c"), 100, origin=True)
    # eu-c carries 300 of other nodes' viewers: even with eu-a's 100 all on eu-b, eu-b stays below it
    moved = edge_dies(h, [edge("eu-a", "eu", 100), edge("eu-b", "eu", 0), edge("eu-c", "eu", 300)], 4)
    # eu-c's budget would take 40 at once, but they would leave the survivors less even than eu-b alone:
    # they wait for eu-b's budget
    assert {m["call_server"] for batch in moved for m in batch.values()} == {"eu-b"}
    assert [len(m) for m in moved] == [MOVE_BURST, MOVE_RATE / 2, MOVE_RATE / 2, MOVE_RATE / 2, 0]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.tuples(st.integers(0, 1000), st.integers(1, 500)), min_size=1),
       st.integers(1, 1000))
def test_the_least_loaded_survivor_is_always_below_the_level_and_none_above_it_is_less_loaded(loads, coming):
    loads = {name: (float(load), float(capacity)) for name, (load, capacity) in loads.items()}
    least = min(load / capacity for load, capacity in loads.values())
    below = below_level(loads, coming)
    assert any(loads[name][0] / loads[name][1] == least for name in below)
    share = {name: load / capacity for name, (load, capacity) in loads.items()}
    assert all(share[out] >= share[name] for out in set(loads) - set(below) for name in below)  # from the bottom


def test_the_level_is_where_the_coming_participants_fill_the_least_loaded_up_to():
    assert below_level({"a": (0.0, 1.0), "b": (100.0, 1.0), "c": (100.0, 1.0)}, 300) == ["a", "b", "c"]
    # 100 coming fill a up to b's 100: b gets none of them (the mean of all three, 167, would give it some)
    assert below_level({"a": (0.0, 1.0), "b": (100.0, 1.0), "c": (300.0, 1.0)}, 100) == ["a"]
    assert below_level({"a": (0.0, 100.0), "b": (100.0, 10.0)}, 500) == ["a"]  # by share: b is at 10, a at 5


def test_move_budgets_offer_the_survivors_whose_budget_takes_the_move_and_when_the_next_one_will():
    budgets = MoveBudgets(rate=10.0, burst=20.0)
    assert budgets.ready(["b", "c"], 15, 0.0) == ["b", "c"]
    budgets.take("b", 15, 0.0)
    assert budgets.ready(["b", "c"], 15, 0.0) == ["c"]  # b has 5 left
    budgets.take("c", 15, 0.0)
    assert budgets.ready(["b", "c"], 15, 0.5) == [] and budgets.ready_at(["b", "c"], 15) == pytest.approx(1.0)
    assert budgets.ready_at(["b", "d"], 15) == 0.5  # d linked since: at once (the latest time asked about)
    assert budgets.ready_at([], 1) == 0.5  # nowhere to go: at once
    budgets.keep({"c"})  # b is gone: if it links again it starts full
    assert budgets.ready(["b"], 20, 0.6) == ["b"]


def test_the_rooms_of_a_dead_server_move_in_batches_a_large_room_whole():
    h = Harness(group_threshold=1, friends_only=False)
    for name in ("a", "b"):
        h.core.handle_call_server_linked(name, h.now)
    rooms = []
    for i in range(30):  # 30 rooms of two, all on a (b is far busier)
        report(h, "b", 1000)
        rooms.append(room_of_two(h, i)[0])
    assert {h.core.room_call_server(r) for r in rooms} == {"a"}
    h.drain()
    h.core.handle_call_server_unlinked("a", h.now)
    told = [len(messages(h.drain(), "room.moved"))]  # participants told, two per room
    for _ in range(3):
        h.advance(0.5)
        told.append(len(messages(h.drain(), "room.moved")))
    assert told == [MOVE_BURST, MOVE_RATE / 2, 0, 0] and h.core.moves_pending == 0


def test_rooms_moved_off_a_dead_server_weigh_on_their_new_one_on_top_of_its_stale_report():
    p = Placement()
    for name in ("b", "c"):
        p.link(name, 0.0)
    p.report("b", load(participants=10), 0.0)  # 10 of other nodes' participants; c carries none
    p.report("c", load(), 0.0)
    got = Counter(p.place(f"r{i}", lambda r: 2, 0.1, moved=True) for i in range(10))
    assert abs((10 + 2 * got["b"]) - 2 * got["c"]) <= 2, got  # even to within one room of two
    fresh = Placement()  # a fresh placement (not a move) weighs the larger of report and what was placed
    for name in ("b", "c"):
        fresh.link(name, 0.0)
    fresh.report("b", load(participants=10), 0.0)
    assert Counter(fresh.place(f"r{i}", lambda r: 2, 0.1) for i in range(10)) == {"c": 5, "b": 5}


def test_participants_moved_onto_a_server_weigh_on_it_until_settle_has_passed_and_a_gone_one_is_forgotten():
    settling = Settling()
    settling.add("b", 3, 0.0)
    settling.add("b", 1, 2.0)
    settling.add("c", 2, 0.0)
    assert (settling.weight("b", 1.0), settling.weight("c", 1.0), settling.weight("d", 1.0)) == (4, 2, 0)
    assert settling.weight("b", SETTLE) == 1  # the first 3 have settled into b's load by now
    assert settling.weight("b", SETTLE + 2.0) == 0
    settling.keep({"b"})  # c is gone: if it comes back, it starts with none
    assert settling.weight("c", 1.0) == 0


@settings(max_examples=200, deadline=None)
@given(st.floats(1.0, 500.0), st.lists(st.integers(1, 60), min_size=1, max_size=20), st.floats(0.0, 1e8))
def test_move_budget_always_takes_at_the_time_it_names(rate, moves, start):
    budget = MoveBudget(rate=rate, burst=40.0)
    now = start
    for participants in moves:  # what the core does: retry at ready_at(), which must then succeed
        if not budget.take(participants, now):
            now = budget.ready_at(participants)
            assert budget.take(participants, now)


def test_move_budget_lets_a_room_larger_than_the_burst_go_whole_when_full():
    budget = MoveBudget(rate=10.0, burst=20.0)
    assert budget.take(50, 0.0)  # full: the big room goes, the bucket is in debt
    assert not budget.take(1, 1.0) and budget.ready_at(1) == pytest.approx(3.1, abs=1e-5)
    assert budget.take(1, 3.1)
    assert budget.take(15, 5.0) and not budget.take(10, 5.0)


# --- a server that flaps is held back longer each time ----------------------------------------


def test_hold_after_grows_with_each_remembered_death_up_to_the_cap():
    assert [hold_after(n) for n in range(1, 9)] == [0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_a_flapping_servers_back_off_grows_and_it_is_trusted_again_after_it():
    p = Placement()
    p.link("steady", 0.0)
    p.report("steady", load(participants=100), 0.0)
    now, holds = 0.0, []
    for _ in range(5):
        p.link("flappy", now)
        p.report("flappy", load(), now)
        held = []
        for t in (0.0, 1.0, 3.0, 7.0, 15.0, 31.0):
            p.report("steady", load(participants=100), now + t)  # the other one reports on
            p.report("flappy", load(), now + t)  # and so does it: only its back-off holds it
            if "flappy" not in p.trusted(now + t):
                held.append(t)
        holds.append(max(held, default=None))
        assert p.place(f"r{now}", lambda r: 1, now + 31.0) == "flappy"  # trusted after its hold: placed
        p.release(f"r{now}")
        now += 40.0
        p.unlink("flappy", now)  # dies again
    # the first comeback (after one death) is trusted at once; then 2, 4, 8, 16 s of suspicion
    assert holds == [None, None, 1.0, 3.0, 7.0]
    assert p.servers["steady"] and "flappy" not in p.servers
    p.link("flappy", now + FLAP_MEMORY + 1)  # its deaths are forgotten after FLAP_MEMORY
    assert "flappy" in p.trusted(now + FLAP_MEMORY + 1)


def test_a_server_held_after_a_flap_gets_no_room_while_a_trusted_one_is_there():
    h, sids, room_id, first, other = room_on_one_of_two()
    report(h, other, 50)
    for _ in range(2):  # dies twice
        h.core.handle_call_server_unlinked(first, h.now)
        h.advance(1.0)
        h.core.handle_call_server_linked(first, h.now)
        report(h, first)
        report(h, other, 50)
    _, held = sfu_room(h)
    assert h.core.room_call_server(held) == other  # held 2 s after its second death
    h.advance(2.0)
    report(h, first)
    report(h, other, 50)
    _, trusted = sfu_room(h)
    assert h.core.room_call_server(trusted) == first


def test_without_a_live_server_the_room_waits_and_is_placed_when_one_links():
    h = Harness(group_threshold=4, friends_only=False)
    h.core.handle_call_server_linked("a", h.now)
    sids, room_id = sfu_room(h)
    h.core.handle_call_server_unlinked("a", h.now)
    moved = messages(h.drain(), "room.moved")
    assert set(moved) == set(sids) and all(m["call_server"] is None for m in moved.values())
    h.core.handle_call_server_linked("c", h.now)
    moved = messages(h.drain(), "room.moved")
    assert set(moved) == set(sids)
    assert all(m["call_server"] == "c" and m["reason"] == "placed" for m in moved.values())


def test_rooms_spread_over_servers_and_an_ended_room_frees_its_place():
    h = Harness(group_threshold=1, friends_only=False)
    for name in ("a", "b", "c"):
        h.core.handle_call_server_linked(name, h.now)
    rooms = []
    for i in range(6):
        rooms.append(room_of_two(h, i))
    placed = [h.core.room_call_server(r) for r, _, _ in rooms]
    assert sorted(placed) == ["a", "a", "b", "b", "c", "c"]
    room_id, owner, guest = rooms[0]
    for sid in (owner, guest):
        h.send(sid, "room.leave", {"room_id": room_id})
    assert len(h.core.placement.servers[placed[0]].rooms) == 1


def test_the_rooms_call_server_travels_in_its_snapshot_to_a_node_that_adopts_it():
    from servers.signal.core import CoreConfig, RoomChanged, SignalCore

    from .test_core import seeded

    owner = Harness(group_threshold=4, friends_only=False)
    owner.core = SignalCore(CoreConfig(group_threshold=4, friends_only=False), random=seeded(), node_id="n1",
                            journal=True)
    owner.core.handle_call_server_linked("a", owner.now)
    _, room_id = sfu_room(owner)
    snapshot = [e for e in owner.events() if isinstance(e, RoomChanged)][-1].snapshot
    assert snapshot["call_server"] == "a" and snapshot["topology"] == "sfu"
    # a node that has the same call server linked keeps the room there
    same = SignalCore(CoreConfig(group_threshold=4), random=seeded(2), node_id="n2", journal=True)
    same.handle_call_server_linked("a", owner.now)
    same.adopt_room(snapshot, owner.now)
    assert same.room_call_server(room_id) == "a" and room_id in same.placement.servers["a"].rooms
    # one that does not leaves it unplaced until its first offer (placed then on what it has)
    other = SignalCore(CoreConfig(group_threshold=4), random=seeded(3), node_id="n3", journal=True)
    other.handle_call_server_linked("b", owner.now)
    other.adopt_room(snapshot, owner.now)
    assert other.room_call_server(room_id) is None and not other.placement.servers["b"].rooms


def test_a_recorded_room_that_moves_is_recorded_on_its_new_server():
    h, sids, room_id, first, other = room_on_one_of_two()
    h.send(sids[0], "room.record", {"room_id": room_id, "action": "start"})
    assert RecordingRequested(room_id, "start", "user0", first) in h.events()
    h.core.handle_call_server_unlinked(first, h.now)
    assert RecordingRequested(room_id, "start", "user0", other) in h.events()


def test_a_studio_that_moves_is_started_on_its_new_server():
    h, sids, room_id, first, other = room_on_one_of_two()
    h.send(sids[0], "studio.start", {"room_id": room_id})
    assert StudioCommanded(room_id, "studio.start", {}, "user0", first) in h.events()
    h.core.handle_call_server_unlinked(first, h.now)
    assert StudioCommanded(room_id, "studio.start", {}, "user0", other) in h.events()


# --- a broadcast's viewers, each on an edge of its region (servers/signal/edges.py) ----


def edge(name: str, region: str, load: int = 0) -> ServerRecord:
    return ServerRecord(name, "edge", region, f"ws://{name}:7100/", load, 100)


def watched_room(h: Harness) -> tuple[str, str]:
    """Edges eu-a (load 5), eu-b (load 1), us (load 0) and a tier-2 server in the registry, all linked but
    eu-c (registered only); a room on the call server: (its owner's session, room id)."""
    for name in ("eu-a", "eu-b", "us", "t2"):
        h.core.handle_call_server_linked(name, h.now)
    h.core.handle_edges([edge("eu-a", "eu", 5), edge("eu-b", "eu", 1), edge("eu-c", "eu", 0), edge("us", "us"),
                         ServerRecord("t2", "tier2", "eu", "ws://t2:7100/", 0, 100)])
    owner = h.connect("owner")
    h.send(owner, "room.create", {})
    room_id = [m for s, m in h.drain() if m["type"] == "ack"][0]["payload"]["room_id"]
    return owner, room_id


def viewer_joins(h: Harness, owner: str, room_id: str, user: str, region: str | None) -> tuple[str, dict]:
    sid = h.connect(user)
    h.send(owner, "room.invite", {"room_id": room_id, "to": user})
    h.send(sid, "room.join", {"room_id": room_id, **({"region": region} if region else {})})
    (ack,) = [m["payload"] for s, m in h.drain() if s == sid and m["type"] == "ack"]
    return sid, ack


def test_a_viewer_that_says_its_region_is_placed_on_its_regions_least_loaded_linked_edge():
    h = Harness(group_threshold=0, friends_only=False)
    owner, room_id = watched_room(h)
    room_server = h.core.room_call_server(room_id)
    sid, ack = viewer_joins(h, owner, room_id, "viewer1", "eu")
    assert ack["call_server"] == "eu-b" and ack["edge"] == {"name": "eu-b", "region": "eu"}  # eu-c: not linked
    h.send(sid, "room.media", {"room_id": room_id, "sdp": "v=0"})
    h.send(sid, "room.quality", {"room_id": room_id, "publisher": "p", "track": "0", "max_height": 180})
    assert [e.call_server for e in h.events() if isinstance(e, (MediaOffered, MediaQualityRequested))] == \
        ["eu-b", "eu-b"]
    # eu-b's record still says 1; it weighs the larger of that and the viewers placed there since, so a
    # burst goes to eu-b until it weighs as much as eu-a (5), then to eu-a (the first name at a tie)
    placed = [viewer_joins(h, owner, room_id, f"viewer{n}", "eu")[1]["call_server"] for n in range(2, 8)]
    assert placed == ["eu-b", "eu-b", "eu-b", "eu-b", "eu-a", "eu-a"]
    assert viewer_joins(h, owner, room_id, "farviewer", "ap")[1]["call_server"] == "us"  # no edge in ap: anywhere's
    plain = viewer_joins(h, owner, room_id, "plainviewer", None)[1]
    assert plain["call_server"] == room_server and "edge" not in plain  # no region: the room's server
    h.send(sid, "room.leave", {"room_id": room_id})
    assert [e.call_server for e in h.events() if isinstance(e, MediaLeft)] == ["eu-b"]


def test_an_edges_death_moves_its_viewers_alone_and_the_rooms_move_leaves_them_on_their_edges():
    h = Harness(group_threshold=0, friends_only=False)
    owner, room_id = watched_room(h)
    eu, _ = viewer_joins(h, owner, room_id, "viewer1", "eu")
    us, _ = viewer_joins(h, owner, room_id, "viewer2", "us")
    h.drain()
    h.events()
    h.core.handle_call_server_unlinked("eu-b", h.now)
    moved = messages(h.drain(), "room.moved")
    assert moved == {eu: {"room_id": room_id, "call_server": "eu-a", "previous": "eu-b", "reason": "failover"}}
    assert RoomMoved(room_id, "eu-b", "eu-a", "failover") in h.events()
    h.core.handle_edges([edge("eu-a", "eu", 5), edge("us", "us")])  # eu-b's record expired
    late, ack = viewer_joins(h, owner, room_id, "viewer3", "eu")
    assert ack["call_server"] == "eu-a"
    assert h.core.room_call_server(room_id) == "eu-a"  # the room too (all unreported: the first name)
    h.drain()
    h.core.handle_call_server_unlinked("eu-a", h.now)  # the room moves; eu-a's viewers go to another edge
    moved = messages(h.drain(), "room.moved")
    assert set(moved) == {owner, eu, late}  # not the viewer on the us edge
    assert moved[owner]["call_server"] == h.core.room_call_server(room_id) != "eu-a"
    assert moved[eu]["call_server"] == moved[late]["call_server"] == "us"  # no eu edge left: anywhere's
    h.events()
    h.core.handle_call_server_unlinked("us", h.now)  # no edge left: each viewer to the room's server, told once
    told = [(sid, m["payload"]["call_server"]) for sid, m in h.drain() if m["type"] == "room.moved"]
    assert sorted(told) == sorted((sid, h.core.room_call_server(room_id)) for sid in (eu, late, us))
    h.send(us, "room.media", {"room_id": room_id, "sdp": "v=0"})
    assert [e.call_server for e in h.events() if isinstance(e, MediaOffered)] == [h.core.room_call_server(room_id)]

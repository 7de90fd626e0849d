"""The schema, the folds and the producer, without a worker process."""

from __future__ import annotations

import json
import os

from hypothesis import given, settings, strategies as st

from servers.analytics.aggregate import fold_call, mos
from servers.analytics.events import EVENTS, VERSION, EventParseError, UnknownEventError, validate
from servers.analytics.producer import AnalyticsProducer, JsonLinesWriter, RedisStreamWriter
from servers.analytics.sources import Batch
from servers.analytics.synth import synthesize
from servers.analytics.worker import sort_batch
from tests.conftest import free_port

EVENTS_OF_A_DAY, _ = synthesize(seed=3, calls=60)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20)


def test_every_generated_record_round_trips_through_json_and_validates():
    names = set()
    for rec in EVENTS_OF_A_DAY:
        assert validate(json.loads(json.dumps(rec))) == rec
        names.add(rec["event"])
    assert names <= set(EVENTS) and {"call.quality", "turn.allocation.deleted"} <= names


@given(json_values)
def test_anything_is_a_record_or_an_event_parse_error(value):
    try:
        validate(value)
    except EventParseError:
        pass


@given(st.sampled_from(EVENTS_OF_A_DAY), st.sampled_from(["id", "time", "v", "node", "event", "call_id", "rtt_ms",
                                                          "lifetime", "reason"]), json_values)
def test_a_field_replaced_by_anything_still_gives_only_event_parse_errors(rec, key, value):
    try:
        validate(dict(rec, **{key: value}))
    except EventParseError:
        pass


@given(st.lists(st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")), max_size=10))
def test_the_worker_sorts_any_text_into_records_and_rejects(lines):
    records, rejects = sort_batch(Batch([(str(n), line) for n, line in enumerate(lines)]))
    assert len(records) + len(rejects) == len(lines)
    assert {kind for _, kind, _ in rejects} <= {"malformed", "unknown"}


def test_unknown_names_and_newer_versions_are_their_own_kind_of_reject():
    rec = next(r for r in EVENTS_OF_A_DAY if r["event"] == "call.answered")
    for changed in (dict(rec, event="call.teleported"), dict(rec, v=VERSION + 1)):
        try:
            validate(changed)
        except UnknownEventError:
            continue
        raise AssertionError("accepted")
    try:
        validate(dict(rec, setup_time=-1))
    except UnknownEventError:
        raise AssertionError("a bad field is malformed, not unknown")
    except EventParseError:
        pass


def test_the_simplified_e_model():
    # R = 93.2 - 10/40 = 92.95 with no delay, jitter or loss
    assert mos(0, 0, 0) == round(1 + 0.035 * 92.95 + 7e-6 * 92.95 * 32.95 * 7.05, 3) == 4.404
    # 300 ms RTT: d = 160, Id = 4 -> R = 89.2
    assert mos(300, 0, 0) == round(1 + 0.035 * 89.2 + 7e-6 * 89.2 * 29.2 * 10.8, 3)
    assert mos(40, 5, 0.05) < mos(40, 5, 0.01) < mos(40, 5, 0)
    assert mos(10_000, 1000, 1) == 1.0


def _call_events():
    by_call: dict[str, list[dict]] = {}
    for rec in EVENTS_OF_A_DAY:
        if "call_id" in rec:
            by_call.setdefault(rec["call_id"], []).append(rec)
    return max(by_call.values(), key=len)


LONGEST_CALL = _call_events()


@settings(max_examples=50)
@given(st.randoms(use_true_random=False), st.integers(0, 20))
def test_a_call_folds_the_same_in_any_order_and_with_duplicates(rng, copies):
    events = list(LONGEST_CALL) + [rng.choice(LONGEST_CALL) for _ in range(copies)]
    rng.shuffle(events)
    assert fold_call("x", events) == fold_call("x", LONGEST_CALL)


def test_the_producer_writes_json_lines_with_ids_and_the_envelope(tmp_path):
    path = tmp_path / "out.jsonl"
    producer = AnalyticsProducer("N1", JsonLinesWriter(str(path)))
    for n in range(1000):
        producer.emit("call.answered", 1000.0 + n, call_id=f"c{n}", setup_time=1.5)
    producer.close()
    records = [validate(json.loads(line)) for line in path.read_text().splitlines()]
    assert len(records) == 1000 and producer.dropped == 0 and producer.written == 1000
    assert len({r["id"] for r in records}) == 1000
    assert records[7] == {"id": records[7]["id"], "event": "call.answered", "v": VERSION, "time": 1007.0,
                          "node": "N1", "call_id": "c7", "setup_time": 1.5}


def test_a_stuck_sink_drops_and_counts_but_never_blocks_the_caller():
    read_end, write_end = os.pipe()  # nobody reads: the writer thread blocks once the pipe is full
    try:
        producer = AnalyticsProducer("N1", JsonLinesWriter(f"/dev/fd/{write_end}"), capacity=100)
        accepted = sum(producer.emit("call.answered", call_id=f"c{n}" + "x" * 200, setup_time=1.0)
                       for n in range(5000))
        assert accepted < 5000 and producer.dropped == 5000 - accepted  # and every emit returned
    finally:
        os.close(read_end)  # the blocked write fails (EPIPE): the thread counts that batch and ends
        producer.close(timeout=5)
        os.close(write_end)


def test_an_unreachable_redis_drops_and_counts():
    producer = AnalyticsProducer("N1", RedisStreamWriter(f"redis://127.0.0.1:{free_port()}/0"))
    for n in range(10):
        producer.emit("call.answered", call_id=f"c{n}", setup_time=1.0)
    producer.close(timeout=10)
    assert producer.dropped == 10 and producer.written == 0


def test_every_signaling_analytics_event_conforms_to_the_schema():
    from servers.analytics.events import record
    from servers.signal.analytics import analytics_fields
    from tests.signal.test_core import Harness, of

    h = Harness()
    a = h.connect("ann", friends={"bob", "cyd"})
    b = h.connect("bob", friends={"ann"})
    c = h.connect("cyd", friends={"ann"})
    h.send(a, "call.invite", {"to": "bob", "media": ["audio", "video"]})
    call_id = of(h.drain(), a, "ack")[0]["payload"]["call_id"]
    h.send(b, "call.accept", {"call_id": call_id})
    h.send(b, "call.quality", {"call_id": call_id, "path": "relay", "rtt_ms": 42.0, "loss": 0.01})
    h.send(a, "call.quality", {"call_id": call_id, "path": "direct", "rtt_ms": 40.0, "loss": 0.0, "jitter_ms": 3.5,
                               "freezes": 2, "width": 320, "height": 240, "bitrate_kbps": 512.0, "connect_ms": 800.0,
                               "local_type": "host", "remote_type": "srflx"})
    h.send(a, "call.hangup", {"call_id": call_id})
    h.send(c, "room.create", {"media": ["audio"]})
    room_id = of(h.drain(), c, "ack")[0]["payload"]["room_id"]
    h.send(c, "room.leave", {"room_id": room_id})
    names = []
    for n, event in enumerate(h.events()):
        named = analytics_fields(event)
        if named is not None:
            names.append(named[0])
            validate(json.loads(json.dumps(record(f"s{n}", named[0], 1e9 + n, "S1", **named[1]))))
    assert names == ["call.started", "call.answered", "call.quality", "call.quality", "call.ended",
                     "call.started", "call.ended"]


def test_a_json_lines_file_is_read_in_whole_lines_and_again_from_the_start_after_rotation(tmp_path):
    from servers.analytics.sources import JsonLinesSource

    path = tmp_path / "a.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\n{"n": 3')  # the last line is still being written
    source = JsonLinesSource([str(path)], {})
    batch = source.read()
    assert [raw for _, raw in batch.items] == ['{"n": 1}', '{"n": 2}']
    source.ack(batch)
    assert source.read().items == [] and not source.drained()
    with open(path, "a") as fh:
        fh.write("}\n")
    batch = source.read()
    assert [raw for _, raw in batch.items] == ['{"n": 3}']
    source.ack(batch)
    assert source.drained()
    path.write_text('{"n": 4}\n')  # rotated: a new, shorter file under the same name
    assert [raw for _, raw in source.read().items] == ['{"n": 4}']

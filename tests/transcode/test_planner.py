"""The call server's transcoding plan: jobs start on demand on the freest worker, stop when unneeded, and
move (their subscribers falling back meanwhile) when a worker goes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcore.errors import UsageError
from netcore.transcode.planner import (LADDER, STOP_AFTER, Job, JobLost, JobStarted, JobStopped, TranscodePlanner,
                                       rendition_needed)

LADDER_A = Job(("alice", "0"), None, 2)
LADDER_B = Job(("bob", "0"), None, 2)
H264_A = Job(("alice", "0"), "H264", 1)


def events(planner: TranscodePlanner) -> list:
    out = []
    while (event := planner.poll_event()) is not None:
        out.append(event)
    return out


def test_a_job_starts_when_first_needed_on_the_worker_with_most_room():
    planner = TranscodePlanner()
    planner.worker_ready("w1", 4, 0.0)
    planner.worker_ready("w2", 4, 0.0)
    planner.need("carol", LADDER_A, 1.0)
    planner.need("dave", LADDER_A, 1.0)  # running already
    planner.need("carol", LADDER_B, 1.0)
    planner.need("erin", H264_A, 1.0)
    assert events(planner) == [JobStarted(LADDER_A, "w1"), JobStarted(LADDER_B, "w2"), JobStarted(H264_A, "w1")]
    assert planner.load() == {"w1": (3, 4), "w2": (2, 4)}
    assert planner.worker_of(LADDER_A) == "w1"


def test_a_job_without_room_waits_for_a_worker_and_is_placed_when_one_announces():
    planner = TranscodePlanner()
    planner.worker_ready("w1", 1, 0.0)
    planner.need("carol", LADDER_A, 0.0)
    assert events(planner) == [] and planner.worker_of(LADDER_A) is None
    planner.worker_ready("w1", 2, 1.0)  # it re-announced with more
    assert events(planner) == [JobStarted(LADDER_A, "w1")]


def test_a_job_nobody_needs_stops_after_a_while_unless_needed_again():
    planner = TranscodePlanner()
    planner.worker_ready("w1", 4, 0.0)
    planner.need("carol", LADDER_A, 0.0)
    planner.need("dave", LADDER_A, 0.0)
    events(planner)
    planner.release("carol", LADDER_A, 1.0)
    assert planner.next_deadline() is None  # dave still needs it
    planner.release("dave", LADDER_A, 2.0)
    assert planner.next_deadline() == 2.0 + STOP_AFTER
    planner.handle_timeout(2.0 + STOP_AFTER / 2)
    planner.need("dave", LADDER_A, 2.0 + STOP_AFTER / 2)  # the estimate dipped again
    planner.handle_timeout(3.0 + STOP_AFTER)
    assert events(planner) == [] and planner.next_deadline() is None
    planner.release_all("dave", 20.0)
    planner.handle_timeout(20.0 + STOP_AFTER)
    assert events(planner) == [JobStopped(LADDER_A, "w1", "unneeded")]
    assert planner.load() == {"w1": (0, 4)}


def test_a_lost_worker_s_jobs_wait_for_room_and_go_to_a_replacement():
    planner = TranscodePlanner()
    planner.worker_ready("w1", 3, 0.0)
    planner.worker_ready("w2", 2, 0.0)
    planner.need("carol", LADDER_A, 0.0)
    planner.need("carol", H264_A, 0.0)
    planner.need("dave", LADDER_B, 0.0)  # 1 unit free on each: it waits
    assert events(planner) == [JobStarted(LADDER_A, "w1"), JobStarted(H264_A, "w2")]
    assert planner.worker_of(LADDER_B) is None
    planner.worker_gone("w1", 5.0)
    assert events(planner) == [JobLost(LADDER_A, "w1")]  # no room on w2 for it either
    assert planner.load() == {"w2": (1, 2)}
    planner.worker_ready("w3", 4, 6.0)  # a replacement: the longest waiting first
    assert events(planner) == [JobStarted(LADDER_B, "w3"), JobStarted(LADDER_A, "w3")]


def test_a_worker_gone_then_back_restores_the_job_and_the_fallback_lasts_only_meanwhile():
    planner = TranscodePlanner()
    planner.worker_ready("w1", 2, 0.0)
    planner.need("carol", LADDER_A, 0.0)
    assert events(planner) == [JobStarted(LADDER_A, "w1")]
    planner.worker_gone("w1", 3.0)
    assert events(planner) == [JobLost(LADDER_A, "w1")]
    assert planner.worker_of(LADDER_A) is None  # carol gets the publisher's own layer meanwhile
    planner.worker_ready("w1", 2, 4.0)
    assert events(planner) == [JobStarted(LADDER_A, "w1")]


def test_a_job_lost_while_nobody_needed_it_is_not_started_again():
    planner = TranscodePlanner()
    planner.worker_ready("w1", 2, 0.0)
    planner.need("carol", LADDER_A, 0.0)
    planner.release("carol", LADDER_A, 1.0)
    planner.worker_gone("w1", 2.0)
    planner.worker_ready("w2", 2, 3.0)
    assert events(planner) == [JobStarted(LADDER_A, "w1"), JobLost(LADDER_A, "w1")]
    assert planner.next_deadline() is None


def test_a_source_that_leaves_stops_its_jobs_at_once():
    planner = TranscodePlanner()
    planner.worker_ready("w1", 4, 0.0)
    planner.need("carol", LADDER_A, 0.0)
    planner.need("carol", H264_A, 0.0)
    planner.need("carol", LADDER_B, 0.0)
    events(planner)
    planner.source_gone(("alice", "0"), 1.0)
    assert events(planner) == [JobStopped(LADDER_A, "w1", "source_gone"), JobStopped(H264_A, "w1", "source_gone"),
                               JobStarted(LADDER_B, "w1")]  # it waited for the room they took
    assert planner.load() == {"w1": (2, 4)}
    with pytest.raises(UsageError):
        planner.worker_ready("w2", -1, 1.0)


def test_what_a_subscriber_needs_transcoded():
    assert rendition_needed("VP8", ("H264",), [1_500_000], 5e6, False) == "H264"
    assert rendition_needed("VP8", ("AV1",), [1_500_000], 5e6, False) is None  # nothing we make
    assert rendition_needed("VP8", ("VP8", "H264"), [1_500_000], 400_000, False) == LADDER
    assert rendition_needed("VP8", ("VP8",), [1_500_000], 2e6, False) is None
    assert rendition_needed("VP8", ("VP8",), [150_000, 500_000, 1_500_000], 400_000, False) is None  # simulcast
    assert rendition_needed("VP8", ("VP8",), [1_500_000], 1.6e6, True) == LADDER  # not yet 25 % of room
    assert rendition_needed("VP8", ("VP8",), [1_500_000], 1.9e6, True) is None
    assert rendition_needed("VP8", ("VP8",), [0.0], 100_000, False) is None  # nothing measured yet


operations = st.lists(st.tuples(
    st.sampled_from(["ready", "gone", "need", "release", "source_gone", "tick"]),
    st.sampled_from(["w1", "w2", "w3"]), st.integers(0, 5),
    st.sampled_from([LADDER_A, LADDER_B, H264_A]), st.sampled_from(["s1", "s2"])), max_size=60)


@given(operations)
def test_no_worker_is_ever_given_more_than_it_announced_and_needed_jobs_run_where_there_is_room(ops):
    planner = TranscodePlanner()
    now = 0.0
    running: dict[Job, str] = {}
    for op, worker, capacity, job, subscriber in ops:
        now += 1.0
        if op == "ready":
            planner.worker_ready(worker, capacity, now)
        elif op == "gone":
            planner.worker_gone(worker, now)
        elif op == "need":
            planner.need(subscriber, job, now)
        elif op == "release":
            planner.release(subscriber, job, now)
        elif op == "source_gone":
            planner.source_gone(job.source, now)
        else:
            now += STOP_AFTER
            planner.handle_timeout(now)
        placed_on = set()
        for event in events(planner):
            if isinstance(event, JobStarted):
                assert event.job not in running
                running[event.job] = event.worker
                placed_on.add(event.worker)
            else:
                assert running.pop(event.job) == event.worker
        assert running == {j: planner.worker_of(j) for j in running}
        load = planner.load()
        for name in placed_on:  # (a worker that re-announced less keeps what it runs, and gets nothing new)
            assert load[name][0] <= load[name][1]

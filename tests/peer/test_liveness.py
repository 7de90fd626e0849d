"""FeedbackWatch: when sending without transport-wide feedback counts as a lost path."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netcore.peer.liveness import SILENCE, FeedbackWatch


def test_a_peer_that_never_sent_feedback_never_expires_the_watch():
    watch = FeedbackWatch()
    for step in range(100):
        watch.sent(step * 0.1)
    assert watch.deadline(None) is None
    assert not watch.expired(100.0, None)


def test_sending_a_second_without_feedback_expires_once_then_restarts():
    watch = FeedbackWatch()
    watch.feedback()
    watch.sent(10.0)
    watch.sent(10.5)
    assert watch.deadline(None) == 10.0 + SILENCE
    assert not watch.expired(10.9, None)
    assert watch.expired(11.0, None)
    assert not watch.expired(11.5, None)  # once; the next packet starts a new wait
    watch.sent(11.6)
    assert watch.deadline(None) == 11.6 + SILENCE


def test_feedback_acknowledges_what_was_sent_before():
    watch = FeedbackWatch()
    watch.feedback()
    watch.sent(1.0)
    watch.feedback()
    assert watch.deadline(None) is None and not watch.expired(5.0, None)


def test_a_long_round_trip_gives_feedback_more_time():
    watch = FeedbackWatch()
    watch.feedback()
    watch.sent(0.0)
    assert not watch.expired(1.5, 0.5)
    assert watch.expired(2.0, 0.5)


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 0.5)), max_size=50))
def test_the_watch_never_expires_before_its_deadline(steps):
    watch = FeedbackWatch()
    now = 0.0
    for is_feedback, gap in steps:
        now += gap
        deadline = watch.deadline(None)
        if watch.expired(now, None):
            assert deadline is not None and now >= deadline
        if is_feedback:
            watch.feedback()
        else:
            watch.sent(now)

"""The one driver: drain loop, single timer, early wake-ups, close."""

from __future__ import annotations

from collections import deque

from netcore.driver import Driver
from netcore.net import Event, Receive, Transmit


class FakeClock:
    """A clock whose timers the test fires by hand, as early as it likes."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[list] = []  # [when, callback, cancelled]

    def time(self) -> float:
        return self.now

    def call_at(self, when, callback, *args):
        timer = [when, callback, False]
        self.timers.append(timer)

        class Handle:
            def cancel(self_inner) -> None:
                timer[2] = True

        return Handle()

    def live(self) -> list[list]:
        return [t for t in self.timers if not t[2]]

    def fire_first(self) -> None:
        timer = self.live()[0]
        self.timers.remove(timer)
        timer[1]()


class Echo:
    """Echoes each datagram back; wants a timeout at ``due`` and counts what it gets."""

    def __init__(self, due: float | None = 1.0) -> None:
        self.due = due
        self.timeouts: list[float] = []
        self._out: deque[Transmit] = deque()
        self._events: deque[Event] = deque()

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        self._out.append(Transmit(datagram.data, datagram.source))
        self._events.append(Event())

    def handle_timeout(self, now: float) -> None:
        self.timeouts.append(now)
        if self.due is not None and now >= self.due:
            self.due = None

    def poll_transmit(self) -> Transmit | None:
        return self._out.popleft() if self._out else None

    def poll_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        return self.due


def test_a_datagram_is_answered_its_events_delivered_and_one_timer_armed():
    clock, core, sent, events = FakeClock(), Echo(), [], []
    driver = Driver(core, clock, sent.append, events.append)
    driver.receive(Receive(b"\x00\x01", ("192.0.2.1", 9)))
    driver.receive(Receive(b"\x00\x01", ("192.0.2.1", 9)))
    assert sent == [Transmit(b"\x00\x01", ("192.0.2.1", 9))] * 2
    assert len(events) == 2
    assert [t[0] for t in clock.live()] == [1.0]  # the same deadline twice arms one timer


def test_an_early_wake_up_hands_the_deadline_not_the_clock_so_it_cannot_spin():
    clock, core = FakeClock(), Echo(due=1.0)
    driver = Driver(core, clock, lambda t: None)
    driver.flush()
    clock.now = 0.999  # the loop woke a millisecond early
    clock.fire_first()
    assert core.timeouts == [1.0]
    assert clock.live() == []  # the core is satisfied: no re-arm at the same instant


def test_a_later_deadline_cancels_the_earlier_timer():
    clock, core = FakeClock(), Echo(due=1.0)
    driver = Driver(core, clock, lambda t: None)
    driver.flush()
    core.due = 2.0
    driver.flush()
    assert [t[0] for t in clock.live()] == [2.0]


def test_close_cancels_the_timer_and_arms_no_other():
    clock, core = FakeClock(), Echo(due=1.0)
    driver = Driver(core, clock, lambda t: None)
    driver.flush()
    driver.close()
    driver.flush()
    assert clock.live() == []


def test_receive_classifies_once_where_the_datagram_enters():
    from netcore.demux import PacketKind

    assert Receive(b"\x00\x01\x00\x00").kind is PacketKind.STUN
    assert Receive(b"\x80\xc8\x00\x01").kind is PacketKind.RTCP
    assert Receive(b"\x17\xfe\xfd").kind is PacketKind.DTLS
    assert Receive(b"").kind is PacketKind.UNKNOWN


class Counting(Echo):
    """Echo that notes the time each datagram was handed and how often its deadline was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[float] = []
        self.asked = 0

    def handle_datagram(self, datagram: Receive, now: float) -> None:
        self.handed.append(now)
        super().handle_datagram(datagram, now)

    def next_deadline(self) -> float | None:
        self.asked += 1
        return super().next_deadline()


def test_a_batch_is_handled_in_order_each_answer_sent_before_the_next_and_the_deadline_asked_once():
    clock, core, events = FakeClock(), Counting(), []
    sent: list[tuple[Transmit, int]] = []
    driver = Driver(core, clock, lambda t: sent.append((t, len(core.handed))), events.append)

    class TickingClock:  # the clock moves while the batch is handled
        def time(self_inner) -> float:
            clock.now += 0.001
            return clock.now

        def call_at(self_inner, when, callback, *args):
            return clock.call_at(when, callback, *args)

    driver._clock = TickingClock()
    driver.receive_batch([Receive(bytes([0, i]), ("192.0.2.1", 9)) for i in range(3)])
    assert [t.data for t, _ in sent] == [b"\x00\x00", b"\x00\x01", b"\x00\x02"]
    assert [handled for _, handled in sent] == [1, 2, 3]  # each answer left before the next datagram
    assert core.handed == sorted(set(core.handed)) and len(core.handed) == 3  # each at its own time
    assert len(events) == 3
    assert core.asked == 1
    assert [t[0] for t in clock.live()] == [1.0]

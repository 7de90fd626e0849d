"""The one loop that runs any core: drain its outputs, keep its single timer.

Every adapter (asyncio sockets) and the simulated network own a
:class:`Driver` rather than copying the loop::

    driver = Driver(core, clock, send=..., on_event=...)
    driver.receive(Receive(data, source, destination))   # a datagram arrived
    core.send(...); driver.flush()                         # after any API call

``clock`` is anything with ``time()`` and ``call_at(when, callback, *args)``
returning a handle with ``cancel()``: an asyncio event loop as it is, or the
simulated network's virtual clock. The timer fires ``handle_timeout`` with
``max(deadline, clock.time())``: a loop may wake a little before the
deadline (asyncio rounds by its clock resolution), and a core handed an
earlier time would find nothing due, ask for the same deadline and spin.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

from netcore.net import Core, Event, Receive, Transmit

__all__ = ["Clock", "Driver", "Timer"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float: ...
    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle: ...


class Timer:
    """One core's single timer: re-armed at each deadline, fired with ``max(deadline, now)``.

    :class:`Driver` uses it; so does an adapter whose core has more outputs
    than a driver drains (the signaling server), so the rule lives here once.
    """

    __slots__ = ("_clock", "_on_fire", "_handle", "_at", "_closed")

    def __init__(self, clock: Clock, on_fire: Callable[[float], None]) -> None:
        self._clock = clock
        self._on_fire = on_fire
        self._handle: TimerHandle | None = None
        self._at: float | None = None
        self._closed = False

    def arm(self, deadline: float | None) -> None:
        """Fire at ``deadline`` (``None``: not at all); the same deadline again changes nothing."""
        if self._closed:
            deadline = None
        if deadline == self._at:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = deadline
        if deadline is not None:
            self._handle = self._clock.call_at(deadline, self._fire)

    @property
    def deadline(self) -> float | None:
        """When it fires next (None: not armed)."""
        return self._at

    def close(self) -> None:
        """Cancel the timer; it arms no more."""
        self.arm(None)
        self._closed = True

    def _fire(self) -> None:
        deadline = self._at
        self._handle = None
        self._at = None
        now = self._clock.time()
        if deadline is not None and deadline > now:
            now = deadline  # an early wake-up must not spin (see the module docstring)
        self._on_fire(now)


class Driver:
    """Feeds one core and delivers what it produces; owns its one timer."""

    __slots__ = ("core", "send", "on_event", "_clock", "_timer")

    def __init__(self, core: Core, clock: Clock, send: Callable[[Transmit], None],
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.core = core
        self.send = send
        self.on_event = on_event
        self._clock = clock
        self._timer = Timer(clock, self._timeout)

    def receive(self, datagram: Receive) -> None:
        """Hand one datagram to the core at the clock's time, then flush."""
        self.core.handle_datagram(datagram, self._clock.time())
        self.flush()

    def receive_batch(self, datagrams: Iterable[Receive]) -> None:
        """Hand datagrams read together to the core in this order, each at the clock's time with what it
        produced sent at once; its events and the timer once after the last (the deadline is asked once
        per batch, not per datagram)."""
        core, clock, send = self.core, self._clock, self.send
        for datagram in datagrams:
            core.handle_datagram(datagram, clock.time())
            while (transmit := core.poll_transmit()) is not None:
                send(transmit)
        self.flush()

    def flush(self) -> None:
        """Send what the core queued, deliver its events, re-arm the timer."""
        core = self.core
        send = self.send
        while (transmit := core.poll_transmit()) is not None:
            send(transmit)
        on_event = self.on_event
        while (event := core.poll_event()) is not None:
            if on_event is not None:
                on_event(event)
        self._timer.arm(core.next_deadline())

    def close(self) -> None:
        """Stop the timer; the driver arms no new one."""
        self._timer.close()

    def _timeout(self, now: float) -> None:
        self.core.handle_timeout(now)
        self.flush()

"""Which simulcast layer each subscriber gets (RFC 8853 streams, chosen per receiver), sans-IO.

A publisher sending simulcast sends each of its video tracks two or three
times at different resolutions and bitrates (*layers*, one SSRC and RID
each); the call server forwards one layer of each track to each
subscriber.  :class:`LayerAllocator` decides which, per subscriber slot,
from two inputs:

* the **budget** (:func:`slot_budget`): the subscriber's send-side estimate
  (its transport's congestion controller, fed by its transport-wide
  feedback) less what its audio takes, shared equally among its video
  slots that receive media (a packet of their track within
  :data:`LAYER_TIMEOUT`): a slot whose track sends nothing, such as a
  screen section before anything is shared or a stopped camera, takes no
  share, or every other slot would be held a layer lower for it;
* the **requested maximum height** for that track (what the subscriber
  displays: a thumbnail needs no 720p), when it sent one.

Rules (constants below):

* a layer is **usable** when it is active (a packet within
  :data:`LAYER_TIMEOUT`, and fewer than :data:`PAUSED_FRAMES` frames
  started on each other layer of the track since its own latest packet: a
  browser short of bitrate stops its top layers at once, and a slot
  forwarding one freezes until that is noticed; counted in frames, it is
  noticed within two or three frame intervals at any frame rate, where a
  fixed time would be slow for 30 frames/s or mistake a slow frame rate
  for a pause) and not above the requested height (the lowest
  layer is always usable: something is better than nothing);
* **down** at once: when the budget falls below the current layer's
  bitrate, or the layer stops, the best usable layer that fits (else the
  lowest) is chosen on the next decision;
* **up** only after the budget has stayed at least :data:`UP_MARGIN` times
  the higher layer's bitrate for :data:`UP_HOLD` seconds without a break
  (a dip below restarts the wait), so an estimate oscillating around a
  layer's bitrate never moves up and down (mediasoup's users saw 5-6
  switches a minute without such a rule); and, to another layer, only
  when that layer's latest key frame crosses the link within
  :data:`KEYFRAME_TIME` at the budget: the switch waits for that key frame,
  and the subscriber shows nothing new until it is all there (a 14 kB
  360-line key frame from Chromium takes 0.37 s at 300 kbit/s; sent as a
  burst into a short queue, part of it was lost and repaired, a 0.55-0.65 s
  freeze);
* the first choice for a new slot is the best layer the budget fits, with
  no wait (the estimate starts low, so that is usually the lowest);
* a layer is **priced** at least at the full bitrate of the usable layer
  below it: one measuring less is still ramping up (a browser fills its
  layers from the lowest up) and would outgrow the budget it was chosen
  under; its TIDs' figures are raised to add up to the layer's own
  (their meters' windows differ);
* **temporal layers** (VP8 TID, RFC 7741 section 4.2): a layer whose
  frames carry TIDs is measured per TID, and the choice is made on a
  ladder of (layer, highest TID) steps, lowest first, each costing the
  bitrate of its TIDs: the lowest layer offers every step (TL0 alone is
  a quarter of the frame rate with three temporal layers, what a budget
  below the lowest layer's full rate still pays), a higher layer only the
  steps from TL1 up (half the frame rate: a sharper picture at a quarter
  of the rate judders more than it gains).  Down and up follow the rules
  above; an up within the same layer waits only :data:`TEMPORAL_UP_HOLD`
  (it needs no key frame, and the slot moves up at the next layer-sync
  frame);
* a subscriber sent less than a layer it could use is **probed**: a
  congestion controller that only sees a low layer's bitrate never learns
  that its link takes more (its estimate stays near what it sends), so the
  core asks the subscriber's estimator for a probe cluster at
  :data:`PROBE_HEADROOM` times what the next layer needs, after
  :data:`PROBE_INTERVAL`, doubling to :data:`MAX_PROBE_INTERVAL` while the
  link stays short (a slow link is disturbed less and less; a link whose
  capacity returned is found within that).

The allocator only decides; the core switches the slot's
:class:`~netcore.sfu.rewrite.DownTrack` (which keeps forwarding the old
layer until the new one's key frame) and asks for that key frame.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BitrateMeter", "LayerAllocator", "LayerInfo", "slot_budget", "UP_MARGIN", "UP_HOLD", "LAYER_TIMEOUT", "PAUSED_FRAMES",
           "ALLOCATE_INTERVAL", "AUDIO_ALLOWANCE", "BITRATE_WINDOW", "PROBE_INTERVAL", "MAX_PROBE_INTERVAL",
           "PROBE_HEADROOM", "TEMPORAL_UP_HOLD", "MIN_UPPER_TEMPORAL", "KEYFRAME_TIME"]

UP_MARGIN = 1.25  # the budget must exceed a higher layer's bitrate by 25 % ...
UP_HOLD = 3.0  # ... for this many seconds without a break before switching up
LAYER_TIMEOUT = 1.0  # seconds without a packet: the publisher paused that layer ...
PAUSED_FRAMES = 3  # ... or another layer of the track started this many frames since its last (a browser short of
# bitrate): three, not two, since the layers' packets of one picture come in no fixed order
ALLOCATE_INTERVAL = 0.25  # seconds between decisions (a down-switch waits at most this long)
AUDIO_ALLOWANCE = 40_000  # bit/s per audio slot taken from the budget before video is shared
BITRATE_WINDOW = 1.0  # seconds over which a layer's bitrate is measured
PROBE_INTERVAL = 2.0  # a subscriber kept below a layer it could use probes its link after this ...
MAX_PROBE_INTERVAL = 8.0  # ... doubling with each probe to this, as netcore.cc's recovery probes (reset when it goes up)
PROBE_HEADROOM = 1.2  # probe at this much above what the next layer needs with its margin
KEYFRAME_TIME = 0.3  # seconds the key frame of a layer switched up to may take at the slot's budget
TEMPORAL_UP_HOLD = 1.0  # seconds with margin before a higher TID of the same layer (no key frame needed)
FPS_MARGIN = 1.25  # a TID's measured frame rate may exceed a viewer's max_fps by this (one-second windows of
# a few frames read a little high or low: 2.5 frames/s reads 2 or 3)
MIN_UPPER_TEMPORAL = 1  # layers above the lowest are offered from this TID up (half the frame rate of three)


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """What the allocator knows of one layer: measured bitrate (bit/s), height (0: unknown), activity."""

    bitrate: float
    height: int = 0
    active: bool = True
    temporal: tuple[float, ...] = ()  # bit/s of TIDs 0..t, for each t (VP8 temporal layers); () without
    frame_rates: tuple[float, ...] = ()  # frames/s of TIDs 0..t, for each t; () without
    keyframe: float = 0.0  # bits of its latest key frame (0: none seen)


def slot_budget(estimate: float, video: int, audio: int) -> float:
    """What one video slot may take (bit/s): ``estimate`` less :data:`AUDIO_ALLOWANCE` for each of the
    ``audio`` slots receiving media, shared by the ``video`` slots receiving media (at least one)."""
    return max(0.0, estimate - AUDIO_ALLOWANCE * audio) / max(1, video)


# One step of the ladder: (layer index, highest TID or None when the layer has no temporal layers, bit/s)
Step = tuple[int, "int | None", float]


class LayerAllocator:
    """The layer of one subscriber slot: :meth:`decide` per decision tick (see the module docstring).

    ``layers`` are passed lowest first; indices into that list are what
    :meth:`decide` returns, and :attr:`temporal` the highest TID chosen with
    it (None: every TID, or the layer has none).
    """

    __slots__ = ("current", "temporal", "_up_since", "_up_target", "switches", "temporal_switches")

    def __init__(self) -> None:
        self.current: int | None = None  # the index decided last
        self.temporal: int | None = None  # the TID decided last with it
        self._up_since: float | None = None  # since when a higher step has fitted with margin
        self._up_target: tuple[int, int | None] | None = None
        self.switches = 0  # decisions that changed the layer (the first choice is not one)
        self.temporal_switches = 0  # decisions that changed only the TID

    def decide(self, layers: list[LayerInfo], budget: float, now: float, max_height: int | None = None,
               max_fps: float | None = None) -> int | None:
        """The layer index to forward now (None: no layer has sent anything yet); ``max_fps``: only the
        TIDs whose frames come at most that fast (the lowest step when none does)."""
        usable = _usable(layers, max_height)
        if not usable:
            return None
        steps = _capped(_steps(layers, usable), layers, max_fps)
        fitting = [k for k, step in enumerate(steps) if step[2] <= budget]
        best = fitting[-1] if fitting else 0
        current = self._position(steps)
        if current is not None and max_fps is not None and self._above(steps[current]):
            current = None  # forwarding more TIDs than the frame rate asked for allows: off the ladder
        if current is None:
            # the first choice, or the current layer stopped or is no longer wanted: no wait
            return self._switch(steps[best], counted=self.current is not None)
        if best < current:
            return self._switch(steps[best])  # down at once
        higher = [k for k in range(current + 1, len(steps))
                  if _up_cost(steps[k], layers, self.current) <= budget]
        if not higher:
            self._up_since = self._up_target = None
            return self.current
        target = higher[-1]
        previous = self._up_target
        known = [k for k, step in enumerate(steps) if previous is not None and step[:2] == previous]
        if self._up_since is None or not known:
            self._up_since, self._up_target = now, steps[target][:2]
            return self.current
        target = min(known[0], target)
        self._up_target = steps[target][:2]
        hold = UP_HOLD if steps[target][0] != self.current else TEMPORAL_UP_HOLD
        if now - self._up_since >= hold:
            return self._switch(steps[target])
        return self.current

    def next_rate(self, layers: list[LayerInfo], max_height: int | None = None,
                  max_fps: float | None = None) -> float | None:
        """The budget a move up to the step above the current choice needs (:data:`UP_MARGIN` included, and
        room for its layer's key frame: what a probe must show), None at the top or before a choice."""
        steps = _capped(_steps(layers, _usable(layers, max_height)), layers, max_fps)
        position = self._position(steps)
        if position is None or position + 1 >= len(steps):
            return None
        return _up_cost(steps[position + 1], layers, self.current)

    def _position(self, steps: list[Step]) -> int | None:
        """Where the current choice stands on this decision's ladder (None: its layer is not on it)."""
        same = [k for k, step in enumerate(steps) if step[0] == self.current]
        if not same:
            return None
        if self.temporal is None:
            return same[-1]  # every TID was forwarded
        below = [k for k in same if steps[k][1] is None or steps[k][1] <= self.temporal]
        return below[-1] if below else same[0]

    def _above(self, step: Step) -> bool:
        """The current choice forwards TIDs above ``step``'s (the top of its layer on a capped ladder)."""
        return step[1] is not None and (self.temporal is None or self.temporal > step[1])

    def _switch(self, step: Step, counted: bool = True) -> int:
        index, tid = step[0], step[1]
        if index != self.current and counted:
            self.switches += 1
        elif index == self.current and tid != self.temporal:
            self.temporal_switches += 1
        self.current, self.temporal = index, tid
        self._up_since = self._up_target = None
        return index


def _up_cost(step: Step, layers: list[LayerInfo], current: int | None) -> float:
    """The budget a move up to ``step`` needs: :data:`UP_MARGIN` over its bitrate and, on another layer
    than ``current``, the bitrate that carries that layer's latest key frame within :data:`KEYFRAME_TIME`."""
    cost = step[2] * UP_MARGIN
    if step[0] != current:
        cost = max(cost, layers[step[0]].keyframe / KEYFRAME_TIME)
    return cost


def _steps(layers: list[LayerInfo], usable: list[int]) -> list[Step]:
    """The ladder of (layer, highest TID) choices over the usable layers, lowest first.

    A layer is priced at least at the full bitrate of the usable layer below it: a browser fills
    its layers from the lowest up, so a higher layer measuring less than a lower one is still
    ramping (a 720p layer at 200 kbit/s a second after a start, on its way to 1.5 Mbit/s) and
    would outgrow the budget it was chosen under within seconds, freezing the slot on an overrun
    link until the move back down.
    """
    steps: list[Step] = []
    floor = 0.0  # the full bitrate of the usable layer below
    for i in usable:
        temporal = _scaled(layers[i])
        if len(temporal) < 2:
            steps.append((i, None, max(layers[i].bitrate, floor)))
        else:
            lowest = 0 if i == usable[0] else min(MIN_UPPER_TEMPORAL, len(temporal) - 1)
            steps.extend((i, tid, max(temporal[tid], floor)) for tid in range(lowest, len(temporal)))
        floor = max(floor, layers[i].bitrate)
    return steps


def _capped(steps: list[Step], layers: list[LayerInfo], max_fps: float | None) -> list[Step]:
    """The steps whose frames come at most ``max_fps`` a second (a viewer showing the track at a low
    frame rate: a small tile of a broadcast), the lowest step when none does. A step without TIDs, or
    whose layer's frame rates are not measured yet, is kept: it cannot be thinned."""
    if max_fps is None:
        return steps

    def fits(step: Step) -> bool:
        rates = layers[step[0]].frame_rates
        return step[1] is None or step[1] >= len(rates) or rates[step[1]] <= max_fps * FPS_MARGIN

    return [step for step in steps if fits(step)] or steps[:1]


def _scaled(layer: LayerInfo) -> tuple[float, ...]:
    """The layer's per-TID figures raised so that all TIDs together cost what the layer measures.

    Each TID has its own meter, whose one-second window starts at its own first packet; at three or
    four frames a second per TID a window holds so few frames that the TIDs' sum can read a quarter
    below the layer's own figure (a 720p layer at 644 kbit/s with TIDs 0-2 at 497: its TL0+TL1 read
    219 kbit/s and was chosen for a 300 kbit/s link, then sent 343). The TIDs' shares are what their
    figures say; the total is the layer's. Never lowered: a layer's figure that reads low is the floor's
    business (ramping).
    """
    temporal = layer.temporal
    if len(temporal) < 2 or temporal[-1] <= 0 or layer.bitrate <= temporal[-1]:
        return temporal
    scale = layer.bitrate / temporal[-1]
    return tuple(rate * scale for rate in temporal)


def _usable(layers: list[LayerInfo], max_height: int | None) -> list[int]:
    active = [i for i, layer in enumerate(layers) if layer.active]
    if not active or max_height is None:
        return active
    fits = [i for i in active if not layers[i].height or layers[i].height <= max_height]
    return fits or active[:1]  # the lowest active layer, whatever its height


class BitrateMeter:
    """A layer's bitrate over the last :data:`BITRATE_WINDOW` (bytes counted per packet, in place)."""

    __slots__ = ("_start", "_bytes", "bitrate", "last_packet")

    def __init__(self) -> None:
        self._start: float | None = None
        self._bytes = 0
        self.bitrate = 0.0
        self.last_packet = float("-inf")

    def add(self, size: int, now: float) -> None:
        self.last_packet = now
        if self._start is None:
            self._start = now
        elif now - self._start >= BITRATE_WINDOW:
            self._roll(now)
        self._bytes += size

    def _roll(self, now: float) -> None:
        assert self._start is not None
        span = now - self._start
        rate = self._bytes * 8 / span
        # a whole window measured replaces the figure; a first short one only raises it
        self.bitrate = rate
        self._start, self._bytes = now, 0

    def active(self, now: float) -> bool:
        return now - self.last_packet < LAYER_TIMEOUT

    def current(self, now: float) -> float:
        """The bitrate, counting the running window once it is half full (a new layer has a figure fast)."""
        if self._start is not None and now - self._start >= BITRATE_WINDOW / 2 and not self.bitrate:
            return self._bytes * 8 / (now - self._start)
        return self.bitrate

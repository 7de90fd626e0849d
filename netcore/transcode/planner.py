"""Where and when the call server has tracks transcoded: jobs, workers and their capacity, sans-IO.

A **job** is one source track (publisher, mid) made into one kind of
rendition: the size ladder in the source's codec (``codec`` None: for
subscribers whose link is below the publisher's only layer), or the
source in another codec (for subscribers that cannot decode the source's).
A job costs as many capacity units as it makes renditions; a **worker**
(one ``netcore-transcode`` process) announces how many units it has.

:class:`TranscodePlanner` is told what subscribers need (:meth:`need`,
:meth:`release`), which workers are there (:meth:`worker_ready`,
:meth:`worker_gone`) and which sources left (:meth:`source_gone`), and
answers with events:

================  ===========================================================
``JobStarted``    a job was placed on a worker: tell it to transcode
``JobStopped``    nobody needed the job for :data:`STOP_AFTER` (or its source
                  left): tell its worker to stop
``JobLost``       its worker is gone: subscribers fall back to what the
                  publisher sends until a ``JobStarted`` places it again
================  ===========================================================

Rules:

* a job is placed when first needed, on the worker with the most free units
  that has enough (spreading the load; ties go to the worker that announced
  first); with no such worker it waits, and is placed as soon as one
  announces or frees enough;
* a job nobody needs is stopped after :data:`STOP_AFTER`, not at once: a
  subscriber's estimate that wobbles around the publisher's bitrate would
  otherwise start and stop a worker (and reopen its encoders) every few
  seconds; needed again meanwhile, it just goes on;
* a worker gone loses its jobs, which are placed again at once on workers
  with room, else wait (its subscribers fall back meanwhile); a lost job
  nobody needed any more is forgotten.

:func:`rendition_needed` is the decision per subscriber slot, with its
hysteresis.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from netcore.errors import UsageError
from netcore.media.codecs import VIDEO_CODECS
from netcore.net import Event

__all__ = ["TranscodePlanner", "Job", "JobStarted", "JobStopped", "JobLost", "rendition_needed", "LADDER",
           "STOP_AFTER", "RELEASE_MARGIN"]

STOP_AFTER = 10.0  # seconds a job nobody needs keeps running before it is stopped
RELEASE_MARGIN = 1.25  # a slot on a ladder goes back to the original once its budget has this much room
LADDER = "ladder"  # rendition_needed's answer for the size ladder (else a codec name)

TrackKey = tuple[str, str]  # (publisher id, mid)


@dataclass(frozen=True, slots=True)
class Job:
    """One source track into one kind of rendition; ``units``: the renditions it makes."""

    source: TrackKey
    codec: str | None  # None: the size ladder in the source's codec
    units: int


class PlannerEvent(Event):
    """Base of the planner's events."""


@dataclass(frozen=True, slots=True)
class JobStarted(PlannerEvent):
    job: Job
    worker: str


@dataclass(frozen=True, slots=True)
class JobStopped(PlannerEvent):
    job: Job
    worker: str
    reason: str  # "unneeded" or "source_gone"


@dataclass(frozen=True, slots=True)
class JobLost(PlannerEvent):
    job: Job
    worker: str


def rendition_needed(source_codec: str, subscriber_codecs: tuple[str, ...], layer_bitrates: list[float],
                     budget: float, on_ladder: bool) -> str | None:
    """What a subscriber slot needs transcoded: a codec name, :data:`LADDER`, or None.

    * a subscriber that cannot decode ``source_codec`` needs the first of its
      codecs the transcoder makes;
    * a publisher's only layer (``layer_bitrates`` has one entry; simulcast
      publishers have their own lower layers) above the slot's ``budget``
      needs the ladder; a slot ``on_ladder`` keeps it until its budget has
      :data:`RELEASE_MARGIN` room over the layer, so a budget that wobbles
      around the layer's bitrate does not switch back and forth.
    """
    if source_codec not in subscriber_codecs:
        return next((c for c in subscriber_codecs if c in VIDEO_CODECS), None)
    if len(layer_bitrates) != 1 or not layer_bitrates[0]:
        return None
    bitrate = layer_bitrates[0]
    return LADDER if budget < bitrate * (RELEASE_MARGIN if on_ladder else 1.0) else None


class _Worker:
    __slots__ = ("capacity", "jobs", "order")

    def __init__(self, capacity: int, order: int) -> None:
        self.capacity = capacity
        self.jobs: set[Job] = set()
        self.order = order

    @property
    def free(self) -> int:
        return self.capacity - sum(job.units for job in self.jobs)


class TranscodePlanner:
    """Jobs on workers, started on demand and stopped when unneeded; see the module docstring."""

    def __init__(self, stop_after: float = STOP_AFTER) -> None:
        self.stop_after = stop_after
        self._workers: dict[str, _Worker] = {}
        self._announced = 0
        self._placed: dict[Job, str] = {}  # job -> worker
        self._waiting: list[Job] = []  # needed, not placed (no room), oldest first
        self._needed_by: dict[Job, set[str]] = {}
        self._idle_since: dict[Job, float] = {}  # placed or waiting jobs nobody needs
        self._events: deque[PlannerEvent] = deque()

    # --- inputs --------------------------------------------------------------

    def worker_ready(self, worker: str, capacity: int, now: float) -> None:
        """A worker announced (or re-announced) ``capacity`` units; waiting jobs are placed on it."""
        if capacity < 0:
            raise UsageError("a worker's capacity cannot be negative")
        if worker in self._workers:
            self._workers[worker].capacity = capacity
        else:
            self._announced += 1
            self._workers[worker] = _Worker(capacity, self._announced)
        self._place_waiting()

    def worker_gone(self, worker: str, now: float) -> None:
        """A worker died or was stopped: its jobs are lost and placed again where there is room."""
        state = self._workers.pop(worker, None)
        if state is None:
            return
        for job in sorted(state.jobs, key=_job_order):
            del self._placed[job]
            self._events.append(JobLost(job, worker))
            if self._idle_since.pop(job, None) is None:  # one nobody needs any more is not placed again
                self._waiting.append(job)
        self._place_waiting()

    def need(self, subscriber: str, job: Job, now: float) -> None:
        """``subscriber`` needs ``job``'s renditions: placed now if it is not running."""
        self._needed_by.setdefault(job, set()).add(subscriber)
        self._idle_since.pop(job, None)
        if job not in self._placed and job not in self._waiting:
            self._waiting.append(job)
            self._place_waiting()

    def release(self, subscriber: str, job: Job, now: float) -> None:
        """``subscriber`` no longer needs ``job`` (its link recovered, it left, it was moved)."""
        users = self._needed_by.get(job)
        if users is None:
            return
        users.discard(subscriber)
        if not users:
            del self._needed_by[job]
            self._idle_since[job] = now

    def release_all(self, subscriber: str, now: float) -> None:
        """The subscriber left: every job it needed."""
        for job in [j for j, users in self._needed_by.items() if subscriber in users]:
            self.release(subscriber, job, now)

    def source_gone(self, source: TrackKey, now: float) -> None:
        """The source track's publisher left: its jobs stop at once."""
        for job in [j for j in self._placed if j.source == source]:
            self._stop(job, "source_gone")
        self._waiting = [j for j in self._waiting if j.source != source]
        for job in [j for j in self._needed_by if j.source == source]:
            del self._needed_by[job]
        for job in [j for j in self._idle_since if j.source == source]:
            del self._idle_since[job]
        self._place_waiting()

    def handle_timeout(self, now: float) -> None:
        """Stop the jobs nobody has needed for :attr:`stop_after`."""
        expired = [job for job, since in self._idle_since.items() if now - since >= self.stop_after]
        for job in expired:
            del self._idle_since[job]
            if job in self._placed:
                self._stop(job, "unneeded")
            elif job in self._waiting:
                self._waiting.remove(job)
        if expired:
            self._place_waiting()

    # --- outputs -------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return min(self._idle_since.values()) + self.stop_after if self._idle_since else None

    def poll_event(self) -> PlannerEvent | None:
        return self._events.popleft() if self._events else None

    def worker_of(self, job: Job) -> str | None:
        """The worker running ``job``, or None (waiting, lost: the subscribers get the original)."""
        return self._placed.get(job)

    def pending(self, job: Job) -> bool:
        """``job`` is running, or waiting for a worker (False: stopped, or lost and nobody needs it)."""
        return job in self._placed or job in self._waiting

    def load(self) -> dict[str, tuple[int, int]]:
        """Each worker's (units used, capacity)."""
        return {name: (w.capacity - w.free, w.capacity) for name, w in self._workers.items()}

    # --- placement ---------------------------------------------------------

    def _place_waiting(self) -> None:
        still: list[Job] = []
        for job in self._waiting:
            worker = self._worker_for(job)
            if worker is None:
                still.append(job)
                continue
            self._workers[worker].jobs.add(job)
            self._placed[job] = worker
            self._events.append(JobStarted(job, worker))
        self._waiting = still

    def _worker_for(self, job: Job) -> str | None:
        fits = [(name, w) for name, w in self._workers.items() if w.free >= job.units]
        if not fits:
            return None
        return max(fits, key=lambda item: (item[1].free, -item[1].order))[0]

    def _stop(self, job: Job, reason: str) -> None:
        worker = self._placed.pop(job)
        self._workers[worker].jobs.discard(job)
        self._events.append(JobStopped(job, worker, reason))


def _job_order(job: Job) -> tuple:
    return (job.source, job.codec or "")

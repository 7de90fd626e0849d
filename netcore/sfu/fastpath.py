"""The call server's compiled forwarding path, attached to an :class:`~netcore.sfu.core.SfuCore`.

The core decides; this module carries its decisions out in C
(``netcore/sfu/_forward.c``) for the packets that need none.  A subscriber
slot whose :class:`~netcore.sfu.rewrite.DownTrack` is steady (one source
forwarded, no switch pending, not paused or resuming) is *installed*: its
rewriter's state is handed to a compiled ``Track`` in the ``Group`` of its
source SSRC, and from then on each packet of that source is rewritten,
stamped (MID, transport-wide number), SRTP-protected and sent for every
installed slot in one call, without a Python frame per subscriber.  A slot
given fewer VP8 temporal layers than all (the allocator's cap, a viewer's
``max_fps``) is installed too: the track applies the cap per frame as
``DownTrack`` does (down at any frame start, up at a key frame or a
layer-sync frame) and leaves the frames above it out, closing up sequence
numbers and picture ids; it keeps for that every offset range, the
picture id map and the TID forwarded now, and hands them back with the
rest.  The core still decides the cap and writes it into the track
(``Track.max_temporal``) when it changes.  The Python loop of the core still sees every packet
for the slots that are not installed.

A track is given back (*ejected*) when the core changes anything about its
slot (:meth:`DownTrack.want`, ``pause``, ``resume``, ``attach``, the
subscriber leaving), or when a packet needs a decision (an upstream repair
older than the oldest offset range kept, a payload type not agreed, a
malformed VP8 descriptor): its state goes back into the Python rewriter and the core
handles that packet and what follows, and installs the slot again once it
is steady.

What the subscriber's transport must know of the packets sent in C is
taken when it needs it (:meth:`FastSubscriber.drain`): the transport-wide
numbers with size and send time for its bandwidth estimator (before it
numbers a packet of its own, before a feedback is read, before padding is
measured), the sender report counts, and the history a NACK is answered
from (:meth:`FastSubscriber.fill_history`).  One SRTP context per
subscriber, the compiled one: the transport protects its own RTP through it.

Differences from the Python path, on purpose: the compiled path does not
pace (a packet leaves when it arrives, as Janus and most SFUs send); the
pacer still spaces the transport's own packets (retransmissions, padding).
Only subscribers whose video streams have RTX (padding on the RTX stream,
never shifting the media sequence numbers) are handled; others stay on the
Python path.

The receive side (:class:`FastInbound`, ``Inbound`` in C): once a
transport connects, its RTP is unprotected by a compiled SRTP context (the
Python transport's too, through ``Inbound.unprotect``: one replay window and
rollover counter per SSRC).  After the core handled a publisher's packet in
Python and found that the next packet of that source would need nothing of
it but bookkeeping and the installed slots (every connected slot of the
publication either installed on that source, paused, or forwarding another
simulcast layer; no slot waiting for a key frame of it; nothing watching the
packets: no recorder's tap, no cascade relay, no studio observer), it *arms*
the source with the count of :mod:`netcore.sfu.changes` it read.  The
daemon's datagram then goes to C first: a packet of an armed source from the
address it was armed from, with the next sequence number, the same payload
type, no padding, the group still holding the tracks it held and the count
unchanged is unprotected and forwarded in one call, and logged (plain
packet, arrival time).  Anything else is left untouched for the Python path
(and its source disarmed until the core arms it again).  The core replays
the log through its Python bookkeeping (the transport's RFC 3550 statistics,
NACK tracker and TWCC arrivals, the core's meters, duplicate window,
key-frame and layer bookkeeping, audio levels and the allocator's pause
detection) before it handles any other input or changes anything, and at the
latest ``REPLAY_DELAY`` after the first packet logged: so each decision sees
every packet in order, at its arrival time, as on the Python path; only the
forwarding went first, and what follows from the bookkeeping (an
active-speaker event, a move off a paused layer) comes up to ``REPLAY_DELAY``
later.

Every participant's RTCP from the address its transport sends to goes to
the same compiled context (``Inbound.receive_rtcp``): a compound of receiver
reports, SDES and transport-wide feedback only is unprotected and logged
beside the packets, and replayed the same way (the subscribers' feedback,
ten a second each, is most of what the server reads); anything else in a
compound (a NACK, a key-frame request, a sender report) is handed to the
core unprotected at once. A daemon reads its media sockets in C as well
(``Reader``, :meth:`FastPath.read`): each datagram from an address filed
here is offered to its inbound first, so what is taken costs no Python
frame, and the rest comes back in the order read.

Choosing the path: ``SfuCore.fastpath`` is None for the Python path (the
fallback, and what ``NETCORE_SFU_FORWARD=python`` selects in the daemon);
:func:`available` says whether the extension was built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Iterator

from netcore.net import Address, Transmit
from netcore.rtp.packet import RtpPacket
from netcore.sfu.rewrite import Forwarded

if TYPE_CHECKING:
    from netcore.peer.sender import OutgoingStream, Sender
    from netcore.sfu.participant import Participant, Publication, SlotState
    from netcore.sfu.rewrite import DownTrack

try:
    from netcore.sfu import _forward
except ImportError:  # built without libsrtp2 or a C compiler: the Python path only
    _forward = None  # type: ignore[assignment]

__all__ = ["FastInbound", "FastPath", "FastSubscriber", "FastTrack", "available", "wanted"]

ENV = "NETCORE_SFU_FORWARD"  # "python" selects the Python path, "c" (the default when built) the compiled one
# s: the longest the core's bookkeeping of a packet taken in C waits: one audio packet's interval, so that a
# publisher's audio, its video frame's burst and the subscribers' feedback between them replay in one wake-up of
# the loop (5 ms, a burst each, cost the daemon a fifth more CPU at N = 10: docs/sfu.md)
REPLAY_DELAY = 0.02


def available() -> bool:
    """Whether the compiled forwarding path was built (``setup.py build_ext`` with libsrtp2)."""
    return _forward is not None


def wanted(choice: str | None = None) -> bool:
    """Whether to use the compiled path: ``choice`` ("c"/"python"), else the environment, else if built."""
    choice = choice or os.environ.get(ENV) or "c"
    if choice not in ("c", "python"):
        raise ValueError(f"{ENV} is 'c' or 'python', not {choice!r}")
    return choice == "c" and available()


class FastTrack:
    """One installed slot: its compiled ``Track`` and the group it is in."""

    __slots__ = ("track", "group", "downtrack", "subscriber", "source", "_handles")

    def __init__(self, track, group, downtrack: DownTrack, subscriber: FastSubscriber, source: int,
                 handles: dict[int, FastTrack]) -> None:
        self._handles = handles
        self.track = track
        self.group = group
        self.downtrack = downtrack
        self.subscriber = subscriber
        self.source = source

    def eject(self) -> None:
        """Give the slot back to the Python path, its rewriter state taken back."""
        downtrack = self.downtrack
        if downtrack.fast is not self:
            return
        downtrack.fast = None
        self.group.remove(self.track)
        self._handles.pop(id(self.track), None)
        self.take_drops()
        take_state(self.track, downtrack)

    def take_drops(self) -> None:
        """Count the packets the compiled track left out for their temporal layer where the core counts them."""
        skipped, gaps = self.track.take_drops()
        if skipped:
            dropped = self.downtrack._dropped
            dropped[Forwarded.TEMPORAL] = dropped.get(Forwarded.TEMPORAL, 0) + skipped
            self.downtrack.rewriter.gaps += gaps


class FastSubscriber:
    """A subscriber's transport as the compiled path sees it, and what its Python sender takes back."""

    def __init__(self, native, participant: Participant) -> None:
        self.native = native
        self.participant = participant
        self.tracks: dict[int, list] = {}  # outgoing SSRC -> its compiled tracks, newest last (the history)

    @property
    def twcc_seq(self) -> int:
        return self.native.twcc_seq

    @twcc_seq.setter
    def twcc_seq(self, value: int) -> None:
        self.native.twcc_seq = value

    def add(self, track) -> None:
        tracks = self.tracks.setdefault(track.ssrc, [])
        tracks.append(track)
        if len(tracks) > 2:  # the current one and the one before it answer NACKs
            self._report(tracks.pop(0))

    def drain(self, now: float) -> None:
        """Tell the Python sender of every packet sent in C since the last drain, in order."""
        if not self.native.pending:
            return
        sender = self.participant.transport.sender
        estimator, probe = sender.estimator, sender.probe
        end = sender._probe_end
        sent = self.native.take_sent()
        if probe is None:
            total = estimator.packets_sent(sent)  # the steady state: one loop, no probe to count
        else:
            total = 0
            for seq, size, at in sent:
                cluster = probe.cluster_id if at < end else None
                if cluster is not None:
                    sender._probe_bytes += size
                estimator.packet_sent(seq, size, at, cluster)
                total += size
        sender.packets_sent += len(sent)
        sender.bytes_sent += total
        transport = self.participant.transport
        transport._watch.sent(sent[0][2])
        self.follow_path()
        for tracks in self.tracks.values():
            for track in tracks:
                self._report(track)

    def follow_path(self) -> bool:
        """Send where the transport sends now (ICE may have moved the path); False if it has none here."""
        pair = self.participant.transport.ice.sending_pair()
        if pair is None or pair.local.turn is not None:
            return False
        if pair.remote.address != self.native.address:
            try:
                self.native.address = pair.remote.address
            except ValueError:
                return False
        return True

    def _report(self, track) -> None:
        packets, octets, ts, at = track.take_reports()
        if not packets:
            return
        stream = self.participant.transport.sender.streams.get(track.ssrc)
        if stream is None:
            return
        reporter = stream.reporter
        reporter.packet_count = (reporter.packet_count + packets) & 0xFFFFFFFF
        reporter.octet_count = (reporter.octet_count + octets) & 0xFFFFFFFF
        reporter._last_sent_ts, reporter._last_sent_at = ts, at
        reporter._sent_since_report = True
        stream.packets_sent += packets
        stream.last_timestamp = ts

    def fill_history(self, stream: OutgoingStream, lost: list[int]) -> None:
        """Put what the compiled tracks sent of ``lost`` into the stream's history (a NACK's answer)."""
        tracks = self.tracks.get(stream.ssrc)
        if not tracks:
            return
        history = stream.history
        for seq in lost:
            if history.get(seq) is not None:
                continue
            for track in reversed(tracks):
                data = track.history(seq)
                if data is not None:
                    history.add(RtpPacket.parse(data))
                    break


class FastInbound:
    """A participant's transport as the compiled receive path sees it (``netcore/sfu/_forward.c``, Inbound)."""

    __slots__ = ("native", "participant", "source")

    def __init__(self, native, participant: Participant) -> None:
        self.native = native
        self.participant = participant
        self.source: Address | None = None  # the address its packets are taken from (its armed sources', its RTCP)


class FastPath:
    """The compiled path of one core: its outputs, its subscribers and the groups of installed slots.

    ``outputs`` maps each local address of the core to the file descriptor
    of its socket (the daemon's), or to None: then datagrams are collected
    and the core returns them from ``poll_transmit`` like its own (the
    sans-IO mode, for the simulated network and the tests).
    """

    def __init__(self, outputs: dict[Address, int | None]) -> None:
        if _forward is None:
            raise RuntimeError("netcore.sfu._forward is not built (setup.py build_ext, libsrtp2-dev)")
        self.outputs = {address: (_forward.Output(fd) if fd is not None else _forward.Output())
                        for address, fd in outputs.items()}
        self._collecting = [(address, self.outputs[address]) for address, fd in outputs.items() if fd is None]
        self.subscribers: dict[str, FastSubscriber] = {}
        self.groups: dict[tuple[int, int], object] = {}  # (id of the publication, source SSRC) -> Group
        self._handles: dict[int, FastTrack] = {}  # id of a compiled track -> its slot's handle
        self.installs = 0  # slots handed to the compiled path
        self.ejects = 0  # slots it gave back
        self.forwarded = 0  # packets it forwarded
        self.inbounds: dict[str, FastInbound] = {}  # participant id -> its receive side
        self.by_source: dict[Address, FastInbound] = {}  # where packets the compiled path may take come from
        self.reader = _forward.Reader()  # the same, for a daemon that reads its sockets in C (read_socket)
        self._logged: list[FastInbound] = []  # those with packets logged and not yet replayed
        self.replay_at: float | None = None  # when the core replays them at the latest
        self.taken = 0  # publisher packets taken in C (forwarded, or dropped by SRTP)
        self.feedback = 0  # RTCP compounds taken by handle_datagram's branch (feedback_taken: the reader's too)
        self.arms = 0  # sources armed

    @property
    def collecting(self) -> bool:
        """Whether some output collects its datagrams (the sans-IO mode) for :meth:`transmits`."""
        return bool(self._collecting)

    @property
    def pending(self) -> bool:
        """Whether packets were taken in C whose bookkeeping the core has not replayed yet."""
        return bool(self._logged)

    # -- subscribers ----------------------------------------------------------------

    def connected(self, participant: Participant) -> None:
        """A transport connected: serve it here if it can be (see the module docstring)."""
        transport = participant.transport
        sender, srtp = transport.sender, transport.srtp
        self._receive_side(participant)
        pair = transport.ice.sending_pair()
        if srtp is None or pair is None or pair.local.turn is not None or sender.twcc_id is None:
            return
        output = self.outputs.get(pair.local.socket)
        if output is None or getattr(srtp, "local_master", None) is None:
            return
        if any(not s.audio and s.rtx_ssrc is None for s in sender.streams.values()):
            return  # padding would shift the media numbers (see the module docstring)
        try:
            native = _forward.Subscriber(output, srtp.profile, srtp.local_master, pair.remote.address,
                                         sender.mid_id or 0, sender.twcc_id, sender._twcc_seq)
        except ValueError:  # an address inet_pton does not take (a scoped IPv6 one), a profile unknown here
            return
        fast = FastSubscriber(native, participant)
        self.subscribers[participant.id] = fast
        srtp.protect_rtp = native.protect  # one SRTP context for every RTP packet of this subscriber
        sender.fast = fast

    def _receive_side(self, participant: Participant) -> None:
        """Unprotect the transport's RTP in C from now on, so that the compiled receive path can take it (its
        RTCP too: the subscribers' feedback is the larger part of the server's SRTP work)."""
        srtp = participant.transport.srtp
        if srtp is None or getattr(srtp, "remote_master", None) is None or participant.id in self.inbounds:
            return
        try:
            native = _forward.Inbound(srtp.profile, srtp.remote_master)
        except ValueError:  # a profile unknown here
            return
        srtp._unprotect = native.unprotect  # one SRTP context (replay window, rollover) for all its RTP
        srtp._unprotect_rtcp = native.unprotect_rtcp  # and its RTCP (AES-GCM here, not through cffi)
        inbound = self.inbounds[participant.id] = FastInbound(native, participant)
        native.feedback = 1  # its RTCP that can wait is taken too, from where it sends now
        pair = participant.transport.ice.sending_pair()
        if pair is not None and pair.local.turn is None:
            self._file(inbound, pair.remote.address)

    def arm(self, participant: Participant, publication: Publication, packet: RtpPacket, source: Address,
            epoch: int) -> None:
        """Take the next packets of ``packet``'s source from ``source`` in C (the core checked they need
        nothing of it but bookkeeping and the installed slots: see the module docstring, arming)."""
        inbound = self.inbounds.get(participant.id)
        if inbound is None or inbound.participant is not participant or source is None:
            return
        group = self.groups.get((id(publication), packet.ssrc))
        inbound.native.arm(packet.ssrc, group, packet.sequence_number, packet.payload_type, epoch)
        self.arms += 1
        if inbound.source != source:
            self._file(inbound, source)

    def _file(self, inbound: FastInbound, source: Address) -> None:
        """Take ``inbound``'s packets from ``source`` (and no longer from where they came before)."""
        if inbound.source is not None and self.by_source.get(inbound.source) is inbound:
            del self.by_source[inbound.source]
            self.reader.remove(inbound.source)
        inbound.source = source
        self.by_source[source] = inbound
        try:
            self.reader.add(source, inbound.native, inbound)
        except ValueError:  # an address inet_pton does not take (a scoped IPv6 one): handle_datagram's only
            pass

    def logged(self, inbound: FastInbound, forwarded: int, now: float) -> None:
        """The compiled receive path took a packet of ``inbound``'s, forwarded it ``forwarded`` times and logged
        it for the core."""
        self.taken += 1
        self.forwarded += forwarded
        if inbound.native.pending == 1:
            self._log_started((inbound,), now)

    def logged_rtcp(self, inbound: FastInbound, now: float) -> None:
        """The compiled receive path took an RTCP compound of ``inbound``'s that can wait and logged it."""
        self.feedback += 1
        if inbound.native.pending == 1:
            self._log_started((inbound,), now)

    @property
    def feedback_taken(self) -> int:
        """RTCP compounds taken for the replay, through ``handle_datagram`` or the daemon's reader."""
        return self.feedback + self.reader.rtcp

    def read(self, fd: int, now: float, epoch: int) -> tuple[list, int, int, int]:
        """Read up to 32 datagrams from the socket ``fd`` with the compiled reader, which offers each from an armed
        source to its inbound first (as :meth:`SfuCore.handle_datagram` does, without a Python frame per
        packet): ``(rest, datagrams taken, packets forwarded, bytes)``; ``rest`` is what the core must handle, in the order read:
        ``(data, source)`` for :meth:`SfuCore.handle_datagram`, ``(FastInbound, what its receive returned)``
        for :meth:`SfuCore.taken_back`."""
        rest, logged, taken, forwarded, size, other = self.reader.read(fd, now, epoch)
        if taken:
            self.taken += taken
            self.forwarded += forwarded
        if logged:  # RTP or RTCP
            self._log_started(logged, now)
        return rest, taken + other, forwarded, size

    def _log_started(self, inbounds: Iterable[FastInbound], now: float) -> None:
        """``inbounds`` logged their first entry since the last replay: the core replays by ``replay_at``."""
        self._logged.extend(inbounds)
        if self.replay_at is None:
            self.replay_at = now + REPLAY_DELAY

    def take_logs(self) -> list[tuple[FastInbound, list]]:
        """Every log not replayed yet: [(inbound, [(plain, arrival time)] for RTP, (plain, arrival time, True)
        for RTCP)]."""
        logs = [(inbound, inbound.native.take()) for inbound in self._logged]
        self._logged.clear()
        self.replay_at = None
        return logs

    def dropped(self, inbound: FastInbound, counter: str) -> None:
        """A packet taken in C failed SRTP: counted where the transport counts its own."""
        self.taken += 1
        transport = inbound.participant.transport
        transport.stats.rtp_received += 1
        if transport.srtp is not None:
            stats = transport.srtp.stats
            setattr(stats, counter, getattr(stats, counter) + 1)

    def eject(self, group, tracks: list) -> None:
        """Tracks the compiled receive path gave back with a packet: the core forwards it to them."""
        self.taken += 1
        for track in list(tracks):
            self._eject_native(group, track)

    def installed(self, publication: Publication, ssrc: int) -> int:
        """How many slots forward ``ssrc`` of ``publication`` in C."""
        group = self.groups.get((id(publication), ssrc))
        return len(group) if group is not None else 0

    def forget(self, participant: Participant) -> None:
        """A participant leaves: its slots' tracks are ejected (their state kept in its down-tracks)."""
        inbound = self.inbounds.pop(participant.id, None)
        if inbound is not None:
            inbound.native.disarm(None)
            if inbound.source is not None and self.by_source.get(inbound.source) is inbound:
                del self.by_source[inbound.source]
                self.reader.remove(inbound.source)
            if inbound in self._logged:
                self._logged.remove(inbound)
                inbound.native.take()
        for slot in participant.slots:
            if slot.downtrack.fast is not None:
                slot.downtrack.fast.eject()
        fast = self.subscribers.pop(participant.id, None)
        if fast is not None:
            fast.drain(0.0)
            participant.transport.sender.fast = None

    # -- forwarding -----------------------------------------------------------------

    def forward(self, publication: Publication, ssrc: int, packet: RtpPacket, now: float) -> tuple[int, int, int]:
        """Forward ``packet`` to the installed slots of its source: (packets, bytes, slots still installed
        for that source); ejected slots are back on the Python path when this returns."""
        group = self.groups.get((id(publication), ssrc))
        if group is None or not len(group):
            return 0, 0, 0
        data = packet.data
        count, size, ejected = group.forward(data if type(data) is bytes else bytes(data), now)
        self.forwarded += count
        if ejected is not None:
            for track in list(ejected):
                self._eject_native(group, track)
        return count, size, len(group)

    def _eject_native(self, group, track) -> None:
        handle = self._handles.get(id(track))
        self.ejects += 1
        if handle is not None and handle.track is track:
            handle.eject()
        else:
            group.remove(track)

    def install(self, slot: SlotState, ssrc: int, codec: str, now: float) -> None:
        """Hand a slot that just forwarded a packet of ``ssrc`` in Python to the compiled path, if steady."""
        downtrack = slot.downtrack
        fast = self.subscribers.get(slot.owner.id)
        publication = slot.publication
        if fast is None or publication is None or not _steady(downtrack, ssrc, codec):
            return
        stream = slot.owner.transport.sender.streams.get(downtrack.ssrc)
        if stream is None or stream.seq_offset:
            return
        if not fast.follow_path():
            return
        group = self.groups.get((id(publication), ssrc))
        if group is None:
            group = self.groups[(id(publication), ssrc)] = _forward.Group(publication.audio_level_id or 0)
        vp8 = {pt: name == "VP8" for pt, name in downtrack.codecs.items()}
        track = _forward.Track(fast.native, downtrack.ssrc, downtrack.payload_types, vp8,
                               downtrack.audio_level_id or 0, publication.audio_level_id or 0,
                               stream.media.mid.encode(), downtrack.max_temporal)
        load_state(track, downtrack)
        group.add(track)
        fast.add(track)
        handle = downtrack.fast = FastTrack(track, group, downtrack, fast, ssrc, self._handles)
        self._handles[id(track)] = handle
        self.installs += 1

    def drop_publication(self, publication: Publication) -> None:
        """A publication is gone: its subscribers' slots are given back, its groups forgotten."""
        for slot in publication.slots:
            if slot.downtrack.fast is not None:
                slot.downtrack.fast.eject()
        for key in [k for k in self.groups if k[0] == id(publication)]:
            del self.groups[key]

    def transmits(self) -> Iterator[Transmit]:
        """What was collected (outputs without a socket), as the core's transmits."""
        for address, output in self._collecting:
            for data, destination in output.take():
                yield Transmit(data, destination, address)

    def send_stats(self) -> tuple[int, int]:
        """(datagrams sent, datagrams the sockets refused) over every output."""
        sent = refused = 0
        for output in self.outputs.values():
            s, r = output.stats()
            sent += s
            refused += r
        return sent, refused


def load_state(track, downtrack: DownTrack) -> None:
    """Hand the down-track's rewriting state to a compiled ``Track`` (see the module docstring)."""
    rewriter, vp8, frame = downtrack.rewriter, downtrack.vp8, downtrack._frame
    track.load(rewriter._unwrap.last, rewriter._highest, rewriter._starts, rewriter._offsets,
               rewriter._ts_offset, rewriter._last_seq, rewriter._last_ts, rewriter._last_at,
               vp8._pid_offset, vp8._tl0_offset, vp8._key_offset, vp8._last_pid, vp8._last_tl0,
               vp8._last_key, vp8._newest_pid, list(vp8._pids.items()), downtrack._temporal,
               frame[0] if frame is not None else None, frame is not None and frame[1])


def take_state(track, downtrack: DownTrack) -> None:
    """Take a compiled ``Track``'s rewriting state and counts back into the down-track."""
    (unwrap_last, highest, last_seq, last_ts, last_at, last_pid, last_tl0, last_key, newest_pid, starts, offsets,
     pid_offset, pids, temporal, frame_pid, frame_forwarded) = track.state()
    rewriter = downtrack.rewriter
    rewriter._unwrap._last = unwrap_last
    rewriter._highest = highest
    rewriter._starts, rewriter._offsets = starts, offsets
    if last_seq is not None:
        rewriter._last_seq, rewriter._last_ts, rewriter._last_at = last_seq, last_ts, last_at
    vp8 = downtrack.vp8
    vp8._last_pid, vp8._last_tl0, vp8._last_key, vp8._newest_pid = last_pid, last_tl0, last_key, newest_pid
    vp8._pid_offset, vp8._pids = pid_offset, dict(pids)
    downtrack._temporal = temporal
    downtrack._frame = None if frame_pid is None else (frame_pid, frame_forwarded)
    downtrack.packets += track.packets
    downtrack.bytes += track.bytes


def _steady(downtrack: DownTrack, ssrc: int, codec: str) -> bool:
    """Nothing for the core to decide on the next packet of ``ssrc`` but what the compiled path checks."""
    rewriter = downtrack.rewriter
    return (downtrack.fast is None and downtrack.wanted is None and not downtrack.paused
            and not downtrack.resuming and rewriter.source == ssrc and not rewriter._rebase_next
            and (codec != "VP8" or not downtrack.vp8._rebase))

"""The audio mix: the clock makes one frame per 20 ms of whatever each source sent (silence for a source
that sent nothing, the oldest dropped for one that ran ahead); the Opus mixer's output holds both tones."""

from __future__ import annotations

import numpy as np

from netcore.broadcast.mixer import FRAME, MAX_QUEUED, SAMPLES, MixClock, OpusMixer
from netcore.media.codecs import AudioDecoder, AudioEncoder
from netcore.media.synthetic import SyntheticMicrophone

A, B = ("a", "mic"), ("b", "mic")


def test_the_clock_makes_a_frame_every_20_ms_of_what_each_source_sent():
    clock = MixClock(ssrc=7)
    clock.add_source(A)
    clock.add_source(B)
    clock.add(A, b"before")  # not running yet: ignored
    clock.start(1.0)
    assert clock.next_deadline() == 1.0
    clock.add(A, b"a0")
    assert clock.handle_timeout(0.99) == []
    [job] = clock.handle_timeout(1.0)
    assert job.number == 0 and dict(job.payloads) == {A: b"a0", B: None}
    for i in range(MAX_QUEUED + 2):
        clock.add(B, b"b%d" % i)
    [job] = clock.handle_timeout(1.0 + FRAME)
    assert dict(job.payloads)[B] == b"b2" and clock.dropped == 2  # the oldest went
    clock.add(A, b"a1")
    clock.add(A, b"a2")
    jobs = clock.handle_timeout(1.0 + 6 * FRAME + 0.001)  # a stall: the latest three frames, numbered for their time
    assert [j.number for j in jobs] == [4, 5, 6] and [dict(j.payloads)[A] for j in jobs] == [b"a1", b"a2", None]
    job = jobs[1]
    packet = clock.packet(job, b"opus")
    assert packet.timestamp == 5 * SAMPLES and packet.sequence_number == 5 and packet.ssrc == 7
    clock.stop()
    assert clock.handle_timeout(2.0) == [] and not clock.running


def dominant(pcm: np.ndarray, count: int) -> list[float]:
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / 48000)
    return sorted(float(f) for f in freqs[np.argsort(spectrum)[-count:]])


def feed(clock: MixClock, mixer: OpusMixer, mics: dict, frames: range, keys: tuple) -> list:
    """The microphones ``keys`` send ``frames`` (each 20 ms, coded by its own encoder): the mix's packets."""
    out = []
    for n in frames:
        for key in keys:
            microphone, coder = mics[key]
            for coded in coder.encode(microphone.frame(n)):
                clock.add(key, coded.payloads[0])
        for job in clock.handle_timeout(n * FRAME):
            payload = mixer.mix(job)
            if payload is not None:
                out.append(clock.packet(job, payload))
    return out


def test_the_mix_of_two_microphones_holds_both_tones():
    mics = {A: (SyntheticMicrophone(tone_hz=440, mark_ms=0), AudioEncoder()),
            B: (SyntheticMicrophone(tone_hz=1000, mark_ms=0), AudioEncoder())}
    clock, mixer = MixClock(ssrc=1), OpusMixer()
    clock.add_source(A)
    clock.add_source(B)
    clock.start(0.0)
    out = feed(clock, mixer, mics, range(150), (A, B))
    assert len(out) >= 145
    decoder = AudioDecoder()
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for p in out for f in decoder.decode(p.payload)])
    assert dominant(pcm[-48000:], 2) == [440.0, 1000.0]
    # one of them alone when the other falls silent
    out += feed(clock, mixer, mics, range(150, 250), (A,))
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for p in out[-50:] for f in decoder.decode(p.payload)])
    assert dominant(pcm, 1) == [440.0]

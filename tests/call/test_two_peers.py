"""Two ``netcore-call`` processes call each other through a real ``netcore-signal``: directly, and
relay-only through a real ``netcore-turn`` whose credentials the signaling daemon hands out.

Each side sends the synthetic camera and microphone; the summaries (``--summary-json``) say what
each decoded: video frame numbers read back from the pictures, in order, and audio frames.
"""

from __future__ import annotations

from tests.call.conftest import Cli, users

MEDIA = ("--size", "320x240", "--fps", "15")
WANTED_FRAMES = 15  # of the ~90 sent in 6 s; a loaded machine may skip to a later key frame, never back


def call_both_ways(tmp_path, url: str, names, *extra: str, duration: int = 9) -> tuple[dict, dict, str, str]:
    alice, bob = names("alice"), names("bob")
    users(url, alice, bob)
    callee = Cli(tmp_path, url, bob, *MEDIA, *extra, "answer", "--wait", "60")
    callee.expect("waiting for a call")  # logged in: the invite rings this session
    caller = Cli(tmp_path, url, alice, *MEDIA, *extra, "call", bob, "--duration", str(duration))
    a, b = caller.finish(), callee.finish()
    assert a.code == 0, a.stderr
    assert b.code == 0, b.stderr
    assert "call with" in a.stdout and "video frames" in a.stdout  # the summary table
    assert f"connected to {bob}" in a.stderr and f"connected to {alice}" in b.stderr
    return a.summary, b.summary, a.stderr, b.stderr


def check_media(summary: dict, sends_audio: bool = True) -> None:
    video, audio = summary["received"]["video"], summary["received"]["audio"]
    assert summary["connected"]
    assert len(video["numbers"]) >= WANTED_FRAMES, video
    assert video["in_order"], video["numbers"]
    assert all(b > a for a, b in zip(video["numbers"], video["numbers"][1:]))
    assert audio["frames"] >= 15, audio
    assert summary["sent"]["video_frames"] > 0 and (summary["sent"]["audio_frames"] > 0) is sends_audio


def test_two_netcore_call_peers_talk_directly(tmp_path, signal, names):
    a, b, a_err, b_err = call_both_ways(tmp_path, signal.url, names)
    check_media(a)
    check_media(b)
    assert a["paths"] == {"send": "direct", "receive": "direct"}
    assert b["paths"] == {"send": "direct", "receive": "direct"}
    assert a["role"] == "caller" and b["role"] == "callee"
    assert "path send direct" in a_err  # the live status line
    # each side reported the call's quality every few seconds, as the page does, with its bitrate
    quality = signal.analytics("call.quality")
    counts = sorted(sum(r["user"] == user for r in quality) for user in (a["user"], b["user"]))
    assert counts[0] >= 1 and counts[1] >= 2, quality  # the one that hung up last spoke twice at least
    assert all(r["bitrate_kbps"] > 0 for r in quality), quality
    assert {r["path"] for r in quality} == {"direct"}


def test_two_netcore_call_peers_talk_relay_only_through_netcore_turn(tmp_path, relay_signal, names):
    a, b, _, _ = call_both_ways(tmp_path, relay_signal.url, names, "--relay-only")
    check_media(a)
    check_media(b)
    assert a["paths"] == {"send": "relay", "receive": "relay"}
    assert b["paths"] == {"send": "relay", "receive": "relay"}
    assert {r["path"] for r in relay_signal.analytics("call.quality")} == {"relay"}


def test_a_video_only_caller_still_receives_the_callees_audio_and_video(tmp_path, signal, names):
    # The offer lists video first, then audio to receive; the callee, which sends both, must
    # answer each section with its track of that kind whatever order it opened them in.
    alice, bob = names("alice"), names("bob")
    users(signal.url, alice, bob)
    callee = Cli(tmp_path, signal.url, bob, *MEDIA, "answer", "--wait", "60")
    callee.expect("waiting for a call")
    a = Cli(tmp_path, signal.url, alice, *MEDIA, "--video", "call", bob, "--duration", "5").finish()
    b = callee.finish()
    assert a.code == 0 and b.code == 0, a.stderr + b.stderr
    assert "calling" in a.stderr and "(video)" in a.stderr
    check_media(a.summary, sends_audio=False)
    assert len(b.summary["received"]["video"]["numbers"]) >= WANTED_FRAMES
    assert b.summary["received"]["video"]["in_order"]
    assert b.summary["received"]["audio"]["frames"] == 0 and b.summary["sent"]["audio_frames"] > 0

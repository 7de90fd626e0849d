"""``netcore-call`` fails with one sentence on stderr and a non-zero status, for each cause."""

from __future__ import annotations

from tests.call.conftest import Cli, run_cli, signal_daemon, the_error, users
from tests.conftest import free_port


def test_wrong_password_says_so(tmp_path, signal, names):
    alice = names("alice")
    users(signal.url, alice)
    result = Cli(tmp_path, signal.url, alice, "--password", "not-the-password", "answer").finish(30)
    assert result.code == 1
    assert the_error(result) == f"netcore-call: cannot log in as {alice}: wrong password, or no such user."


def test_unknown_user_cannot_log_in(tmp_path, signal, names):
    result = run_cli(tmp_path, signal.url, names("ghost"), "answer")
    assert result.code == 1
    assert "wrong password, or no such user" in the_error(result)


def test_calling_an_unknown_user_says_so(tmp_path, signal, names):
    alice, nobody = names("alice"), names("nobody")
    users(signal.url, alice)
    result = run_cli(tmp_path, signal.url, alice, "call", nobody)
    assert result.code == 1
    assert the_error(result) == (f"netcore-call: cannot call {nobody}: no such user, or not a friend of {alice}"
                                 " (only friends may be called).")


def test_calling_an_offline_friend_says_so(tmp_path, names):
    # A daemon with a short resume window: bob's session from making friends goes at once.
    with signal_daemon(tmp_path, "--resume-window", "0.1") as daemon:
        alice, bob = names("alice"), names("bob")
        users(daemon.url, alice, bob)
        result = run_cli(tmp_path, daemon.url, alice, "call", bob)
    assert result.code == 1
    assert the_error(result) == f"netcore-call: {bob} is offline or unavailable."


def test_a_declined_call_says_so_and_the_decliner_exits_cleanly(tmp_path, signal, names):
    alice, bob = names("alice"), names("bob")
    users(signal.url, alice, bob)
    callee = Cli(tmp_path, signal.url, bob, "answer", "--decline", "--wait", "60")
    callee.expect("waiting for a call")
    caller = run_cli(tmp_path, signal.url, alice, "call", bob)
    declined = callee.finish(30)
    assert caller.code == 1
    assert the_error(caller) == f"netcore-call: {bob} declined the call."
    assert declined.code == 0, declined.stderr
    assert f"declined the call from {alice}" in declined.stderr
    assert declined.summary["declined"] is True


def test_no_server_there_says_so(tmp_path):
    port = free_port(kind=1)  # SOCK_STREAM: nothing listens on it
    result = run_cli(tmp_path, f"ws://127.0.0.1:{port}", "alice", "call", "bob")
    assert result.code == 1
    assert the_error(result) == (f"netcore-call: cannot reach the signaling server at ws://127.0.0.1:{port}/v1/ws"
                                 " (connection refused: is netcore-signal running there?).")


def test_a_display_that_cannot_be_opened_says_so_before_connecting(tmp_path):
    # No X server on display :87 (the test starts none), and no signaling server either:
    # the media opens first, so the display is what is reported.
    result = run_cli(tmp_path, f"ws://127.0.0.1:{free_port(kind=1)}", "alice", "--screen", ":87", "call", "bob")
    assert result.code == 1
    assert the_error(result).startswith("netcore-call: cannot open display :87: ")


def test_a_video_file_that_cannot_be_opened_says_so(tmp_path):
    missing = tmp_path / "missing.webm"
    result = run_cli(tmp_path, "ws://127.0.0.1:9", "alice", "--video-file", str(missing), "call", "bob")
    assert result.code == 1
    assert the_error(result) == f"netcore-call: cannot open video file {missing}: no such file."


def test_relay_only_without_a_turn_server_says_so(tmp_path, signal, names):
    alice, bob = names("alice"), names("bob")
    users(signal.url, alice, bob)
    result = run_cli(tmp_path, signal.url, alice, "--relay-only", "call", bob)
    assert result.code == 1
    assert the_error(result) == ("netcore-call: relay only needs a TURN server, and the signaling server"
                                 " offered none.")

"""``netcore-call``: place, answer or join calls through ``netcore-signal`` with our peer connection.

::

    netcore-call --server ws://127.0.0.1:8080 --user alice --password ... call bob --duration 20
    netcore-call --server ws://127.0.0.1:8080 --user bob --password ... answer
    netcore-call ... answer --decline
    netcore-call ... --user pub --password ... join new --invite sub1 --invite sub2 --duration 30
    netcore-call ... --user sub --password ... --subscribers 3 join ROOM --duration 20
    netcore-call ... --user own --password ... --sync-marks join new --invite bob --record-room --wait-recording 60

Progress lines and a status line every second go to stderr, the summary
table to stdout (``--summary-json FILE`` writes it for programs). Exit
status: 0 for a call that connected and ended by a hang-up (either side),
1 with one sentence on stderr for anything else, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from netcore.aio import run
from netcore.media.sources import SourceUnavailable
from servers.signal.client import (Busy, CallEnded, LoginFailed, NotAllowed, NotFound, RateLimited,
                                   ServerUnreachable, SignalingError, Unavailable)

from .call import CallOptions, Console, Failure, answer_call, ended_sentence, place_call, write_summary
from .media import MediaChoice
from .room import RoomOptions, run_room

__all__ = ["main", "parse_args"]

PROG = "netcore-call"


def _common(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes, before or after the command's name (``call bob --video``)."""
    def add(*flags: str, default=None, **kwargs) -> None:
        parser.add_argument(*flags, default=default if defaults else argparse.SUPPRESS, **kwargs)
    add("--server", default="ws://127.0.0.1:8080", help="the signaling server (default: ws://127.0.0.1:8080)")
    add("--user", help="our username (required)")
    add("--password", help="our password (required)")
    add("--register", default=False, action="store_true", help="register the user first if it does not exist")
    add("--audio", default=False, action="store_true", help="send audio (with neither --audio nor --video: both)")
    add("--video", default=False, action="store_true", help="send video")
    add("--screen", metavar="DISPLAY", help="send this X display (':99') as the video, via x11grab")
    add("--video-file", metavar="FILE", help="send this file's video (looped) instead of the camera")
    add("--audio-file", metavar="FILE", help="send this file's audio (looped)")
    add("--size", default="640x480", help="synthetic camera size (default: 640x480)")
    add("--sync-marks", default=False, action="store_true",
        help="the synthetic camera flashes white at the start of every second, when the microphone clicks "
             "(to measure A/V sync in a recording)")
    add("--fps", default=30.0, type=float, help="video frame rate (default: 30)")
    add("--simulcast", default=False, action="store_true",
        help="send the video as three simulcast layers (a quarter, half and the whole size), as the page does")
    add("--temporal-layers", default=1, type=int, choices=(1, 2, 3), metavar="N",
        help="code VP8 video (each simulcast layer) with N temporal layers (L1T2, L1T3), so a call server can "
             "send a viewer asking for a low frame rate only the lowest (default: 1)")
    add("--noise", default=0, type=int, metavar="N",
        help="add luma noise of up to N to the synthetic camera, so its encoders spend their whole bitrate")
    add("--host", dest="hosts", action="append", metavar="IP",
        help="local address to gather candidates on; repeatable (default: 127.0.0.1)")
    add("--relay-only", default=False, action="store_true", help="media only through the TURN server")
    add("--duration", type=float, help="hang up this many seconds after connecting")
    add("--connect-timeout", default=20.0, type=float, help="seconds to get a media path (default: 20)")
    add("--record", metavar="FILE", help="write what we receive (.webm: VP8+Opus, .mkv: H.264+Opus)")
    add("--summary-json", metavar="FILE", help="write the summary as JSON")
    add("--log-level", default="warning", help="Python logging level (default: warning)")
    add("--subscribers", default=0, type=int, metavar="N",
        help="join: run N receive-only sessions, users USER1..USERN with the same password")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Place, answer or join calls through netcore-signal.")
    _common(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", help="call a friend")
    call.add_argument("peer")
    answer = commands.add_parser("answer", help="wait for a call and answer it")
    answer.add_argument("--decline", action="store_true", help="decline the call instead")
    answer.add_argument("--from", dest="caller", metavar="USER", help="only a call from USER")
    answer.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a call (default: %(default)s)")
    join = commands.add_parser("join", help="join a room, mesh or on the call server (ROOM: an id, 'new' or 'invited')")
    join.add_argument("room")
    join.add_argument("--invite", action="append", default=[], metavar="USER",
                      help="with 'new': invite USER (a friend); repeatable")
    join.add_argument("--wait", type=float, default=60.0, help="with 'invited': seconds to wait for one")
    join.add_argument("--record-room", action="store_true",
                      help="with 'new': record the room on the call server (files for everyone who takes part)")
    join.add_argument("--wait-recording", type=float, default=0.0, metavar="SECONDS",
                      help="after leaving, wait this long for the room's recording.ready")
    join.add_argument("--slots", type=int, default=4, metavar="N",
                      help="on the call server: receive N video and N audio streams (default: 4)")
    join.add_argument("--watch", action="store_true",
                      help="with --subscribers: viewers of a broadcast at an edge call server (the publishers "
                           "are on another server of the tree, not in this room; docs/broadcast.md)")
    join.add_argument("--region", metavar="R",
                      help="a broadcast's viewer: signaling places each session on the least-loaded edge call "
                           "server of region R (docs/broadcast.md, \"Viewers on edges\")")
    join.add_argument("--max-height", type=int, metavar="LINES",
                      help="on the call server: ask for at most LINES of each video (room.quality), as a small "
                           "tile would")
    join.add_argument("--max-fps", type=float, metavar="N",
                      help="on the call server: ask for at most N frames a second of each video (room.quality; "
                           "the publisher's temporal layers that fit), as a small tile of a broadcast would")
    for sub in (call, answer, join):
        _common(sub, defaults=False)
    args = parser.parse_args(argv)
    if not args.user or not args.password:
        parser.error("--user and --password are required")
    try:
        width, height = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r} is not WIDTHxHEIGHT")
    if args.screen and args.video_file:
        parser.error("choose one of --screen and --video-file")
    if args.subscribers and args.command != "join":
        parser.error("--subscribers goes with join")
    if args.subscribers < 0:
        parser.error("--subscribers must be at least 1")
    if getattr(args, "record_room", False) and args.room != "new":
        parser.error("--record-room goes with join new (the room's owner records)")
    args.width, args.height = width, height
    return args


def options_from(args: argparse.Namespace) -> CallOptions:
    audio, video = args.audio or bool(args.audio_file), args.video or bool(args.screen or args.video_file)
    if not args.audio and not args.video:  # neither asked for: both (the screen or a file replaces the camera)
        audio = video = True
    choice = MediaChoice(audio=audio, video=video, screen=args.screen,
                         video_file=args.video_file, audio_file=args.audio_file,
                         width=args.width, height=args.height, fps=args.fps, marks=args.sync_marks,
                         simulcast=args.simulcast, noise=args.noise, temporal_layers=args.temporal_layers)
    return CallOptions(server=args.server, user=args.user, password=args.password, register=args.register,
                       media=choice, hosts=tuple(args.hosts or ("127.0.0.1",)), relay_only=args.relay_only,
                       duration=args.duration, connect_timeout=args.connect_timeout,
                       wait=getattr(args, "wait", 60.0), decline=getattr(args, "decline", False),
                       caller=getattr(args, "caller", None), record=args.record, summary_json=args.summary_json)


def sentence(exc: BaseException, args: argparse.Namespace) -> str:
    """One sentence for a failure, naming who or what."""
    peer = getattr(args, "peer", None) or "the other user"
    if isinstance(exc, (Failure, SourceUnavailable)):
        return str(exc)
    if isinstance(exc, ServerUnreachable):
        return exc.reason
    if isinstance(exc, LoginFailed):
        return f"cannot log in as {args.user}: wrong password, or no such user"
    if isinstance(exc, NotAllowed) and exc.request == "call.invite":
        return f"cannot call {peer}: no such user, or not a friend of {args.user} (only friends may be called)"
    if isinstance(exc, Unavailable):
        return f"{peer} is offline or unavailable"
    if isinstance(exc, Busy):
        return f"{peer} is busy"
    if isinstance(exc, CallEnded):
        return ended_sentence(peer, exc.reason)
    if isinstance(exc, RateLimited):
        return f"the server refused {exc.request or 'the request'}: too many requests ({exc.reason})"
    if isinstance(exc, (NotFound, SignalingError)):
        return f"the server refused {exc.request or 'the request'}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


async def _run(args: argparse.Namespace) -> dict:
    options = options_from(args)
    console = Console(sys.stderr)
    if args.command == "call":
        return await place_call(options, args.peer, console)
    if args.command == "join":
        room = RoomOptions(args.room, tuple(args.invite), args.subscribers, args.slots, args.record_room,
                           args.wait_recording, args.watch, args.region, args.max_height, args.max_fps)
        return await run_room(options, room, console)
    return await answer_call(options, console)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run(_run(args))
    except (Failure, SourceUnavailable, SignalingError, asyncio.TimeoutError) as exc:
        text = sentence(exc, args) if not isinstance(exc, asyncio.TimeoutError) else "timed out"
        write_summary(args.summary_json, {"user": args.user, "connected": False, "error": text})
        print(f"{PROG}: {text}.", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # before the call was up (during it, Ctrl-C hangs up cleanly)
        write_summary(args.summary_json, {"user": args.user, "connected": False, "error": "interrupted"})
        print(f"{PROG}: interrupted.", file=sys.stderr)
        sys.exit(130)
    write_summary(args.summary_json, summary)
    if summary.get("declined"):
        sys.exit(0)
    if not summary.get("connected"):
        print(f"{PROG}: the call never connected.", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()

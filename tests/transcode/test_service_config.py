"""Settings of the transcoding service: netcore-transcode's flags and TOML, netcore-sfu's --transcode flags,
the renditions' wire form, and the worker's exit status for bad settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netcore.errors import UsageError
from netcore.transcode.ladder import Rendition, codec_ladder, rendition_from_wire, rendition_to_wire, simulcast_ladder
from netcore.transcode.planner import STOP_AFTER
from servers.sfu.config import build_parser as sfu_parser
from servers.sfu.config import load_settings as sfu_settings
from servers.transcode.config import DEFAULT_CAPACITY, build_parser, load_settings
from tests.sfu.live import ROOT


def settings(*argv: str):
    return load_settings(build_parser().parse_args(list(argv)))


def test_the_worker_takes_its_settings_from_the_file_and_the_flags_win(tmp_path, monkeypatch):
    monkeypatch.delenv("NETCORE_SERVICE_SECRET", raising=False)
    plain = settings("--sfu", "ws://127.0.0.1:7070/")
    assert (plain.capacity, plain.secret, plain.http) == (DEFAULT_CAPACITY, None, None)
    assert plain.name  # host name and process id
    config = tmp_path / "transcode.toml"
    config.write_text('sfu = "ws://10.0.0.1:7070/"\nsecret = "s"\ncapacity = 6\nname = "t1"\n'
                      'http = "127.0.0.1:9091"\nlog-level = "debug"\n')
    from_file = settings("--config", str(config))
    assert (from_file.sfu, from_file.secret, from_file.capacity, from_file.name, from_file.http,
            from_file.log_level) == ("ws://10.0.0.1:7070/", "s", 6, "t1", ("127.0.0.1", 9091), "debug")
    flags = settings("--config", str(config), "--capacity", "2", "--name", "t2", "--sfu", "ws://[::1]:1/")
    assert (flags.capacity, flags.name, flags.sfu) == (2, "t2", "ws://[::1]:1/")
    monkeypatch.setenv("NETCORE_SERVICE_SECRET", "from-env")
    assert settings("--config", str(config)).secret == "from-env"
    assert settings("--config", str(config), "--secret", "flag").secret == "flag"


@pytest.mark.parametrize("argv, toml", [
    ((), ""),  # no call server
    (("--sfu", "http://127.0.0.1:7070/"), ""),  # not a WebSocket URL
    (("--sfu", "ws://127.0.0.1:7070/", "--capacity", "0"), ""),
    (("--sfu", "ws://127.0.0.1:7070/"), "capacity = 1.5\n"),
    (("--sfu", "ws://127.0.0.1:7070/"), "capacty = 2\n"),  # a misspelt key is refused, not ignored
    (("--sfu", "ws://127.0.0.1:7070/"), 'http = "nowhere"\n'),
])
def test_bad_worker_settings_are_refused(tmp_path, argv, toml):
    config = tmp_path / "transcode.toml"
    config.write_text(toml)
    with pytest.raises(UsageError):
        settings("--config", str(config), *argv)


def test_the_worker_exits_2_with_one_line_for_bad_settings():
    done = subprocess.run([sys.executable, "-m", "servers.transcode.main", "--sfu", "ftp://x/"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("netcore-transcode: ") and done.stderr.count("\n") == 1


def test_the_call_server_links_workers_only_when_asked(tmp_path):
    def sfu(*argv: str):
        return sfu_settings(sfu_parser().parse_args(list(argv)))

    assert sfu().transcode is None and sfu().transcode_hold == STOP_AFTER
    assert sfu("--transcode", "127.0.0.1:7070", "--transcode-hold", "4").transcode == ("127.0.0.1", 7070)
    config = tmp_path / "sfu.toml"
    config.write_text('transcode = "[::1]:0"\ntranscode-hold = 2.5\n')
    from_file = sfu("--config", str(config))
    assert (from_file.transcode, from_file.transcode_hold) == (("::1", 0), 2.5)
    assert sfu("--config", str(config), "--transcode-hold", "1").transcode_hold == 1.0
    with pytest.raises(UsageError):
        sfu("--transcode-hold", "-1")


def test_renditions_cross_the_link_unchanged_and_a_malformed_one_is_refused():
    for rendition in simulcast_ladder() + codec_ladder("H264") + (Rendition("x", "VP8", None, 90_000, 15.0),):
        assert rendition_from_wire(rendition_to_wire(rendition)) == rendition
    for bad in ({}, {"name": "h", "height": "tall"}, {"name": "h", "bitrate": None}, "h"):
        with pytest.raises(UsageError):
            rendition_from_wire(bad)  # type: ignore[arg-type]

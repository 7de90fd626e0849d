"""Settings of netcore-transcode: flags and a TOML file with the same names (a flag wins over the file).

::

    sfu = "ws://127.0.0.1:7070/"      # the call server's worker link (its --transcode HOST:PORT)
    secret = "..."                      # its bearer secret (the call server's --service-secret)
    capacity = 4                        # renditions this worker makes at once (a ladder of two takes 2)
    name = "transcode-1"                # its name at the call server (default: host name and process id)
    http = "127.0.0.1:9091"             # /health and /metrics
    log-level = "info"
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass

from netcore.errors import UsageError
from servers.settings import parse_hostport, read_toml

__all__ = ["Settings", "build_parser", "load_settings", "DEFAULT_CAPACITY"]

DEFAULT_CAPACITY = 4  # renditions: two 360p + 180p ladders of 720p sources, about one core's worth


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Settings:
    sfu: str | None = None
    secret: str | None = None
    capacity: int = DEFAULT_CAPACITY
    name: str = ""
    http: tuple[str, int] | None = None
    log_level: str = "info"


def _http(value: str) -> tuple[str, int]:
    return parse_hostport(value, any_port=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netcore-transcode",
                                     description="netcore transcoding worker: renditions for a call server")
    parser.add_argument("--config", help="TOML file with the settings below (flags win)")
    parser.add_argument("--sfu", help="the call server's worker link, ws://HOST:PORT/ (its --transcode)")
    parser.add_argument("--secret", help="bearer secret of that link (or NETCORE_SERVICE_SECRET)")
    parser.add_argument("--capacity", type=int,
                        help=f"renditions made at once, announced to the call server (default {DEFAULT_CAPACITY})")
    parser.add_argument("--name", help="this worker's name at the call server (default: host name-pid)")
    parser.add_argument("--http", type=_http, help="HOST:PORT for /health and /metrics")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    """Built-in defaults, then the TOML file, then the environment's secret, then the flags."""
    settings = Settings()
    if args.config:
        data = read_toml(args.config, {"sfu", "secret", "capacity", "name", "http", "log-level"})
        settings.sfu = data.get("sfu", settings.sfu)
        settings.secret = data.get("secret", settings.secret)
        settings.capacity = data.get("capacity", settings.capacity)
        settings.name = str(data.get("name", settings.name))
        settings.log_level = data.get("log-level", settings.log_level)
        if "http" in data:
            try:
                settings.http = _http(data["http"])
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{args.config}: {exc}") from None
    settings.secret = os.environ.get("NETCORE_SERVICE_SECRET", settings.secret)
    for name in ("sfu", "secret", "capacity", "name", "http", "log_level"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if not settings.sfu:
        raise UsageError("--sfu is required: the call server's worker link, ws://HOST:PORT/")
    if not settings.sfu.startswith(("ws://", "wss://")):
        raise UsageError(f"--sfu must be a ws:// or wss:// URL, got {settings.sfu!r}")
    if not isinstance(settings.capacity, int) or isinstance(settings.capacity, bool) or settings.capacity < 1:
        raise UsageError(f"capacity must be a whole number of renditions, 1 or more, got {settings.capacity!r}")
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise UsageError(f"unknown log level {settings.log_level!r}")
    settings.name = settings.name or _default_name()
    return settings

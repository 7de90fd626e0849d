"""Daemon configuration: defaults, a TOML file, then command-line flags.

Every field of :class:`SignalConfig` is a TOML key of the same name and a
flag ``--field-name``; flags win over the file, the file over the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from netcore.errors import UsageError
from servers.settings import read_toml

from .core import CoreConfig

__all__ = ["SignalConfig", "load_config"]


@dataclass
class SignalConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    metrics_port: int | None = None  # None: /metrics and /health on the WebSocket port
    data_dir: str = "./signal-data"
    database: str | None = None  # postgresql://... ; default SQLite in data_dir
    redis: str | None = None  # redis://... makes this daemon one node of several
    node_id: str | None = None  # default: a random id per start
    token_secret: str | None = None  # default: generated once and kept in data_dir
    token_ttl: int = 7 * 86400
    service_secret: str | None = None  # bearer token of the call server's service link
    turn_secret: str | None = None  # same as netcore-turn --auth-secret
    turn_urls: list[str] = field(default_factory=list)
    stun_urls: list[str] = field(default_factory=list)
    turn_ttl: int = 86400
    analytics: str | None = None  # JSON lines file; default data_dir/analytics.jsonl
    heartbeat: float = 5.0  # multi-node: user-map heartbeat interval (entries live 3x this)
    log_level: str = "INFO"
    recordings_dir: str | None = None  # where the recording worker writes: files served to who took part
    recording_url_ttl: int = 3600  # seconds a recording file's URL (its access token) stays valid
    # admission and resource bounds
    allowed_origins: list[str] = field(default_factory=list)  # pages besides our own that may connect
    max_pending_bytes: int = 1024 * 1024  # unsent bytes per connection before it is closed
    login_timeout: float = 10.0  # seconds a connection may stay without logging in
    max_connections_per_source: int = 64  # open WebSockets per client address
    login_free_failures: int = 5  # failed logins per account or address before back-off
    login_backoff: float = 1.0  # first back-off in seconds, doubling per further failure
    login_backoff_max: float = 60.0
    hash_workers: int = 1  # password hashes (scrypt) computed at once
    hash_queue: int = 64  # hashes waiting beyond those; more are refused as busy
    # core
    ring_timeout: float = 30.0
    resume_window: float = 30.0
    friends_only: bool = True
    group_threshold: int = 4
    call_server: str | None = None
    registry: str | None = None  # redis://... of the broadcast tree: viewers placed on its edges (docs/broadcast.md)
    max_room_size: int = 50
    rate: float = 20.0
    burst: float = 40.0
    max_strikes: int = 20
    max_message_bytes: int = 64 * 1024
    replay_bytes: int = 1024 * 1024

    def core_config(self) -> CoreConfig:
        names = {f.name for f in dataclasses.fields(CoreConfig)}
        return CoreConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


def _flag_type(kind: object):
    text = str(kind)
    if "bool" in text:
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    if "int" in text:
        return int
    if "float" in text:
        return float
    return str


def load_config(argv: list[str] | None = None) -> SignalConfig:
    parser = argparse.ArgumentParser(prog="netcore-signal", description="The netcore signaling daemon.")
    parser.add_argument("--config", help="TOML file with any of the settings below")
    for f in dataclasses.fields(SignalConfig):
        flag = "--" + f.name.replace("_", "-")
        if "list" in str(f.type):
            parser.add_argument(flag, action="append", default=None, dest=f.name)
        else:
            parser.add_argument(flag, type=_flag_type(f.type), default=None, dest=f.name)
    args = parser.parse_args(argv)
    values: dict = {}
    known = {f.name for f in dataclasses.fields(SignalConfig)}
    if args.config:
        try:
            values.update(read_toml(args.config, known))
        except UsageError as exc:
            parser.error(str(exc))
    for name in known:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    return SignalConfig(**values)

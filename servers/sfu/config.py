"""Settings of netcore-sfu: flags and a TOML file with the same names (a flag wins over the file).

::

    listen = ["0.0.0.0:40000", "[::]:40000"]   # the one media port, per address family
    public-ip = ["203.0.113.7"]                  # what clients are told (a server behind 1:1 NAT)
    http = "127.0.0.1:9090"                      # /health and /metrics
    signal = "ws://127.0.0.1:8080/v1/service"    # netcore-signal's service link
    service-secret = "..."                       # its bearer secret
    data-dir = "./sfu-data"                      # where the server keeps files
    record-dir = "./sfu-data/recordings"         # recorded rooms' journals (default DATA_DIR/recordings)
    recordings-redis = "redis://127.0.0.1:6379/0" # announce finished recordings on the list nc:recordings
    name = "sfu-eu-1"                            # this server's name at signaling (default: public IP:port)
    transcode = "127.0.0.1:7070"                 # where transcoding workers link (netcore-transcode --sfu)
    transcode-hold = 10.0                        # seconds a rendition nobody needs keeps running
    studio-card = "./back-soon.png"              # the studios' still card (default: a drawn one)
    cascade = "0.0.0.0:7100"                     # links from other call servers (docs/broadcast.md)
    cascade-media = "0.0.0.0:7100"               # their UDP media socket (default: cascade's host, any port)
    upstream = "ws://origin.example:7100/"       # where this server pulls rooms it does not publish
    cascade-rooms = { "local-id" = "upstream-id" } # a room's id at the upstream, where it differs
    registry = "redis://127.0.0.1:6379/0"        # the tree's registry (upstreams chosen from it)
    tier = "edge"                                # origin, tier2 or edge (with registry)
    region = "eu"                                # where this server is (with registry)
    cascade-url = "ws://203.0.113.7:7100/"       # what the others link to (default ws://PUBLIC-IP:PORT/)
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from netcore.errors import UsageError
from servers.settings import parse_hostport as _parse_hostport
from netcore.transcode.planner import STOP_AFTER
from servers.settings import parse_ip, read_toml

__all__ = ["Settings", "build_parser", "load_settings", "parse_hostport"]

DEFAULT_LISTEN = "127.0.0.1:40000"
DEFAULT_DATA_DIR = "./sfu-data"


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); port 0 asks the system for one."""
    return _parse_hostport(value, any_port=True)


@dataclass
class Settings:
    listen: list[tuple[str, int]] = field(default_factory=lambda: [parse_hostport(DEFAULT_LISTEN)])
    public_ip: list[str] = field(default_factory=list)
    http: tuple[str, int] | None = None
    signal: str | None = None
    service_secret: str | None = None
    max_participants: int = 1000
    max_bitrate: int = 2_500_000
    max_subscriber_bitrate: int = 10_000_000
    last_n: int | None = None  # video of at most this many most recent speakers forwarded to each subscriber
    log_level: str = "info"
    name: str | None = None  # at signaling, unique among its call servers; None: the public address
    analytics: str | None = None  # JSON lines file of sfu.* analytics events
    analytics_redis: str | None = None  # or the Redis stream nc:analytics
    node: str | None = None  # node name in analytics events (default: the host name)
    data_dir: str = DEFAULT_DATA_DIR
    record_dir: str | None = None  # None: DATA_DIR/recordings
    recordings_redis: str | None = None  # finished recordings LPUSHed to nc:recordings for the workers
    transcode: tuple[str, int] | None = None  # the workers' link (None: no transcoding)
    transcode_hold: float = STOP_AFTER
    studio_card: str | None = None  # an image for the studios' card (docs/broadcast.md); None: the drawn card
    forward_path: str | None = None  # "c" or "python"; None: NETCORE_SFU_FORWARD, else "c" when built
    cascade: tuple[str, int] | None = None  # the links' control WebSocket (None: no links)
    cascade_media: tuple[str, int] | None = None  # the links' UDP socket (None: cascade's host, any port)
    upstream: str | None = None  # ws://HOST:PORT/ of the server this one pulls rooms from
    cascade_rooms: dict[str, str] = field(default_factory=dict)  # local room id -> its id at the upstream
    registry: str | None = None  # Redis URL of the tree's registry (netcore.sfu.topology)
    tier: str = "origin"
    region: str = "default"
    cascade_url: str | None = None

    @property
    def recordings(self) -> str:
        """Where recorded rooms' journals go (the recording worker watches it)."""
        return self.record_dir or os.path.join(self.data_dir, "recordings")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netcore-sfu", description="netcore call server (SFU)")
    parser.add_argument("--config", help="TOML file with the settings below (flags win)")
    parser.add_argument("--listen", action="append", type=parse_hostport,
                        help=f"media UDP HOST:PORT, once per address family (default {DEFAULT_LISTEN})")
    parser.add_argument("--public-ip", action="append", type=parse_ip,
                        help="address to advertise instead of the listening one (1:1 NAT), per family")
    parser.add_argument("--http", type=parse_hostport, help="HOST:PORT for /health and /metrics")
    parser.add_argument("--signal", help="netcore-signal's service link, ws://HOST:PORT/v1/service")
    parser.add_argument("--service-secret", help="bearer secret of the service link")
    parser.add_argument("--max-participants", type=int, help="joins beyond are refused (default 1000)")
    parser.add_argument("--max-bitrate", type=int,
                        help="bit/s a publisher is asked to send at most per video track (default 2.5M)")
    parser.add_argument("--max-subscriber-bitrate", type=int,
                        help="bit/s cap of the estimate towards any one participant (default 10M)")
    parser.add_argument("--last-n", type=int,
                        help="forward the video of only the N most recent speakers to each subscriber (default: all)")
    parser.add_argument("--data-dir", help=f"where the server keeps files (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--record-dir", help="recorded rooms' journals (default DATA_DIR/recordings)")
    parser.add_argument("--recordings-redis", help="Redis URL: announce each finished recording on nc:recordings")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--name", help="this call server's name at signaling (default: its public IP:port)")
    parser.add_argument("--analytics", help="append sfu.* analytics events to this JSON lines file")
    parser.add_argument("--analytics-redis", help="add sfu.* analytics events to the Redis stream nc:analytics instead")
    parser.add_argument("--node", help="node name in analytics events (default: the host name)")
    parser.add_argument("--transcode", type=parse_hostport,
                        help="HOST:PORT where netcore-transcode workers link (default: no transcoding)")
    parser.add_argument("--transcode-hold", type=float,
                        help=f"seconds a rendition nobody needs keeps running (default {STOP_AFTER:g})")
    parser.add_argument("--studio-card", help="image (PNG, JPEG) shown as the studios' card (default: a drawn one)")
    parser.add_argument("--forward-path", choices=["c", "python"],
                        help="forward steady streams in the compiled path or all in Python (default c when built)")
    parser.add_argument("--cascade", type=parse_hostport,
                        help="HOST:PORT where other call servers link (WebSocket; docs/broadcast.md)")
    parser.add_argument("--cascade-media", type=parse_hostport,
                        help="HOST:PORT of the links' UDP media socket (default: --cascade's host, any port)")
    parser.add_argument("--upstream", help="ws://HOST:PORT/ of the call server to pull rooms from (needs --cascade)")
    parser.add_argument("--cascade-room", action="append", metavar="LOCAL=UPSTREAM",
                        help="a room's id at the upstream where it differs from ours (repeatable)")
    parser.add_argument("--registry", help="Redis URL: register in the broadcast tree, choose upstreams from it")
    parser.add_argument("--tier", choices=["origin", "tier2", "edge"], help="this server's tier (default origin)")
    parser.add_argument("--region", help="this server's region (default 'default')")
    parser.add_argument("--cascade-url", help="the URL other servers link to (default ws://PUBLIC-IP:PORT/)")
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    """Built-in defaults, then the TOML file, then the flags."""
    settings = Settings()
    if args.config:
        data = read_toml(args.config, {"listen", "public-ip", "http", "signal", "service-secret",
                                       "max-participants", "max-bitrate", "max-subscriber-bitrate",
                                       "last-n", "log-level", "name", "analytics",
                                       "analytics-redis", "node", "data-dir", "record-dir", "recordings-redis",
                                       "transcode", "transcode-hold", "studio-card", "forward-path",
                                       "cascade", "cascade-media", "upstream",
                                       "cascade-rooms", "registry", "tier", "region", "cascade-url"})
        try:
            if "listen" in data:
                settings.listen = [parse_hostport(v) for v in data["listen"]]
            if "public-ip" in data:
                settings.public_ip = [parse_ip(v) for v in data["public-ip"]]
            if "http" in data:
                settings.http = parse_hostport(data["http"])
            if "transcode" in data:
                settings.transcode = parse_hostport(data["transcode"])
            for key in ("cascade", "cascade-media"):
                if key in data:
                    setattr(settings, key.replace("-", "_"), parse_hostport(data[key]))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{args.config}: {exc}") from None
        settings.signal = data.get("signal", settings.signal)
        settings.service_secret = data.get("service-secret", settings.service_secret)
        settings.max_participants = int(data.get("max-participants", settings.max_participants))
        settings.max_bitrate = int(data.get("max-bitrate", settings.max_bitrate))
        settings.max_subscriber_bitrate = int(data.get("max-subscriber-bitrate", settings.max_subscriber_bitrate))
        if "last-n" in data:
            settings.last_n = int(data["last-n"])
        settings.log_level = data.get("log-level", settings.log_level)
        settings.name = data.get("name", settings.name)
        settings.analytics = data.get("analytics", settings.analytics)
        settings.analytics_redis = data.get("analytics-redis", settings.analytics_redis)
        settings.node = data.get("node", settings.node)
        settings.data_dir = str(data.get("data-dir", settings.data_dir))
        settings.record_dir = data.get("record-dir", settings.record_dir)
        settings.recordings_redis = data.get("recordings-redis", settings.recordings_redis)
        settings.transcode_hold = float(data.get("transcode-hold", settings.transcode_hold))
        settings.studio_card = data.get("studio-card", settings.studio_card)
        settings.forward_path = data.get("forward-path", settings.forward_path)
        settings.upstream = data.get("upstream", settings.upstream)
        settings.registry = data.get("registry", settings.registry)
        settings.tier = str(data.get("tier", settings.tier))
        settings.region = str(data.get("region", settings.region))
        settings.cascade_url = data.get("cascade-url", settings.cascade_url)
        settings.cascade_rooms = {str(k): str(v) for k, v in dict(data.get("cascade-rooms", {})).items()}
    if args.listen:
        settings.listen = args.listen
    if args.public_ip:
        settings.public_ip = args.public_ip
    for name in ("http", "signal", "service_secret", "max_participants", "max_bitrate", "max_subscriber_bitrate",
                 "last_n", "log_level", "name", "analytics", "analytics_redis", "node", "data_dir", "record_dir",
                 "recordings_redis", "transcode", "transcode_hold", "studio_card", "forward_path", "cascade",
                 "cascade_media", "upstream", "registry", "tier", "region", "cascade_url"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if settings.last_n is not None and settings.last_n < 0:
        raise UsageError("--last-n is a count of speakers, 0 or more")
    if settings.transcode_hold < 0:
        raise UsageError("--transcode-hold is a number of seconds, 0 or more")
    if settings.forward_path not in (None, "c", "python"):
        raise UsageError("forward-path is 'c' or 'python'")
    for pair in args.cascade_room or ():
        local, sep, there = pair.partition("=")
        if not sep or not local or not there:
            raise UsageError("--cascade-room is LOCAL=UPSTREAM")
        settings.cascade_rooms[local] = there
    if (settings.upstream or settings.registry) and not settings.cascade:
        raise UsageError("--upstream and --registry need --cascade (the links' address)")
    if settings.tier not in ("origin", "tier2", "edge"):
        raise UsageError("tier is origin, tier2 or edge")
    if settings.signal and not settings.service_secret:
        raise UsageError("--signal needs --service-secret")
    return settings

"""Settings of netcore-turn: command-line flags and a TOML file with the same names.

Every setting is one entry of :data:`OPTIONS`: its flag, its TOML key (the
flag without the dashes), its type, its default and its help text. A flag
given on the command line wins over the file; the file wins over the
built-in default. The built-in defaults serve 127.0.0.1:3478 with realm
``netcore`` and one user ``netcore:netcore`` (dropped as soon as any user or
REST secret is configured), so that ``netcore-turn`` alone is a working lab
server, reachable from this host only.
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass
from typing import Any

from netcore.errors import UsageError
from netcore.stun.saslprep import saslprep
from netcore.turn.server import ServerConfig
from servers.settings import parse_hostport, parse_ip, read_toml

__all__ = ["OPTIONS", "build_parser", "load_settings", "Settings", "parse_hostport"]

DEFAULT_LISTEN = "127.0.0.1:3478"
DEFAULT_USER = "netcore:netcore"


def parse_user(value: str) -> tuple[str, str]:
    name, sep, password = str(value).partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD, got a value without ':'")
    try:
        saslprep(password)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(f"password of {name!r}: {exc}") from None
    return name, password


def parse_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a CIDR range") from None


def _flag(value: Any) -> bool:
    """A TOML boolean; a quoted "false" is a string, and would be true if taken as one."""
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _from_file(kind: Any, value: Any) -> Any:
    """A value from the TOML file, of the type the option expects (``int`` takes no bool nor text)."""
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"expected an integer, got {value!r}")
    return kind(value)


# (name, type, repeatable, default, help)
OPTIONS: tuple[tuple[str, Any, bool, Any, str], ...] = (
    ("listen", parse_hostport, True, [DEFAULT_LISTEN], "UDP address to serve STUN/TURN on (IPv4 or [IPv6]); repeatable"),
    ("realm", str, False, "netcore", "REALM of the long-term credentials"),
    ("user", parse_user, True, [DEFAULT_USER], "static user NAME:PASSWORD; repeatable (the built-in netcore:netcore goes away once any user or secret is set)"),
    ("auth-secret", str, True, [], "TURN REST API shared secret (usernames 'expiry:userid'); repeatable, for rotation"),
    ("relay-ip", parse_ip, True, [], "local address to bind relayed ports on, one per family (default: the first IPv4 listen address)"),
    ("external-ip", parse_ip, True, [], "address told to clients for relayed ports, behind a 1:1 NAT; one per family"),
    ("min-port", int, False, 49152, "lowest relayed port"),
    ("max-port", int, False, 65535, "highest relayed port"),
    ("allow-loopback-peers", _flag, False, False, "let clients relay to loopback addresses (tests and labs only)"),
    ("denied-peer", parse_cidr, True, [], "peer range to refuse (403) on top of the built-in private/special ranges; repeatable"),
    ("allowed-peer", parse_cidr, True, [], "peer range to allow even if denied; repeatable"),
    ("legacy-channel-numbers", _flag, False, False, "also accept channel numbers 0x5000-0x7FFF (RFC 5766; coturn's clients pick them)"),
    ("user-quota", int, False, 100, "allocations per username (486 beyond)"),
    ("total-quota", int, False, 10000, "allocations in total (486 beyond)"),
    ("max-bps", int, False, 0, "bandwidth cap per allocation in bytes/s each way, excess dropped (0: none)"),
    ("metrics", parse_hostport, False, None, "serve Prometheus metrics on HOST:PORT at /metrics (worker i adds i to the port)"),
    ("workers", int, False, 1, "worker processes sharing the listeners with SO_REUSEPORT"),
    ("data-path", str, False, "native", "where UDP ChannelData is relayed: 'native' (a C thread, when the extension is built) or 'python'"),
    ("log-level", str, False, "info", "debug, info, warning or error"),
    ("analytics", str, False, None, "append allocation analytics events to this JSON lines file"),
    ("analytics-redis", str, False, None, "add allocation analytics events to the Redis stream nc:analytics instead"),
    ("node", str, False, None, "node name in analytics events (default: the host name)"),
    ("software", str, False, "netcore", "SOFTWARE attribute in responses; empty for none"),
    ("tcp-listen", parse_hostport, True, [], "TCP address to serve STUN/TURN on (RFC 8656 section 3.1); repeatable"),
    ("tls-listen", parse_hostport, True, [], "TLS-over-TCP address to serve on (needs --cert and --key); repeatable"),
    ("cert", str, False, None, "TLS certificate chain file (PEM); re-read on SIGHUP"),
    ("key", str, False, None, "TLS private key file (PEM); re-read on SIGHUP"),
    ("handover", str, False, None, "Unix socket path for graceful upgrades: a daemon started with the same path takes the listeners over while this one drains its allocations"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netcore-turn",
        description="netcore STUN/TURN server (RFC 8489, RFC 8656, RFC 6156). "
        "Every option can also be set in the --config TOML file under the same name; flags win.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file with the same option names")
    metavars = {parse_hostport: "HOST:PORT", parse_user: "NAME:PASSWORD", parse_cidr: "CIDR", parse_ip: "IP", int: "N"}
    for name, kind, repeatable, default, text in OPTIONS:
        flag = f"--{name}"
        metavar = metavars.get(kind, name.split("-")[-1].upper())
        shown = f" (default: {default})" if default not in (None, [], False) else ""
        if kind is _flag:
            parser.add_argument(flag, action="store_true", default=None, help=text)
        elif repeatable:
            parser.add_argument(flag, action="append", type=kind, default=None, metavar=metavar, help=text + shown)
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=metavar, help=text + shown)
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--inherit-fds", default=None, help=argparse.SUPPRESS)
    return parser


@dataclass
class Settings:
    """Every option, merged from flags, file and defaults."""

    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def server_config(self) -> ServerConfig:
        users = dict(self["user"])
        return ServerConfig(
            realm=self["realm"],
            users=users,
            auth_secrets=tuple(self["auth-secret"]),
            software=self["software"] or None,
            user_quota=self["user-quota"],
            total_quota=self["total-quota"],
            max_bps=self["max-bps"],
            denied_peers=tuple(self["denied-peer"]),
            allowed_peers=tuple(self["allowed-peer"]),
            allow_loopback_peers=self["allow-loopback-peers"],
            channel_max=0x7FFF if self["legacy-channel-numbers"] else 0x4FFF,
        )


def load_settings(args: argparse.Namespace) -> Settings:
    """Merge ``args`` over the TOML file named by ``--config`` over the defaults."""
    from_file: dict[str, Any] = {}
    if args.config:
        from_file = read_toml(args.config, {name for name, *_ in OPTIONS})
    values: dict[str, Any] = {}
    for name, kind, repeatable, default, _ in OPTIONS:
        flag_value = getattr(args, name.replace("-", "_"))
        if flag_value is not None:
            values[name] = flag_value
        elif name in from_file:
            raw = from_file[name]
            try:
                if repeatable:
                    raw = raw if isinstance(raw, list) else [raw]
                    values[name] = [_from_file(kind, v) for v in raw]
                else:
                    values[name] = _from_file(kind, raw)
            except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
                raise UsageError(f"{args.config}: {name}: {exc}") from None
        else:
            values[name] = [kind(v) for v in default] if repeatable else default
    explicit_user = args.user is not None or "user" in from_file
    explicit_secret = bool(values["auth-secret"])
    if explicit_secret and not explicit_user:
        values["user"] = []  # a REST-only server has no built-in user
    if values["tls-listen"] and not (values["cert"] and values["key"]):
        raise UsageError("--tls-listen needs --cert and --key")
    if not 0 < values["min-port"] <= values["max-port"] < 65536:
        raise UsageError("need 0 < --min-port <= --max-port < 65536")
    if values["log-level"] not in ("debug", "info", "warning", "error"):
        raise UsageError("--log-level is one of debug, info, warning, error")
    if values["data-path"] not in ("native", "python"):
        raise UsageError("--data-path is native or python")
    if values["workers"] < 1:
        raise UsageError("--workers must be at least 1")
    if values["handover"] and values["workers"] > 1:
        raise UsageError("--handover serves one worker (--workers 1)")
    return Settings(values)

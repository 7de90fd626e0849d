"""What the daemons' settings share: address flags and the TOML file beside the flags.

Each daemon names its own settings; these read the values they have in
common the same way everywhere (``HOST:PORT`` with ``[V6]:PORT``, a bare IP
address) and load the ``--config`` file, refusing a key the daemon does not
know rather than ignoring a misspelt setting.
"""

from __future__ import annotations

import argparse
import ipaddress
import tomllib
from typing import Any, Iterable

from netcore.errors import UsageError

__all__ = ["parse_hostport", "parse_ip", "read_toml"]


def parse_hostport(value: str, *, any_port: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); an empty host is 0.0.0.0.

    ``any_port`` allows port 0 (the system picks one).
    """
    host, sep, port = str(value).rpartition(":")
    lowest = 0 if any_port else 1
    if not sep or not port.isdigit() or not lowest <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IP address") from None
    return host, int(port)


def parse_ip(value: str) -> str:
    """An IPv4 or IPv6 address (brackets allowed around a V6 one), in its normal form."""
    try:
        return str(ipaddress.ip_address(str(value).strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from None


def read_toml(path: str, known: Iterable[str]) -> dict[str, Any]:
    """The settings in the TOML file ``path``; :class:`UsageError` if it does not parse or has a key not ``known``."""
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: {exc}") from None
    unknown = set(data) - set(known)
    if unknown:
        raise UsageError(f"{path}: unknown settings {sorted(unknown)}")
    return data

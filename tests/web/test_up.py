"""`netcore up`: the plan it makes, and the processes it starts and stops."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from servers.up import build_parser, plan
from tests.web.conftest import start_up


def flag(argv: list[str], name: str) -> str:
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise KeyError(name)


def daemons(args: list[str]):
    the_plan = plan(build_parser().parse_args(args), random_secret=lambda: "-fresh-secret")
    return the_plan, {d.name: d.argv for d in the_plan.daemons}


def test_one_generated_secret_shared_and_urls_match_the_turn_listener():
    the_plan, argv = daemons(["--turn-port", "3479", "--port", "8081"])
    assert flag(argv["signal"], "--turn-secret") == flag(argv["turn"], "--auth-secret") == "-fresh-secret"
    assert flag(argv["turn"], "--listen") == "127.0.0.1:3479"
    assert flag(argv["signal"], "--turn-urls") == "turn:127.0.0.1:3479?transport=udp"
    assert flag(argv["signal"], "--stun-urls") == "stun:127.0.0.1:3479"
    assert flag(argv["signal"], "--host") == "127.0.0.1" and flag(argv["signal"], "--port") == "8081"
    assert "--allow-loopback-peers" in argv["turn"]  # browsers on this host relay to loopback
    assert flag(argv["turn"], "--relay-ip") == "127.0.0.1"


def test_existing_configs_give_secret_host_and_ports(tmp_path):
    signal_toml = tmp_path / "signal.toml"
    signal_toml.write_text('host = "127.0.0.2"\nport = 9000\nturn_secret = "from-config"\ndata_dir = "/srv/x"\n')
    turn_toml = tmp_path / "turn.toml"
    turn_toml.write_text('listen = ["127.0.0.2:3590"]\nrealm = "lab"\n')
    the_plan, argv = daemons(["--signal-config", str(signal_toml), "--turn-config", str(turn_toml)])
    assert flag(argv["turn"], "--auth-secret") == "from-config"
    assert flag(argv["signal"], "--config") == str(signal_toml)
    assert flag(argv["turn"], "--config") == str(turn_toml)
    assert flag(argv["turn"], "--listen") == "127.0.0.2:3590"
    assert flag(argv["signal"], "--turn-urls") == "turn:127.0.0.2:3590?transport=udp"
    assert "--data-dir" not in argv["signal"] and "--realm" not in argv["turn"]
    assert (the_plan.host, the_plan.port) == ("127.0.0.2", 9000)
    # Flags still win over the files.
    _, argv = daemons(["--signal-config", str(signal_toml), "--port", "9100", "--secret", "given"])
    assert flag(argv["signal"], "--port") == "9100" and flag(argv["turn"], "--auth-secret") == "given"


def test_wildcard_bind_needs_a_public_host_and_is_not_loopback():
    the_plan, argv = daemons(["--host", "0.0.0.0", "--public-host", "192.0.2.10", "--relay-ip", "192.0.2.10"])
    assert flag(argv["signal"], "--turn-urls") == "turn:192.0.2.10:3478?transport=udp"
    assert "--allow-loopback-peers" not in argv["turn"]
    assert flag(argv["turn"], "--relay-ip") == "192.0.2.10"


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def port_open(url: str) -> bool:
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def wait_exit(proc, timeout: float = 15.0) -> int:
    return proc.wait(timeout=timeout)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_daemon(tmp_path, signum):
    up = start_up(str(tmp_path))
    kids = children(up.proc.pid)
    assert len(kids) == 2 and port_open(up.url)
    up.proc.send_signal(signum)
    assert wait_exit(up.proc) == 0
    assert not port_open(up.url)
    assert all(not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
               for pid in kids)
    assert "netcore stopped." in "".join(up.output)


def test_a_daemon_dying_stops_the_others(tmp_path):
    up = start_up(str(tmp_path))
    turn = [pid for pid in children(up.proc.pid) if b"servers.turn.main" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(turn) == 1
    os.kill(turn[0], signal.SIGKILL)
    assert wait_exit(up.proc) == 1
    assert not port_open(up.url)
    deadline = time.monotonic() + 5
    while "netcore-turn exited" not in "".join(up.output) and time.monotonic() < deadline:
        time.sleep(0.05)  # the reader thread drains the pipe
    assert "netcore-turn exited; stopping the others" in "".join(up.output)


def test_console_script_form_netcore_up_parses():
    args = build_parser().parse_args(["up", "--port", "0"])
    assert args.command == "up" and args.port == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["down"])

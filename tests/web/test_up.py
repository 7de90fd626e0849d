"""`netcore up`: the plan it makes, and the processes it starts and stops."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import tomllib

import pytest

from netcore.stun.message import Message, MessageClass
from servers.up import build_parser, plan, toml_text
from tests.conftest import free_port
from tests.web.conftest import start_up


def flag(argv: list[str], name: str) -> str:
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise KeyError(name)


def daemons(args: list[str]):
    the_plan = plan(build_parser().parse_args(args), random_secret=lambda: "-fresh-secret", secret_dir="/private")
    return the_plan, {d.name: d.argv for d in the_plan.daemons}


def settings(the_plan, name: str) -> dict:
    """What the daemon ``name`` reads from the file its ``--config`` names."""
    argv = next(d.argv for d in the_plan.daemons if d.name == name)
    return tomllib.loads(the_plan.files[flag(argv, "--config")])


def test_one_generated_secret_shared_and_urls_match_the_turn_listener():
    the_plan, argv = daemons(["--turn-port", "3479", "--port", "8081"])
    assert settings(the_plan, "signal")["turn_secret"] == "-fresh-secret"
    assert settings(the_plan, "turn")["auth-secret"] == ["-fresh-secret"]
    assert not any("-fresh-secret" in arg for arg in argv["signal"] + argv["turn"])
    assert all(os.path.dirname(path) == "/private" for path in the_plan.files)
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
    assert settings(the_plan, "turn")["auth-secret"] == ["from-config"]
    # The files passed through arrive whole, with the shared secret added.
    signal = settings(the_plan, "signal")
    service_secret = signal.pop("service_secret")  # added with the call server, shared with it only
    assert signal == {**tomllib.loads(signal_toml.read_text()), "call_server": "netcore-sfu"}
    assert settings(the_plan, "sfu") == {"service-secret": service_secret, "name": "netcore-sfu"}
    assert settings(the_plan, "turn") == {**tomllib.loads(turn_toml.read_text()), "auth-secret": ["from-config"]}
    assert flag(argv["turn"], "--listen") == "127.0.0.2:3590"
    assert flag(argv["signal"], "--turn-urls") == "turn:127.0.0.2:3590?transport=udp"
    assert "--data-dir" not in argv["signal"] and "--realm" not in argv["turn"]
    assert (the_plan.host, the_plan.port) == ("127.0.0.2", 9000)
    # Flags still win over the files.
    the_plan, argv = daemons(["--signal-config", str(signal_toml), "--port", "9100", "--secret", "given"])
    assert flag(argv["signal"], "--port") == "9100" and settings(the_plan, "turn")["auth-secret"] == ["given"]
    assert settings(the_plan, "signal")["turn_secret"] == "given"


def test_settings_files_round_trip_through_toml():
    values = {"a": "quote \" back\\ slash \x7f del \n", "b": 3, "c": 2.5, "d": True, "e": ["x", "-y"],
              "key-with-dash": "é ☃ 😀"}
    assert tomllib.loads(toml_text(values)) == values
    with pytest.raises(ValueError):
        toml_text({"table": {"x": 1}})


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
    assert len(kids) == 3 and port_open(up.url)  # turn, signal, the call server
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


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().decode().split("\0")


def test_the_secret_reaches_the_daemons_in_private_files_never_on_their_command_lines(tmp_path):
    up = start_up(str(tmp_path))
    try:
        kids = children(up.proc.pid)
        assert len(kids) == 3  # turn, signal, the call server
        configs = [flag(cmdline(pid), "--config") for pid in kids]
        for path in configs:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        found = [tomllib.loads(open(path).read()) for path in configs]
        secrets = {d.get("turn_secret") or d["auth-secret"][0] for d in found if "service-secret" not in d}
        assert len(secrets) == 1  # one secret, shared
        secret = secrets.pop()
        assert len(secret) >= 32
        service = {d.get("service_secret") or d.get("service-secret") for d in found} - {None}
        assert len(service) == 1 and len(next(iter(service))) >= 32  # signal and the call server share theirs
        for pid in [up.proc.pid, *kids]:
            assert not any(secret in arg or next(iter(service)) in arg for arg in cmdline(pid)), cmdline(pid)
    finally:
        up.proc.send_signal(signal.SIGTERM)
        assert wait_exit(up.proc) == 0
    assert not any(os.path.exists(path) for path in configs)
    assert not os.path.exists(os.path.dirname(configs[0]))


def stun_answerer(sock: socket.socket, stop: threading.Event) -> None:
    """Another program on the TURN port: it answers STUN Binding requests."""
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            continue
        request = Message.parse(data)
        sock.sendto(Message(request.method, MessageClass.SUCCESS, transaction_id=request.transaction_id).encode(),
                    addr)


def run_up(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "servers.up", "--port", "0", "--log-level", "warning", *args],
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_another_program_on_the_turn_port_is_named_and_up_exits_1(tmp_path):
    port = free_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    stop = threading.Event()
    thread = threading.Thread(target=stun_answerer, args=(sock, stop), daemon=True)
    thread.start()
    try:
        done = run_up("--turn-port", str(port), "--data-dir", str(tmp_path))
    finally:
        stop.set()
        thread.join()
        sock.close()
    assert done.returncode == 1
    assert "netcore is up" not in done.stdout + done.stderr
    assert f"127.0.0.1:{port}/udp is already in use by another program" in done.stderr
    assert "Traceback" not in done.stderr


def test_another_program_on_the_page_port_is_named_and_up_exits_1(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = run_up("--port", str(port), "--turn-port", "0", "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert "netcore is up" not in done.stdout + done.stderr
    assert f"127.0.0.1:{port}/tcp is already in use by another program" in done.stderr


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_netcore_turn_names_the_address_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        done = run_module("servers.turn.main", "--listen", f"127.0.0.1:{port}", "--relay-ip", "127.0.0.1")
    assert done.returncode == 1
    assert f"Address already in use: 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and "[Errno" not in done.stderr


def test_netcore_signal_names_the_address_in_use_in_one_sentence(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = run_module("servers.signal.main", "--port", str(port), "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"netcore-signal: Address already in use: 127.0.0.1:{port}"]

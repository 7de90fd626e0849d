"""netcore up: every daemon on 127.0.0.1 with shared secrets, stopped together.

``netcore up`` starts ``netcore-signal`` (which serves the web client at
``/``), ``netcore-turn`` and the call server ``netcore-sfu`` (linked to
signal's ``/v1/service`` with a generated service secret, so rooms above the
threshold go to it) as child processes, gives signal and turn the same freshly
generated TURN REST secret (signal hands out credentials, turn checks them),
tells signal the STUN/TURN URLs to put in ``welcome.ice_servers``, prints the
URL to open, and on Ctrl-C or SIGTERM stops them all. If one daemon dies the
others are stopped too and the exit status is non-zero.

``--signal-config`` and ``--turn-config`` pass existing TOML files through;
the host, ports and secret then come from those files unless given as flags
here. The plan (which processes with which arguments) is a pure function,
:func:`plan`, so it can be read and tested without starting anything.

The secret never appears on a command line (``ps`` shows those to every
local user): each daemon gets a TOML file (mode 0600, in a directory of our
own removed at exit) holding its passed-through settings plus the secret.
Before starting anything, ``up`` checks that the TURN and page ports are
free, so that another program on them is reported as such, not mistaken
for our daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field

from netcore.stun.errors import StunParseError
from netcore.stun.message import BINDING, Message, MessageClass
from servers.daemon import stop_event

__all__ = ["Daemon", "Plan", "build_parser", "plan", "main"]

READY_TIMEOUT = 30.0  # seconds for every daemon to say it listens
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


@dataclass
class Daemon:
    """One child process and the line that says it is ready."""

    name: str
    argv: list[str]
    ready: re.Pattern | None = None  # a line matching this means listening; group "port" if any
    stun_probe: tuple[str, int] | None = None  # or: ready once a STUN Binding here is answered


@dataclass
class Plan:
    daemons: list[Daemon]
    host: str  # where the page is served
    port: int  # 0: the signal daemon picks one and says which
    public_host: str  # the address browsers and ICE use
    turn_port: int
    turn_metrics: tuple[str, int] | None
    secret: str = field(repr=False)
    # path -> TOML text to write (mode 0600) before the daemons start; they hold the secret.
    files: dict[str, str] = field(default_factory=dict, repr=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netcore up",
        description="Start the netcore signaling daemon (with the web client) and the STUN/TURN daemon "
        "with a shared secret; stop them all on Ctrl-C.",
    )
    parser.add_argument("command", nargs="?", default="up", choices=["up"], help=argparse.SUPPRESS)
    parser.add_argument("--host", help="address to serve the page and TURN on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="page and WebSocket port (default 8080; 0 picks a free one)")
    parser.add_argument("--turn-port", type=int, help="STUN/TURN UDP port (default 3478; 0 picks a free one)")
    parser.add_argument("--turn-metrics-port", type=int,
                        help="Prometheus metrics of netcore-turn on 127.0.0.1:PORT (0 picks a free one)")
    parser.add_argument("--public-host", help="address browsers reach (default: --host, or 127.0.0.1 for a wildcard)")
    parser.add_argument("--relay-ip", help="address TURN binds relayed ports on (default: --host)")
    parser.add_argument("--min-port", type=int, help="lowest TURN relay port")
    parser.add_argument("--max-port", type=int, help="highest TURN relay port")
    parser.add_argument("--data-dir", help="signal data directory (default ./netcore-data)")
    parser.add_argument("--secret", help="TURN REST secret shared by both daemons (default: from the configs, "
                        "else a fresh random one)")
    parser.add_argument("--signal-config", help="existing netcore-signal TOML file")
    parser.add_argument("--turn-config", help="existing netcore-turn TOML file")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    return parser


def _toml(path: str | None) -> dict:
    if not path:
        return {}
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def _free_port(kind: int, host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _toml_value(value: object, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string once DEL is escaped too (TOML 1.0, "String").
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise ValueError(f"{key}: only strings, numbers, booleans and lists can be passed through")


def toml_text(values: dict) -> str:
    """Flat settings as TOML (what both daemons' files hold: no tables)."""
    lines = []
    for key, value in values.items():
        name = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
        lines.append(f"{name} = {_toml_value(value, key)}")
    return "\n".join(lines) + "\n"


def _module_argv(module: str) -> list[str]:
    """Run ``module`` as __main__ from the same tree as this file, whatever the working directory."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    boot = f"import runpy, sys; sys.path.insert(0, {root!r}); runpy.run_module({module!r}, run_name='__main__')"
    return [sys.executable, "-c", boot]


def plan(args: argparse.Namespace, random_secret=lambda: secrets.token_urlsafe(32), *,
         secret_dir: str) -> Plan:
    """Decide both daemons' command lines and files from the flags and the config files.

    ``secret_dir`` is where :func:`run` writes :attr:`Plan.files` (a fresh
    private directory in practice).
    """
    signal_cfg = _toml(args.signal_config)
    turn_cfg = _toml(args.turn_config)
    turn_listen = (turn_cfg.get("listen") or [None])[0]
    host = args.host or signal_cfg.get("host") or "127.0.0.1"
    port = args.port if args.port is not None else signal_cfg.get("port", 8080)
    turn_port = args.turn_port
    if turn_port is None:
        turn_port = int(turn_listen.rpartition(":")[2]) if turn_listen else 3478
    if turn_port == 0:
        turn_port = _free_port(socket.SOCK_DGRAM, "127.0.0.1" if _wildcard(host) else host)
    secret = (args.secret or signal_cfg.get("turn_secret")
              or (turn_cfg.get("auth-secret") or [None])[0] or random_secret())
    public_host = args.public_host or ("127.0.0.1" if _wildcard(host) else host)
    relay_ip = args.relay_ip or (None if _wildcard(host) else host)
    loopback = not _wildcard(host) and ipaddress.ip_address(host).is_loopback

    signal_file = os.path.join(secret_dir, "signal.toml")
    turn_file = os.path.join(secret_dir, "turn.toml")
    sfu_file = os.path.join(secret_dir, "sfu.toml")
    # The call server links to signaling with a secret of its own (the service link's bearer).
    service_secret = signal_cfg.get("service_secret") or random_secret()
    # The one call server is named as signaling's call_server, which the page is told.
    call_server = signal_cfg.get("call_server", "netcore-sfu")
    files = {signal_file: toml_text({**signal_cfg, "turn_secret": secret, "service_secret": service_secret,
                                     "call_server": call_server}),
             turn_file: toml_text({**turn_cfg, "auth-secret": [secret]}),
             sfu_file: toml_text({"service-secret": service_secret, "name": call_server})}
    signal_argv = [*_module_argv("servers.signal.main"), "--config", signal_file, "--host", host, "--port", str(port),
                   "--turn-urls", f"turn:{_hostport(public_host, turn_port)}?transport=udp",
                   "--stun-urls", f"stun:{_hostport(public_host, turn_port)}",
                   "--log-level", args.log_level.upper()]
    if args.data_dir or "data_dir" not in signal_cfg:
        signal_argv += ["--data-dir", args.data_dir or "./netcore-data"]

    turn_argv = [*_module_argv("servers.turn.main"), "--config", turn_file, "--listen", _hostport(host, turn_port),
                 "--log-level", args.log_level.lower()]
    if "realm" not in turn_cfg:
        turn_argv += ["--realm", "netcore"]
    if relay_ip:
        turn_argv += ["--relay-ip", relay_ip]
    if loopback:
        turn_argv.append("--allow-loopback-peers")  # browsers on this host talk over loopback
    for flag, value in (("--min-port", args.min_port), ("--max-port", args.max_port)):
        if value is not None:
            turn_argv += [flag, str(value)]
    data_dir = args.data_dir or signal_cfg.get("data_dir") or "./netcore-data"
    if "analytics" not in turn_cfg and "analytics-redis" not in turn_cfg:
        # Allocation events next to signaling's analytics.jsonl (docs/analytics.md), as the call server's.
        turn_argv += ["--analytics", os.path.join(data_dir, "turn-analytics.jsonl"), "--node", "turn"]
    metrics = None
    if args.turn_metrics_port is not None:
        metrics = ("127.0.0.1", args.turn_metrics_port or _free_port(socket.SOCK_STREAM, "127.0.0.1"))
        turn_argv += ["--metrics", _hostport(*metrics)]

    local = "127.0.0.1" if _wildcard(host) else host
    # {signal_port}: filled in once netcore-signal said which port it took (it may pick one).
    sfu_argv = [*_module_argv("servers.sfu.main"), "--config", sfu_file, "--listen", _hostport(host, 0),
                "--signal", "ws://" + (f"[{local}]" if ":" in local else local) + ":{signal_port}/v1/service",
                "--log-level", args.log_level.lower()]
    if _wildcard(host):
        sfu_argv += ["--public-ip", public_host]
    sfu_argv += ["--analytics", os.path.join(data_dir, "sfu-analytics.jsonl"), "--node", "sfu"]
    return Plan(
        daemons=[Daemon("turn", turn_argv, stun_probe=(local, turn_port)),
                 Daemon("signal", signal_argv, ready=re.compile(r"^listening \S+ (?P<port>\d+)$")),
                 Daemon("sfu", sfu_argv, ready=re.compile(r"^listening media=\d+"))],
        host=host, port=port, public_host=public_host, turn_port=turn_port,
        turn_metrics=metrics, secret=secret, files=files,
    )


def write_files(files: dict[str, str]) -> None:
    """Write the plan's files readable by us only (they hold the secret)."""
    for path, text in files.items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)


def port_taken(host: str, port: int, kind: int) -> bool:
    """Whether another socket already holds ``host:port`` (UDP or TCP); port 0 never is."""
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemon: TIME_WAIT is no owner
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def busy_port(the_plan: Plan) -> str | None:
    """One sentence naming a port another program holds, or None."""
    for label, port, kind in (("STUN/TURN", the_plan.turn_port, socket.SOCK_DGRAM),
                              ("page", the_plan.port, socket.SOCK_STREAM)):
        if port_taken(the_plan.host, port, kind):
            proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
            return (f"the {label} port {_hostport(the_plan.host, port)}/{proto} is already in use "
                    f"by another program; stop it or choose another port")
    return None


async def _stun_probe(addr: tuple[str, int], ready: asyncio.Future) -> None:
    """Send STUN Binding requests (RFC 8489 section 5) until one is answered."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        while not ready.done():
            request = Message(BINDING, MessageClass.REQUEST)
            try:
                await loop.sock_sendto(sock, request.encode(), addr)
                answer = Message.parse(await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.2))
            except (asyncio.TimeoutError, OSError, StunParseError):
                await asyncio.sleep(0.1)  # not up yet (ICMP refused or no answer)
                continue
            if answer.transaction_id == request.transaction_id and not ready.done():
                ready.set_result(True)


class Supervisor:
    """Starts the daemons, echoes their output with a name prefix, stops them together."""

    def __init__(self, the_plan: Plan) -> None:
        self.plan = the_plan
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.ready: dict[str, asyncio.Future] = {}
        self.port = the_plan.port
        self.pumps: list[asyncio.Task] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for daemon in self.plan.daemons:
            self.ready[daemon.name] = loop.create_future()
            # A session of its own: Ctrl-C reaches us only, and we stop the children in order.
            argv = [arg.replace("{signal_port}", str(self.port)) for arg in daemon.argv]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env, start_new_session=True)
            self.procs[daemon.name] = proc
            for stream in (proc.stdout, proc.stderr):
                self.pumps.append(asyncio.create_task(self._pump(daemon, stream)))
            if daemon.stun_probe:
                self.pumps.append(asyncio.create_task(_stun_probe(daemon.stun_probe, self.ready[daemon.name])))
            waiter = asyncio.create_task(proc.wait())
            done, _ = await asyncio.wait({self.ready[daemon.name], waiter}, timeout=READY_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
            if self.ready[daemon.name] not in done:
                waiter.cancel()
                raise RuntimeError(f"netcore-{daemon.name} did not start"
                                   + (f" (exit status {proc.returncode})" if proc.returncode is not None else ""))
            waiter.cancel()

    async def _pump(self, daemon: Daemon, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            ready = self.ready[daemon.name]
            match = None if ready.done() or daemon.ready is None else daemon.ready.search(text)
            if match:
                if "port" in match.groupdict():
                    self.port = int(match["port"])
                ready.set_result(True)
            sys.stderr.write(f"[{daemon.name}] {text}\n")
            sys.stderr.flush()

    async def wait_any_exit(self) -> str:
        waits = {asyncio.create_task(p.wait()): name for name, p in self.procs.items()}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[done.pop()]

    async def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):  # signal first: it closes clients with 1001
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        for pump in self.pumps:
            try:
                await asyncio.wait_for(pump, 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass


async def run(the_plan: Plan) -> int:
    supervisor = Supervisor(the_plan)
    stop = stop_event()
    busy = busy_port(the_plan)
    if busy is not None:
        print(f"netcore up: {busy}", file=sys.stderr)
        return 1
    try:
        write_files(the_plan.files)
        await supervisor.start()
    except (RuntimeError, OSError) as exc:
        print(f"netcore up: {exc}", file=sys.stderr)
        await supervisor.stop()
        return 1
    url_host = the_plan.public_host if _wildcard(the_plan.host) else the_plan.host
    lines = [f"netcore is up: open http://{_hostport(url_host, supervisor.port)}/",
             f"  STUN/TURN  udp {_hostport(the_plan.public_host, the_plan.turn_port)} (REST secret shared)",
             "  call server netcore-sfu, linked to signaling (rooms above the group threshold)"]
    if the_plan.turn_metrics:
        lines.append(f"  metrics    http://{_hostport(*the_plan.turn_metrics)}/metrics (turn), "
                     f"http://{_hostport(url_host, supervisor.port)}/metrics (signal)")
    lines.append("  Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)
    stopper = asyncio.create_task(stop.wait())
    exited = asyncio.create_task(supervisor.wait_any_exit())
    done, _ = await asyncio.wait({stopper, exited}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if exited in done:
        print(f"netcore up: netcore-{exited.result()} exited; stopping the others", file=sys.stderr)
        status = 1
    else:
        exited.cancel()
    await supervisor.stop()
    print("netcore stopped.", flush=True)
    return status


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    secret_dir = tempfile.mkdtemp(prefix="netcore-up-")  # mode 0700
    try:
        try:
            the_plan = plan(args, secret_dir=secret_dir)
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            parser.error(str(exc))
        status = asyncio.run(run(the_plan))
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()

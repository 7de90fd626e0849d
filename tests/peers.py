"""Start the real peers the interop tests talk to (coturn for now).

Each helper starts the program on 127.0.0.1, waits until it answers, and
stops it on exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from netcore.stun.message import BINDING, Message, MessageClass
from tests.conftest import free_port, free_port_both, require_program, stop_process


def wait_for_stun(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Poll with a Binding request until a STUN server answers on ``port``."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.1)
        while time.monotonic() < deadline:
            s.sendto(Message(BINDING, MessageClass.REQUEST).encode(), (host, port))
            try:
                s.recvfrom(2048)
                return
            except OSError:
                continue
    raise TimeoutError(f"no STUN answer on {host}:{port}")


@contextlib.contextmanager
def running(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        stop_process(proc, 5)


@contextlib.contextmanager
def coturn(tmp_path: Path, *extra: str, users: tuple[str, ...] = ("test:test",),
           realm: str = "example", tls: tuple[Path, Path] | None = None) -> Iterator[int]:
    """coturn's ``turnserver`` on 127.0.0.1, isolated from /etc/turnserver.conf; yields its port.

    With ``tls=(cert, key)`` it also serves TLS, on the port ``tls_port(tmp_path)`` gives.
    """
    turnserver = require_program("turnserver")
    port = free_port_both()
    relay_min = 20000 + (port % 20000)
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    if tls is None:
        secure = ["--no-tls"]
    else:
        secure_port = free_port_both()
        (tmp_path / "tls.port").write_text(str(secure_port))
        secure = [f"--tls-listening-port={secure_port}", f"--cert={tls[0]}", f"--pkey={tls[1]}"]
    cmd = [
        turnserver, "-c", str(empty), "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
        "--relay-ip=127.0.0.1", f"--min-port={relay_min}", f"--max-port={relay_min + 200}",
        "--realm", realm, "--fingerprint", *secure, "--no-dtls", "--no-cli",
        f"--userdb={tmp_path / 'turndb'}", f"--pidfile={tmp_path / 'turn.pid'}",
        "--log-file=stdout", "--simple-log", *extra,
    ]
    if users:
        cmd.append("--lt-cred-mech")
        for user in users:
            cmd += ["--user", user]
    log = tmp_path / "turnserver.log"
    with running(cmd, log):
        try:
            wait_for_stun(port, timeout=30)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; turnserver said:\n{log.read_text(errors='replace')[-2000:]}") from None
        yield port


def tls_port(tmp_path: Path) -> int:
    """The TLS port of the coturn started with ``tls=`` in ``tmp_path``."""
    return int((tmp_path / "tls.port").read_text())


def self_signed_certificate(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A throwaway ECDSA P-256 certificate and key for TLS tests; returns their paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextlib.contextmanager
def netcore_turn_process(tmp_path: Path, *args: str, port: int | None = None,
                         listen: bool = True) -> Iterator[tuple[subprocess.Popen, int]]:
    """Our daemon as a subprocess, the way an operator runs it; yields it and its UDP port.

    With ``listen=False`` no ``--listen`` is added (the config file or the
    defaults say where it listens, and ``port`` must be given).
    """
    port = port or free_port()
    listen_args = ["--listen", f"127.0.0.1:{port}"] if listen else []
    cmd = [sys.executable, "-m", "servers.turn.main", *listen_args, *args]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    with running(cmd, tmp_path / "netcore-turn.log", env=env) as proc:
        wait_for_stun(port)
        yield proc, port


@contextlib.contextmanager
def netcore_turn(tmp_path: Path, *args: str, port: int | None = None) -> Iterator[int]:
    """Our daemon as a subprocess; yields its UDP port."""
    with netcore_turn_process(tmp_path, *args, port=port) as (_, port):
        yield port


@contextlib.contextmanager
def turnutils_peer(tmp_path: Path) -> Iterator[int]:
    """coturn's UDP echo peer on 127.0.0.1; yields its port."""
    program = require_program("turnutils_peer")
    port = free_port()
    with running([program, "-L", "127.0.0.1", "-p", str(port)], tmp_path / "turnutils_peer.log"):
        yield port


def turnutils_uclient(server_port: int, peer_port: int, *options: str, timeout: float = 60.0) -> str:
    """Run coturn's load client against a TURN server on 127.0.0.1; its output (stdout and stderr)."""
    program = require_program("turnutils_uclient")
    cmd = [program, "-e", "127.0.0.1", "-r", str(peer_port), *options, "-p", str(server_port), "127.0.0.1"]
    done = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return (done.stdout + done.stderr).decode("utf-8", "replace")

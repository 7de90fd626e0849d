"""Secrets the signaling daemon hands out or checks: TURN REST credentials,
bearer tokens and password hashes.  Pure functions; time comes in as an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from netcore.turn.credentials import rest_api_password, rest_api_username

__all__ = [
    "turn_rest_credentials",
    "hash_password",
    "verify_password",
    "issue_token",
    "verify_token",
    "issue_file_token",
    "verify_file_token",
]


def turn_rest_credentials(secret: str, user: str, expiry: int) -> tuple[str, str]:
    """TURN REST API credentials (draft-uberti-behave-turn-rest-00 section 2.2).

    The username is ``expiry:user`` (expiry in Unix seconds) and the password
    base64(HMAC-SHA1(secret, username)); coturn's ``--use-auth-secret`` and
    ``netcore-turn --auth-secret`` check them with the same secret.
    """
    username = rest_api_username(expiry, user)
    return username, rest_api_password(secret, username)


# scrypt parameters: 16 MiB of memory per hash (n * r * 128 bytes), the
# interactive-login setting recommended by the scrypt paper.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A memory-hard (scrypt) hash, self-describing: ``scrypt$n$r$p$salt$hash``."""
    salt = os.urandom(16) if salt is None else salt
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return "scrypt${}${}${}${}${}".format(
        _SCRYPT_N, _SCRYPT_R, _SCRYPT_P, salt.hex(), key.hex()
    )


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a :func:`hash_password` string, in constant time."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(key)
        actual = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def issue_token(secret: bytes, user: str, expiry: int) -> str:
    """A stateless bearer token ``user.expiry.mac`` that every node can check."""
    body = f"{user}.{expiry}"
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return body + "." + base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def verify_token(secret: bytes, token: str, now_unix: float) -> str | None:
    """The user a bearer token names, or None if it is forged, malformed or expired."""
    try:
        user, expiry, _mac = token.rsplit(".", 2)
        expiry_value = int(expiry)
    except ValueError:
        return None
    if not user or not hmac.compare_digest(issue_token(secret, user, expiry_value), token):
        return None
    if expiry_value < now_unix:
        return None
    return user


def _file_mac(secret: bytes, user: str, name: str, expiry: int) -> str:
    # A label of its own: a file token is never a bearer token, nor one file's token another's.
    body = f"recording-file\0{user}\0{name}\0{expiry}"
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def issue_file_token(secret: bytes, user: str, name: str, expiry: int) -> str:
    """A short-lived token ``user.expiry.mac`` for one recording file (its URL's ``access``): it names the
    file, so it opens nothing else, and it cannot stand for the user's bearer token."""
    return f"{user}.{expiry}.{_file_mac(secret, user, name, expiry)}"


def verify_file_token(secret: bytes, token: str, name: str, now_unix: float) -> str | None:
    """The user a file token was issued to for ``name``, or None if forged, for another file or expired."""
    try:
        user, expiry, mac = token.rsplit(".", 2)
        expiry_value = int(expiry)
    except ValueError:
        return None
    if not user or not hmac.compare_digest(_file_mac(secret, user, name, expiry_value).encode(), mac.encode()):
        return None
    if expiry_value < now_unix:
        return None
    return user

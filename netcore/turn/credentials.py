"""TURN REST API ephemeral credentials (draft-uberti-behave-turn-rest-00).

The application server and the TURN server share a secret. A username is
``expiry:userid`` (expiry in Unix seconds); its password is
base64(HMAC-SHA1(secret, username)). The TURN server recomputes the password
from the username, so it stores no per-user state, and refuses a username
whose expiry has passed.
"""

from __future__ import annotations

import base64
import hmac
import re

__all__ = ["rest_api_password", "rest_api_username", "rest_api_expiry"]


def rest_api_password(secret: str | bytes, username: str) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.digest(key, username.encode("utf-8"), "sha1")
    return base64.b64encode(digest).decode("ascii")


def rest_api_username(expiry: int, user_id: str = "") -> str:
    return f"{expiry}:{user_id}" if user_id else str(expiry)


# The expiry is ASCII digits only: ``str.isdigit`` also accepts "²" and other
# Unicode digits that ``int`` refuses, and ``int`` refuses more than 4300
# digits. Twenty digits hold any 64-bit time.
_EXPIRY = re.compile(r"[0-9]{1,20}")


def rest_api_expiry(username: str) -> int | None:
    """The expiry time in a REST API username, or None if it has none (never raises)."""
    head = username.partition(":")[0]
    return int(head) if _EXPIRY.fullmatch(head) else None

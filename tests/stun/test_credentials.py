"""Keys of RFC 8489 section 9 and SASLprep (RFC 4013)."""

import hashlib

import pytest

from netcore.errors import UsageError
from netcore.stun import attributes as a
from netcore.stun.credentials import long_term_key, short_term_key, userhash
from netcore.stun.message import BINDING, Message, MessageClass
from netcore.stun.saslprep import saslprep


def test_long_term_keys_md5_and_sha256():
    assert long_term_key("user", "realm", "pass") == hashlib.md5(b"user:realm:pass").digest()
    sha = long_term_key("user", "realm", "pass", a.ALGORITHM_SHA256)
    assert sha == hashlib.sha256(b"user:realm:pass").digest()
    with pytest.raises(UsageError):
        long_term_key("user", "realm", "pass", 7)


def test_userhash():
    assert userhash("user", "realm") == hashlib.sha256(b"user:realm").digest()


def test_sha256_integrity_with_password_algorithm():
    key = long_term_key("user", "realm", "pass", a.ALGORITHM_SHA256)
    raw = (
        Message(BINDING, MessageClass.REQUEST)
        .add(a.USERHASH, userhash("user", "realm"))
        .add(a.PASSWORD_ALGORITHM, (a.ALGORITHM_SHA256, b""))
        .add(a.PASSWORD_ALGORITHMS, ((a.ALGORITHM_MD5, b""), (a.ALGORITHM_SHA256, b"")))
        .encode(integrity_sha256_key=key, fingerprint=True)
    )
    parsed = Message.parse(raw)
    assert parsed.get(a.PASSWORD_ALGORITHM) == (a.ALGORITHM_SHA256, b"")
    assert parsed.get(a.PASSWORD_ALGORITHMS) == ((1, b""), (2, b""))
    assert parsed.check_integrity_sha256(key) and not parsed.has_integrity


@pytest.mark.parametrize(
    "raw, prepared",
    [
        ("I\u00adX", "IX"),  # RFC 4013 section 3: soft hyphen mapped to nothing
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE
    ],
)
def test_saslprep_examples(raw, prepared):
    assert saslprep(raw) == prepared


@pytest.mark.parametrize("bad", ["\u0007", "\u0627\u0031"])  # control character; RTL not ending in RTL
def test_saslprep_prohibited(bad):
    with pytest.raises(UsageError):
        saslprep(bad)


def test_short_term_key_is_the_prepared_password():
    assert short_term_key("The\u00adM\u00aatr\u2168") == b"TheMatrIX"

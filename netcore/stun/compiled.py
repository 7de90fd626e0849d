"""Which code does the STUN codec's byte work: the compiled ``netcore.stun._codec`` or Python.

The byte work is HMAC under a cached key, checking MESSAGE-INTEGRITY(-SHA256)
and FINGERPRINT, and serializing a message with its signatures; what is
checked and signed, with which key, stays in :mod:`netcore.stun.message` and
its callers whichever code runs. The compiled code is used when it was built
(a C compiler, OpenSSL's and zlib's headers) unless the environment variable
``NETCORE_STUN_CODEC`` is ``python``; :func:`use` switches at run time (the
tests run both, and ``bench/turn_core.py`` compares them). Both give the same
bytes.
"""

from __future__ import annotations

import os
from types import ModuleType

from netcore.errors import UsageError

__all__ = ["available", "codec", "use"]

try:
    from netcore.stun import _codec as _built
except ImportError:  # built without a C compiler or the headers: Python does it all
    _built = None

# What message.py and keyed_hmac.py call, read at each use; None: the Python code.
codec: ModuleType | None = _built if os.environ.get("NETCORE_STUN_CODEC") != "python" else None


def available() -> bool:
    """True when the compiled codec was built."""
    return _built is not None


def use(compiled: bool) -> None:
    """Do the byte work in C (``True``) or in Python from now on; cached keys are dropped."""
    global codec
    if compiled and _built is None:
        raise UsageError("netcore.stun._codec was not built")
    codec = _built if compiled else None
    from netcore.stun import keyed_hmac  # not at the top: keyed_hmac reads this module

    keyed_hmac.forget_keys()

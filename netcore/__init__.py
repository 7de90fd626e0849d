"""netcore: a real-time communication stack as sans-IO protocol cores.

Each sub-package is one protocol layer (``stun``, ``turn``, ``ice``, ``rtp``,
``srtp``, ``dtls``, ``sdp``, ``jitter``).  A core takes bytes and the current
time and returns bytes, events and its next deadline; only the asyncio
adapters (``aio`` modules) own sockets and timers.  See docs/architecture.md.
"""

from netcore.errors import NetcoreError, ParseError, UsageError

__all__ = ["NetcoreError", "ParseError", "UsageError"]
__version__ = "0.1.0"

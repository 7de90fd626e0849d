"""Events of the RTP layer's cores.

:class:`RtpEvent` is the base every event of ``netcore.rtp`` derives from,
as each layer has its own (``IceEvent``, ``DtlsEvent`` ...).  The cores here
(reports, send history, transport-wide feedback) answer their callers
directly today; what they come to announce derives from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcore.net import Event

__all__ = ["RtpEvent"]


@dataclass(frozen=True, slots=True)
class RtpEvent(Event):
    """Base of the RTP layer's events."""

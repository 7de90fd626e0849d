"""The one error tree of netcore.

Two kinds of failure, kept apart as in h11 and aioquic:

* :class:`ParseError` -- the *peer* sent something malformed.  Each layer
  subclasses it (``StunParseError``, ``RtpParseError`` ...).  Cores catch it
  at their ``handle_*`` boundary, count it and drop the datagram; it never
  escapes a receive loop.
* :class:`UsageError` -- the *application* called an API wrongly (an attribute
  value out of range, a method in the wrong state).  It is a bug on our side
  of the wire and is raised to the caller.
"""


class NetcoreError(Exception):
    """Base of every error raised by netcore."""


class ParseError(NetcoreError, ValueError):
    """Malformed input from the network; each layer has its own subclass."""


class UsageError(NetcoreError, ValueError):
    """The API was called with values or in a state it does not accept."""

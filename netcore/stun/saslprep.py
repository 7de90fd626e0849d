"""SASLprep (RFC 4013): the string preparation STUN applies to passwords.

RFC 8489 section 9.2.2 builds the long-term key from the password processed
with OpaqueString (RFC 8265); RFC 5389 peers used SASLprep. The two agree on
every input that matters to STUN (mapping, NFKC, prohibited output), so one
function serves both. Built on the standard library's ``stringprep`` tables.
"""

from __future__ import annotations

import stringprep
import unicodedata

from netcore.errors import UsageError

__all__ = ["saslprep"]

_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space
    stringprep.in_table_c21_c22,  # control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(value: str, *, allow_unassigned: bool = True) -> str:
    """Prepare ``value`` as RFC 4013 says; raise UsageError on prohibited output.

    ``allow_unassigned`` is the "query" profile (RFC 3454 section 7), which
    credentials received from the network need.
    """
    if value.isascii() and value.isprintable():
        return value  # the common case: nothing maps, nothing is prohibited
    # RFC 4013 section 2.1: map non-ASCII spaces to SPACE, B.1 to nothing.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c
        for c in value
        if not stringprep.in_table_b1(c)
    )
    # Section 2.2: normalization form KC.
    prepared = unicodedata.normalize("NFKC", mapped)
    if not prepared:
        return prepared
    # Section 2.3: prohibited output.
    for c in prepared:
        if any(check(c) for check in _PROHIBITED):
            raise UsageError(f"SASLprep: prohibited character U+{ord(c):04X}")
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise UsageError(f"SASLprep: unassigned code point U+{ord(c):04X}")
    # Section 2.4: bidirectional rules (RFC 3454 section 6).
    if any(stringprep.in_table_d1(c) for c in prepared):
        if any(stringprep.in_table_d2(c) for c in prepared):
            raise UsageError("SASLprep: mixes right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise UsageError("SASLprep: right-to-left text must start and end with RTL")
    return prepared

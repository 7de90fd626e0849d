"""H.264 ``profile-level-id`` (RFC 6184 section 8.1) and level negotiation.

``profile-level-id`` is three hex octets: profile_idc, profile-iop (the
constraint flags) and level_idc.  Two H.264 formats are the same codec when
their profiles match (the iop bits decide, e.g. Constrained Baseline is
``42e0xx`` and ``4240xx`` alike) and their packetization modes are equal;
levels are then negotiated (section 8.2.2):

* both sides ``level-asymmetry-allowed=1``: each side sends at the level the
  other declared it can receive;
* otherwise both directions use the lower of the two levels, and an answer
  never states a level above the offer's.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "DEFAULT_PROFILE_LEVEL_ID",
    "ProfileLevelId",
    "level_limits",
    "negotiate_levels",
]

# RFC 6184 section 8.1: absent means Baseline level 1.0.
DEFAULT_PROFILE_LEVEL_ID = "42000a"

# (profile_idc, iop mask pattern, name): pattern chars are 1, 0 or x (any).
_PROFILES = (
    (0x42, "x1xx0000", "constrained-baseline"),
    (0x4D, "1xxx0000", "constrained-baseline"),
    (0x58, "11xx0000", "constrained-baseline"),
    (0x42, "x0xx0000", "baseline"),
    (0x58, "10xx0000", "baseline"),
    (0x4D, "0x0x0000", "main"),
    (0x64, "00000000", "high"),
    (0x64, "00001100", "constrained-high"),
    (0xF4, "0000000x", "predictive-high-444"),
)

LEVEL_1B = 9  # ordered between 1.0 (10) and 1.1 (11)

# ITU-T H.264 Table A-1: level -> (MaxMBPS macroblocks/s, MaxFS macroblocks)
_LIMITS = {
    10: (1485, 99),
    LEVEL_1B: (1485, 99),
    11: (3000, 396),
    12: (6000, 396),
    13: (11880, 396),
    20: (11880, 396),
    21: (19800, 792),
    22: (20250, 1620),
    30: (40500, 1620),
    31: (108000, 3600),
    32: (216000, 5120),
    40: (245760, 8192),
    41: (245760, 8192),
    42: (522240, 8704),
    50: (589824, 22080),
    51: (983040, 36864),
    52: (2073600, 36864),
    60: (4177920, 139264),
    61: (8355840, 139264),
    62: (16711680, 139264),
}


def _matches(pattern: str, iop: int) -> bool:
    for i, ch in enumerate(pattern):
        bit = (iop >> (7 - i)) & 1
        if ch != "x" and int(ch) != bit:
            return False
    return True


class ProfileLevelId(NamedTuple):
    profile_idc: int
    profile_iop: int
    level: int  # level_idc, with 1b as LEVEL_1B

    @classmethod
    def parse(cls, text: str | None) -> ProfileLevelId:
        """Parse six hex digits; None gives the RFC default. Raises ValueError."""
        text = DEFAULT_PROFILE_LEVEL_ID if text is None else text
        if len(text) != 6:
            raise ValueError(f"profile-level-id must be 6 hex digits, not {text!r}")
        raw = bytes.fromhex(text)
        idc, iop, level = raw
        # Level 1b: level_idc 11 with constraint_set3 in the Baseline family.
        if level == 11 and iop & 0x10 and idc in (0x42, 0x4D, 0x58):
            level = LEVEL_1B
        if level not in _LIMITS:
            raise ValueError(f"unknown H.264 level_idc {raw[2]}")
        plid = cls(idc, iop, level)
        if plid.profile is None:
            raise ValueError(f"unknown H.264 profile {text[:4]!r}")
        return plid

    @property
    def profile(self) -> str | None:
        for idc, pattern, name in _PROFILES:
            if idc == self.profile_idc and _matches(pattern, self.profile_iop):
                return name
        return None

    def with_level(self, level: int) -> ProfileLevelId:
        return self._replace(level=level)

    def __str__(self) -> str:
        level, iop = self.level, self.profile_iop
        if level == LEVEL_1B and self.profile_idc in (0x42, 0x4D, 0x58):
            level, iop = 11, iop | 0x10
        return f"{self.profile_idc:02x}{iop:02x}{level:02x}"


def level_limits(level: int) -> tuple[int, int]:
    """(MaxMBPS, MaxFS) for a level: the frame size and rate it allows."""
    return _LIMITS[level]


def negotiate_levels(
    local: ProfileLevelId,
    remote: ProfileLevelId,
    asymmetry_allowed: bool,
) -> tuple[int, int]:
    """(send level, receive level) for the local side (RFC 6184 8.2.2).

    ``local`` is what we can receive, ``remote`` what the peer can receive.
    """
    if asymmetry_allowed:
        return remote.level, local.level
    lowest = min(local.level, remote.level)
    return lowest, lowest

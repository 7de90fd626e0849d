"""STUN codec throughput: netcore against aioice.stun, in one run.

An ICE connectivity check (USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE,
MESSAGE-INTEGRITY, FINGERPRINT), built and signed, then parsed and verified
with every attribute read. Prints messages per second and the ratio.

    python bench/stun_codec.py [--number N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aioice import stun as aioice_stun  # noqa: E402

from bench._timing import rates, report  # noqa: E402
from netcore.stun import attributes as a  # noqa: E402
from netcore.stun.message import BINDING, Message, MessageClass  # noqa: E402

KEY = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes(range(12))
USERNAME = "evtj:h6vY"


def ours_build() -> bytes:
    return (
        Message(BINDING, MessageClass.REQUEST, TID)
        .add(a.USERNAME, USERNAME)
        .add(a.PRIORITY, 0x6E0001FF)
        .add(a.ICE_CONTROLLING, 0x932FF9B151263B36)
        .add(a.USE_CANDIDATE)
        .encode(KEY, fingerprint=True)
    )


def aioice_build() -> bytes:
    message = aioice_stun.Message(aioice_stun.Method.BINDING, aioice_stun.Class.REQUEST, transaction_id=TID)
    message.attributes["USERNAME"] = USERNAME
    message.attributes["PRIORITY"] = 0x6E0001FF
    message.attributes["ICE-CONTROLLING"] = 0x932FF9B151263B36
    message.attributes["USE-CANDIDATE"] = None
    message.add_message_integrity(KEY)
    message.add_fingerprint()
    return bytes(message)


def ours_parse(data: bytes) -> None:
    # What an ICE check handler reads; aioice's parse decodes the same values.
    message = Message.parse(data)
    if not (message.check_fingerprint() and message.check_integrity(KEY)):
        raise AssertionError("verification failed")
    message.get(a.USERNAME), message.get(a.PRIORITY), message.get(a.ICE_CONTROLLING)
    if a.USE_CANDIDATE not in message:
        raise AssertionError("USE-CANDIDATE lost")


def aioice_parse(data: bytes) -> None:
    # parse_message checks FINGERPRINT itself; integrity is a separate call.
    if not aioice_stun.parse_message(data).check_message_integrity(KEY):
        raise AssertionError("verification failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    ours_data, aioice_data = ours_build(), aioice_build()
    assert Message.parse(aioice_data).check_integrity(KEY), "aioice's message must verify with ours"
    aioice_parse(ours_data)  # and ours with aioice's
    build = rates(ours_build, aioice_build, number=args.number)
    parse = rates(lambda: ours_parse(ours_data), lambda: aioice_parse(aioice_data), number=args.number)
    print(f"STUN Binding request, {len(ours_data)} bytes, best of 7 alternating rounds x {args.number}")
    print(report("build + sign + fingerprint", *build, "msg/s", "aioice"))
    print(report("parse + verify + decode", *parse, "msg/s", "aioice"))


if __name__ == "__main__":
    main()

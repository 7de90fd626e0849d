"""The C part of netcore: the TURN relay's compiled data path, the STUN codec's byte work, the call server's
forwarding path and the bandwidth estimator's feedback accounting.

Everything else is in pyproject.toml. The extensions are optional: without a
C compiler the package installs anyway and the TURN daemon relays in Python
(``--data-path python``), slower but the same on the wire; without OpenSSL's
and zlib's headers the STUN codec does its hashing and packing in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "netcore.turn._datapath",
            ["netcore/turn/_datapath.c"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall"],
            optional=True,
        ),
        Extension(
            "netcore.stun._codec",
            ["netcore/stun/_codec.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-deprecated-declarations"],
            libraries=["crypto", "z"],
            optional=True,
        ),
        # The send-side estimator's per-packet feedback accounting (netcore/cc/accounting.py has the same in
        # Python, the fallback).
        Extension(
            "netcore.cc._feedback",
            ["netcore/cc/_feedback.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-fno-fast-math", "-ffp-contract=off"],
            libraries=["m"],
            optional=True,
        ),
        # The call server's forwarding path (netcore/sfu/fastpath.py); needs libsrtp2 (libsrtp2-dev) and
        # OpenSSL's libcrypto (libssl-dev).
        Extension(
            "netcore.sfu._forward",
            ["netcore/sfu/_forward.c"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall"],
            libraries=["srtp2", "crypto"],
            optional=True,
        ),
    ]
)

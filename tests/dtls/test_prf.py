"""The TLS 1.2 PRF against a published vector, and the exporter's shape."""

from netcore.dtls.prf import export_keying_material, prf


def test_prf_sha256_vector():
    # TLS 1.2 PRF (P_SHA256) test vector circulated on the IETF TLS list
    # (also in Go's crypto/tls and others' PRF tests).
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    expected = bytes.fromhex(
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
        "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
        "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66"
    )
    assert prf(secret, b"test label", seed, len(expected)) == expected


def test_exporter_context_changes_output():
    master = bytes(48)
    a = export_keying_material(master, b"c" * 32, b"s" * 32, b"EXTRACTOR-dtls_srtp", 60)
    b = export_keying_material(master, b"c" * 32, b"s" * 32, b"EXTRACTOR-dtls_srtp", 60, b"")
    assert len(a) == 60 and a != b

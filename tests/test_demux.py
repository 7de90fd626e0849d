"""The shared first-byte classifier (RFC 7983/9443, RFC 5761)."""

from hypothesis import given, strategies as st

from netcore.demux import PacketKind, classify


def test_ranges():
    assert classify(b"\x00\x01") is PacketKind.STUN
    assert classify(b"\x03") is PacketKind.STUN
    assert classify(b"\x10") is PacketKind.ZRTP
    assert classify(b"\x16\xfe\xfd") is PacketKind.DTLS  # handshake record
    assert classify(b"\x14") is PacketKind.DTLS
    assert classify(b"\x3f") is PacketKind.DTLS
    assert classify(b"\x40\x00") is PacketKind.CHANNEL_DATA
    assert classify(b"\x4f\xff") is PacketKind.CHANNEL_DATA
    assert classify(b"\x80\x60") is PacketKind.RTP  # PT 96
    assert classify(b"\x80\xe0") is PacketKind.RTP  # marker + PT 96
    assert classify(b"\x80\xc8") is PacketKind.RTCP  # SR 200
    assert classify(b"\x81\xc9") is PacketKind.RTCP  # RR 201
    assert classify(b"\x8f\xcd") is PacketKind.RTCP  # RTPFB 205
    assert classify(b"\x80\xdf") is PacketKind.RTCP  # 223, last of the range
    assert classify(b"\x80\xbf") is PacketKind.RTP


def test_unknown_and_short():
    assert classify(b"") is PacketKind.UNKNOWN
    assert classify(b"\x80") is PacketKind.UNKNOWN
    for b in (4, 15, 80, 127, 192, 255):
        assert classify(bytes([b, 0])) is PacketKind.UNKNOWN


@given(st.binary(max_size=4))
def test_never_raises(data):
    assert isinstance(classify(data), PacketKind)


def test_media_first_moves_only_rtcp_later_each_kind_in_its_order():
    from netcore.demux import media_first
    from netcore.net import Receive

    rtcp1, rtp1, dtls, rtcp2, stun, rtp2 = (Receive(b) for b in (
        b"\x8f\xcd\x00\x01", b"\x80\x60\x00\x01", b"\x16\xfe\xfd", b"\x81\xc9\x00\x02", b"\x00\x01", b"\x80\xe0\x00\x02"))
    assert media_first([rtcp1, rtp1, dtls, rtcp2, stun, rtp2]) == [rtp1, dtls, stun, rtp2, rtcp1, rtcp2]
    assert media_first([rtp1, rtcp1]) == [rtp1, rtcp1]
    assert media_first([rtcp1, rtcp2]) == [rtcp1, rtcp2]
    assert media_first([]) == []


@given(st.lists(st.sampled_from([b"\x80\x60", b"\x80\xc8", b"\x16\xfe", b"\x00\x01"]), max_size=12))
def test_media_first_is_a_stable_partition(kinds):
    from netcore.demux import media_first
    from netcore.net import Receive

    batch = [Receive(k + bytes([i])) for i, k in enumerate(kinds)]
    out = media_first(batch)
    assert sorted(map(id, out)) == sorted(map(id, batch))
    rest = [d for d in batch if d.kind is not PacketKind.RTCP]
    assert out == rest + [d for d in batch if d.kind is PacketKind.RTCP]

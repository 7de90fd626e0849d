"""The transport half of a WebRTC peer connection: ICE, DTLS-SRTP, RTP/RTCP demultiplexing,
feedback and congestion control for one BUNDLE group, sans-IO (docs/peer.md)."""

from netcore.peer.config import CodecConfig, MediaConfig, TransportConfig, config_from_negotiated
from netcore.peer.transport import MediaTransport, TransportState

__all__ = ["CodecConfig", "MediaConfig", "TransportConfig", "config_from_negotiated", "MediaTransport",
           "TransportState"]

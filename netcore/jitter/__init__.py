"""Time-based jitter buffer for audio packets and video frames."""

"""Transcoding one published video track into renditions: other sizes, bitrates and codecs."""

"""Media for calls: synthetic sources a receiver can check, and PyAV codecs."""

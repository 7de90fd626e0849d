"""The call server's core (sans-IO): rooms, participants, tracks, forwarding. See docs/sfu.md."""

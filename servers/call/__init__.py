"""netcore-call: place and answer calls from the command line (see docs/peer.md)."""

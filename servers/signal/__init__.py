"""netcore-signal: the signaling daemon."""

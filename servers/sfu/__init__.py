"""netcore-sfu: the call server daemon (docs/sfu.md)."""

"""Live broadcast: the input manager that chooses what of a studio room goes on air (docs/broadcast.md)."""

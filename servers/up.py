"""netcore up: every daemon on 127.0.0.1 with shared secrets, stopped together."""


def main() -> None:
    raise SystemExit("netcore up is not built yet")

def main() -> None:
    raise SystemExit("netcore-signal is not built yet")

"""netcore-sfu's recording settings: flags and TOML keys, the flag winning."""

from __future__ import annotations

import pytest

from netcore.errors import UsageError
from servers.sfu.config import build_parser, load_settings


def settings(*argv: str):
    return load_settings(build_parser().parse_args(list(argv)))


def test_recordings_go_under_the_data_directory_unless_a_record_directory_is_given(tmp_path):
    assert settings().recordings == "./sfu-data/recordings"
    assert settings("--data-dir", "/srv/sfu").recordings == "/srv/sfu/recordings"
    config = tmp_path / "sfu.toml"
    config.write_text('data-dir = "/srv/a"\nrecord-dir = "/srv/journals"\nrecordings-redis = "redis://r/0"\n')
    from_file = settings("--config", str(config))
    assert (from_file.data_dir, from_file.recordings, from_file.recordings_redis) == (
        "/srv/a", "/srv/journals", "redis://r/0")
    assert settings("--config", str(config), "--record-dir", "/flag").recordings == "/flag"
    config.write_text('record_dir = "/typo"\n')
    with pytest.raises(UsageError):
        settings("--config", str(config))


def test_last_n_comes_from_the_flag_or_the_file_and_is_not_negative(tmp_path):
    assert settings().last_n is None
    assert settings("--last-n", "3").last_n == 3
    config = tmp_path / "sfu.toml"
    config.write_text("last-n = 5\n")
    assert settings("--config", str(config)).last_n == 5
    assert settings("--config", str(config), "--last-n", "2").last_n == 2
    with pytest.raises(UsageError):
        settings("--last-n", "-1")


def test_the_publisher_and_subscriber_caps_come_from_the_flag_or_the_file(tmp_path):
    assert (settings().max_bitrate, settings().max_subscriber_bitrate) == (2_500_000, 10_000_000)
    assert settings("--max-subscriber-bitrate", "4000000").max_subscriber_bitrate == 4_000_000
    config = tmp_path / "sfu.toml"
    config.write_text("max-bitrate = 800000\nmax-subscriber-bitrate = 3000000\n")
    chosen = settings("--config", str(config))
    assert (chosen.max_bitrate, chosen.max_subscriber_bitrate) == (800_000, 3_000_000)

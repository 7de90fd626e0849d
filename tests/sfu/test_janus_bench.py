"""The Janus side of ``bench/sfu_janus.py`` against a real ``janus``, so that the benchmark's anchor cannot rot.

``janus`` (VideoRoom plugin and HTTP transport only, a fresh configuration
folder, a free RTP port range) and the benchmark's driver: it makes a room
over the JSON API, publishes the replayed VP8 + Opus streams from one of our
transports and subscribes two receive-only ones (in the benchmark's worker
processes), then measures for a short window. Both subscribers must receive audio and video, their packets' payload
counters must match what the publisher sent (so latency is measured), and the
server's CPU must be read.
"""

from __future__ import annotations

import asyncio
import math

from bench.sfu_janus import DtlsCertificate, janus_process, run_janus
from tests.turn.live import free_port_range


def test_janus_driver_publishes_to_two_subscribers(tmp_path):
    with janus_process(tmp_path, free_port_range(40)) as (janus, port):
        figures = asyncio.run(asyncio.wait_for(
            run_janus(port, janus.pid, 2, DtlsCertificate.generate(), warmup=1.0, seconds=3.0), 90))
    assert figures.connected == 3  # the publisher and both subscribers
    assert figures.streams == [2, 2]  # audio and video at each
    # 140 packets/s to each subscriber for 3 s: most of them, whatever the machine's load
    assert figures.packets > 300, figures
    assert figures.loss < 0.2, figures
    assert figures.stamped > 0.9, figures  # arrivals matched to their send times
    assert 0 < figures.p50_ms <= figures.p99_ms, figures
    assert 0 < figures.cpu_us_per_packet and math.isfinite(figures.cpu_us_per_packet), figures

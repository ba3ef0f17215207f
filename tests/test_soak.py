"""Soak: minutes of steady mixed traffic; memory and open connections must not grow. `make soak` runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen import build_request, run_load
from bench.procstat import open_fds, rss_mb
from tests.support.processes import livetoken_exe
from tests.support.redis_proc import free_port
from tests.support.service import make_jwt, service_env, write_config

pytestmark = pytest.mark.soak


def test_steady_load_does_not_grow_memory_or_connections(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """Issued tokens, 401s and 429s at a steady rate for LIVETOKEN_SOAK_SECONDS (default 180)."""
    seconds = float(os.environ.get("LIVETOKEN_SOAK_SECONDS", "180"))
    config = write_config(tmp_path, 'subject = [{ rate = 600, period = "1m", burst = 20 }]')
    port = free_port()
    env = {**os.environ, **service_env(emulator, redis_url), "LIVETOKEN_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [livetoken_exe(), "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = f"127.0.0.1:{port}"
    good = [make_jwt(sub=f"soak-{i}") for i in range(200)]
    requests = [
        build_request(
            "POST",
            "/v1/tokens",
            host,
            {"Authorization": f"Bearer {good[i % 200]}", "Content-Type": "application/json"},
            b'{"profile": "voice"}',
        )
        if i % 3
        else build_request(
            "POST",
            "/v1/tokens",
            host,
            {"Authorization": "Bearer bad", "Content-Type": "application/json"},
            b'{"profile": "voice"}',
        )
        for i in range(600)
    ]
    samples: list[tuple[float, float, int]] = []
    try:
        time.sleep(3)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            asyncio.run(run_load("127.0.0.1", port, lambda i: requests[i % len(requests)], total=1000, concurrency=8))
            samples.append((time.monotonic() - started, rss_mb(proc.pid), open_fds(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(samples) >= 4
    quarter = max(1, len(samples) // 4)
    early = samples[quarter : 2 * quarter]  # after warm-up
    late = samples[-quarter:]
    rss_early = sum(s[1] for s in early) / len(early)
    rss_late = sum(s[1] for s in late) / len(late)
    fds_early = max(s[2] for s in early)
    fds_late = max(s[2] for s in late)
    print(
        f"\nsoak {seconds:.0f}s, {len(samples)} samples: RSS {rss_early:.1f} -> {rss_late:.1f} MB, "
        f"open fds {fds_early} -> {fds_late}",
        file=sys.stderr,
    )
    assert rss_late <= rss_early * 1.10 + 5, (rss_early, rss_late)
    assert fds_late <= fds_early + 10, (fds_early, fds_late)

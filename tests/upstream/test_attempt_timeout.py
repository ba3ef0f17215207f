"""A mint attempt ends within its own timeout (`upstream.attempt_timeout`), however long the whole deadline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from service.metrics import Metrics
from tests.support.service import auth, build_settings, running_app, service_env, write_config
from tests.support.waiting import until


async def test_each_attempt_ends_at_its_own_timeout_not_at_the_deadline(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """attempt_timeout 500 ms, deadline 5 s, one retry, Google answering in 800 ms: each attempt gives up at 0.5 s
    (both in the duration histogram's 1 s bucket), Google saw two attempts, and the caller gets 504 after about
    1 s, instead of a token after 0.8 s from an attempt that waited out the deadline."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            'attempt_timeout = "2s"\ndeadline = "3s"\nmax_retries = 2\n',
            'attempt_timeout = "500ms"\ndeadline = "5s"\nmax_retries = 1\n',
        )
    )
    metrics = Metrics()
    attempts, mints = emulator.request_count(), emulator.mint_count()
    emulator.set_latency(800)
    async with running_app(build_settings(config, service_env(emulator, redis_url)), metrics) as client:
        started = time.monotonic()
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
        elapsed = time.monotonic() - started
    sent = emulator.request_count() - attempts

    async def every_attempt_answered() -> bool:
        return bool(emulator.mint_count() == mints + sent)

    # Google still answers the attempts (800 ms each) livetoken gave up on: let that happen here, where it is
    # expected, rather than in a later test that counts mints.
    await until(every_attempt_answered, "the emulator has answered every attempt")
    histogram = "livetoken_upstream_request_duration_seconds"
    assert resp.status_code == 504, resp.text
    assert resp.json()["type"].endswith("/upstream-timeout")
    assert sent == 2
    assert metrics.registry.get_sample_value(f"{histogram}_count", {"outcome": "error"}) == 2
    assert metrics.registry.get_sample_value(f"{histogram}_bucket", {"outcome": "error", "le": "1.0"}) == 2
    assert 1.0 <= elapsed < 2.5

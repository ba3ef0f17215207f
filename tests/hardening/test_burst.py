"""A burst is not an outage of our own making: a fresh process with healthy Redis answers 200 callers released
at once, twice, with nothing but 201s; a burst beyond what it admits gets fast `503 overloaded` answers, never a
Redis-down verdict, and the process serves normally right after.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.burst import Answer, post_request, release_together
from tests.support.processes import serving
from tests.support.service import make_jwt, service_env, with_default_warm_up, write_config

pytestmark = pytest.mark.slow
_subjects = itertools.count()


@pytest.fixture
def slow_upstream(emulator: Any) -> Iterator[Any]:
    """Google answering every mint 300 ms late (the emulator is shared by the session: put back after)."""
    emulator.set_latency(300)
    try:
        yield emulator
    finally:
        emulator.clear_faults()


def _wave(url: str, callers: int) -> list[Answer]:
    """`callers` token requests, each from a different subject with a JWT never seen before, released at once."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    requests = [
        post_request(
            "/v1/tokens",
            parts.netloc,
            {"Authorization": f"Bearer {make_jwt(sub=f'burst-{next(_subjects)}')}", "Content-Type": "application/json"},
            b'{"profile": "voice"}',
        )
        for _ in range(callers)
    ]
    return asyncio.run(release_together(parts.hostname, parts.port, requests))


def _kinds(answers: list[Answer]) -> Counter[str]:
    return Counter(str(a.status) if a.status == 201 else f"{a.status} {a.body.get('type')}" for a in answers)


def test_two_waves_of_200_on_a_fresh_process_are_all_issued(tmp_path: Path, slow_upstream: Any, redis_url: str) -> None:
    """Fresh process (as a replica the autoscaler just added), real Redis, upstream +300 ms: 200 callers at once,
    twice; every answer is 201 and Google saw exactly 400 mints."""
    config = with_default_warm_up(write_config(tmp_path))
    before = slow_upstream.mint_count()
    with serving(config, service_env(slow_upstream, redis_url)) as (proc, url):
        first = _wave(url, 200)
        second = _wave(url, 200)
    assert _kinds(first) == Counter({"201": 200}), proc.text[-2000:]
    assert _kinds(second) == Counter({"201": 200})
    assert slow_upstream.mint_count() - before == 400
    assert "ratelimit_store_down" not in proc.text
    warmed = [json.loads(line) for line in proc.text.splitlines() if '"upstream_warmed"' in line]
    assert [(w["connections"], w["asked"]) for w in warmed] == [(256, 256)]  # before /readyz: the first wave's pool


@pytest.mark.parametrize("callers", [500, 2000])
def test_a_larger_burst_gets_201_or_a_fast_overloaded_and_recovers_at_once(
    tmp_path: Path, slow_upstream: Any, redis_url: str, callers: int
) -> None:
    """Beyond `server.max_in_flight` (256 by default) the answer is `503 overloaded` with Retry-After: 1, never
    `rate-limiter-unavailable` or any other refusal; the next request after the burst is issued."""
    config = with_default_warm_up(write_config(tmp_path))
    before = slow_upstream.mint_count()
    with serving(config, service_env(slow_upstream, redis_url)) as (proc, url):
        answers = _wave(url, callers)
        after = httpx.post(
            url + "/v1/tokens",
            json={"profile": "voice"},
            headers={"Authorization": f"Bearer {make_jwt(sub='after-the-burst')}"},
            timeout=10,
        )
        metrics = httpx.get(url + "/metrics", timeout=10).text
    kinds = _kinds(answers)
    issued = kinds.pop("201", 0)
    overloaded = kinds.pop("503 https://livetoken.dev/problems/overloaded", 0)
    assert kinds == Counter(), (kinds, [line for line in proc.text.splitlines() if "warning" in line][:10])
    assert issued >= 256
    assert issued + overloaded == callers
    for answer in answers:
        if answer.status == 503:
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["cache-control"] == "no-store"
    assert after.status_code == 201
    assert slow_upstream.mint_count() - before == issued + 1
    assert f'livetoken_rejections_total{{reason="overloaded"}} {float(overloaded)}' in metrics
    assert "ratelimit_store_down" not in proc.text

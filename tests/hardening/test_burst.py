"""A burst is not an outage of our own making: a fresh process with healthy Redis answers 200 callers released
at once, twice, with nothing but 201s; callers beyond its places wait in the admission queue and get tokens; a
burst beyond what drains within `server.queue_timeout` gets `503 overloaded` answers with Retry-After, never a
Redis-down verdict, and the process serves normally right after. Latency figures: `make bench` (bench/burst.py).
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


def _sample(metrics: str, name: str) -> float:
    """One sample's value in a Prometheus exposition (0 when the series is absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_five_hundred_at_once_wait_their_turn_instead_of_being_shed(
    tmp_path: Path, slow_upstream: Any, redis_url: str
) -> None:
    """Twice `server.max_in_flight` at once on a fresh process, upstream +300 ms: the ones beyond the 256 places
    wait in the queue for a fraction of a second and every caller gets a token; Google saw 500 mints."""
    config = with_default_warm_up(write_config(tmp_path))
    before = slow_upstream.mint_count()
    with serving(config, service_env(slow_upstream, redis_url)) as (proc, url):
        answers = _wave(url, 500)
        metrics = httpx.get(url + "/metrics", timeout=10).text
    assert _kinds(answers) == Counter({"201": 500}), proc.text[-2000:]
    assert slow_upstream.mint_count() - before == 500
    queued = _sample(metrics, 'livetoken_admission_wait_seconds_count{outcome="admitted"}')
    assert 200 <= queued <= 500 - 256 + 10, queued  # ~244 waited (a few places may have freed before the last came)
    assert _sample(metrics, 'livetoken_admission_wait_seconds_bucket{le="2.0",outcome="admitted"}') == queued
    assert _sample(metrics, "livetoken_admission_queue_depth") == 0
    assert _sample(metrics, "livetoken_admission_busy") == 0
    assert _sample(metrics, "livetoken_admission_slots") == 256
    assert 'livetoken_rejections_total{reason="overloaded"}' not in metrics


def test_a_burst_beyond_what_drains_in_time_is_shed_with_retry_after_and_recovers_at_once(
    tmp_path: Path, slow_upstream: Any, redis_url: str
) -> None:
    """3000 at once: as many as can start within `server.queue_timeout` (2 s) get tokens, the rest `503
    overloaded` with a Retry-After in whole seconds — never `rate-limiter-unavailable` or any other refusal; each
    shed is counted once by why; the next request after the burst is issued."""
    callers = 3000
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
    assert issued > 256  # the queue served more than the places
    assert overloaded > 0
    assert issued + overloaded == callers
    for answer in answers:
        if answer.status == 503:
            assert 1 <= int(answer.headers["retry-after"]) <= 30
            assert answer.headers["cache-control"] == "no-store"
    assert after.status_code == 201
    assert slow_upstream.mint_count() - before == issued + 1
    assert _sample(metrics, 'livetoken_rejections_total{reason="overloaded"}') == overloaded
    by_why = {
        why: _sample(metrics, f'livetoken_admission_shed_total{{why="{why}"}}')
        for why in ("queue_full", "wait_too_long", "timed_out")
    }
    assert sum(by_why.values()) == overloaded, by_why
    # Beyond the places and the queue (1024): refused on arrival; a few more may find room as the first finish.
    assert callers - 256 - 1024 - 100 <= by_why["queue_full"] <= callers - 256 - 1024, by_why
    assert _sample(metrics, "livetoken_admission_queue_depth") == 0
    assert "ratelimit_store_down" not in proc.text

"""Upstream failures become 502/503/504 problems with no internal detail, and cost the caller no allowance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config


@pytest.fixture
def settings(tmp_path: Path, emulator: Any, redis_url: str) -> Any:
    return build_settings(
        write_config(tmp_path, 'subject = [{ rate = 2, period = "1h", burst = 2 }]'), service_env(emulator, redis_url)
    )


@pytest.fixture(autouse=True)
def _clean_faults(emulator: Any) -> Iterator[None]:
    emulator.clear_faults()
    yield
    emulator.clear_faults()


@pytest.mark.parametrize(
    ("fault", "status", "slug"),
    [
        pytest.param([400], 502, "upstream-rejected", id="400-rejected"),
        pytest.param([403], 502, "upstream-rejected", id="403-rejected"),
        pytest.param([503, 503, 503], 503, "upstream-unavailable", id="503-after-retries"),
        pytest.param([500, 500, 500], 503, "upstream-unavailable", id="500-after-retries"),
        pytest.param([429, 429, 429], 503, "upstream-unavailable", id="429-after-retries"),
    ],
)
async def test_upstream_errors_map_to_problems(
    settings: Any, emulator: Any, fault: list[int], status: int, slug: str
) -> None:
    """4xx from Google is 502; persistent 5xx/429 are 503 with Retry-After; the body hides upstream text."""
    for code in fault:
        emulator.fail_next(code)
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
    assert resp.status_code == status, resp.text
    problem = resp.json()
    assert problem["type"].endswith("/" + slug)
    assert "simulated" not in resp.text.lower()
    assert "emulator" not in resp.text.lower()
    if status == 503:
        assert int(resp.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("fault", "status", "attempts"),
    [
        pytest.param([], 201, 1, id="ok-first-time"),
        pytest.param([503], 201, 2, id="one-503-then-ok"),
        pytest.param([503, "drop"], 201, 3, id="503-drop-then-ok"),
        pytest.param([503, 503, 503], 503, 3, id="three-503s-give-up"),
        pytest.param([503, 503, 503, 503], 503, 3, id="never-a-fourth-attempt"),
        pytest.param([400], 502, 1, id="a-400-is-final"),
        pytest.param([429, 500], 201, 3, id="429-and-500-are-retried"),
    ],
)
async def test_google_sees_exactly_the_attempts_the_retry_policy_allows(
    settings: Any, emulator: Any, fault: list[int | str], status: int, attempts: int
) -> None:
    """upstream.max_retries = 2: transient failures are retried up to three attempts in all, a 4xx never; the
    emulator counts what reached Google."""
    for what in fault:
        emulator.fail_next(what)
    before = emulator.request_count()
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
    assert resp.status_code == status, resp.text
    assert emulator.request_count() - before == attempts


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_a_failed_mint_is_refunded_where_it_was_charged(
    tmp_path: Path, emulator: Any, redis_url: str, fail_mode: str
) -> None:
    """Burst 1, Redis up, either fail mode: a mint Google refuses gives the allowance back to Redis, so the next
    request is issued, and a request from a second instance sharing that Redis then finds the burst spent."""
    config = write_config(tmp_path, 'subject = [{ rate = 1, period = "1h", burst = 1 }]')
    config.write_text(config.read_text().replace("[limits]\n", f'[limits]\nfail_mode = "{fail_mode}"\n', 1))
    settings = build_settings(config, service_env(emulator, redis_url))
    token = make_jwt(sub=f"refund-{fail_mode}")
    async with running_app(settings) as client, running_app(settings) as other_instance:
        emulator.fail_next(400)
        refused = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        issued = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        elsewhere = await other_instance.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
    assert (refused.status_code, issued.status_code, elsewhere.status_code) == (502, 201, 429)


async def test_upstream_timeout_is_504(settings: Any, emulator: Any) -> None:
    """An upstream slower than the whole deadline (3 s here; attempts of 2 s) gives 504 at that deadline: the
    first attempt times out at 2 s, the retry gets only the one second left, and Google saw those two attempts."""
    emulator.set_latency(5000)
    attempts = emulator.request_count()
    async with running_app(settings) as client:
        started = time.monotonic()
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
        elapsed = time.monotonic() - started
    assert resp.status_code == 504, resp.text
    assert resp.json()["type"].endswith("/upstream-timeout")
    assert emulator.request_count() - attempts == 2
    assert 3.0 <= elapsed < 3.9  # the deadline, with room for a busy machine (not for a retry's whole 2 s)


async def test_failed_mints_do_not_spend_the_rate_limit(settings: Any, emulator: Any) -> None:
    """With a burst of 2, three failed mints then two successes: failures were refunded."""
    token = make_jwt(sub="unlucky")
    async with running_app(settings) as client:
        for _ in range(3):
            emulator.fail_next(400)
            failed = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
            assert failed.status_code == 502
        ok = [await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token)) for _ in range(2)]
    assert [r.status_code for r in ok] == [201, 201]


async def test_idempotent_retry_after_failure_mints_once(settings: Any, emulator: Any) -> None:
    """A failed mint releases the Idempotency-Key; the retry mints exactly once and later retries replay it."""
    headers = {**auth(sub="retrier"), "Idempotency-Key": "after-failure"}
    async with running_app(settings) as client:
        emulator.fail_next(400)
        first = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
        before = emulator.mint_count()
        second = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
        third = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
    assert first.status_code == 502
    assert second.status_code == 201
    assert third.json()["token"] == second.json()["token"]
    assert emulator.mint_count() == before + 1

"""A replica repeats Redis's over-limit verdict from memory, but only until the caller may try again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config


async def test_a_remembered_429_ends_when_retry_after_says(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """5 tokens per 5 s, burst 5: after five tokens the sixth request is 429 with Retry-After 1 (the bucket itself is
    full again only in 5 s: `RateLimit` says t=5), the next two are refused from memory, and the caller who waits
    its Retry-After gets a token, not a 429 remembered until the bucket is full."""
    limits = 'subject = [{ rate = 5, period = "5s", burst = 5 }]'
    settings = build_settings(write_config(tmp_path, limits), service_env(emulator, redis_url))
    token = make_jwt(sub="patient")
    async with running_app(settings) as client:

        async def ask() -> Any:
            return await client.post("/v1/tokens", json={"profile": "text"}, headers=auth(token))

        issued = [await ask() for _ in range(5)]
        refused = await ask()
        repeated = [await ask() for _ in range(2)]
        await asyncio.sleep(int(refused.headers["retry-after"]))  # what the caller was told to do
        again = await ask()
        metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in issued] == [201] * 5
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit"] == '"subject-5s";r=0;t=5'
    assert [(r.status_code, r.headers["retry-after"]) for r in repeated] == [(429, "1"), (429, "1")]
    assert again.status_code == 201, again.text
    assert "livetoken_ratelimit_remembered_refusals_total 2.0" in metrics  # the two repeated, not Redis's

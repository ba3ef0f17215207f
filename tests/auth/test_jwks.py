"""JWKS caching against a real HTTP endpoint: cooldown, single flight, outages, rotation, staleness."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from service.auth import JWTVerifier
from service.config import Duration, Secret
from service.errors import InvalidToken
from service.metrics import Metrics
from tests.auth.signing import HS_SECRET, Keys, claims, issuers, public_jwk, sign
from tests.support.jwks_server import JWKSServer


@asynccontextmanager
async def make_verifier(tmp_path: Path, keys: Keys, jwks: JWKSServer, **opts: Any) -> AsyncIterator[JWTVerifier]:
    """A verifier whose JWKS issuers use `opts` (cooldown, max stale, …)."""
    cooldown = opts.pop("cooldown", 30.0)
    async with httpx.AsyncClient() as http:
        cfg = issuers(tmp_path, keys, jwks.url, cooldown=cooldown, **opts)
        verifier = JWTVerifier(cfg, {"https://hs.test/": Secret(HS_SECRET)}, http, Metrics())
        await verifier.start()
        yield verifier


async def test_cached_keys_need_no_fetch(tmp_path: Path, keys: Keys, jwks: JWKSServer) -> None:
    """After the warm-up fetch (one per JWKS issuer), verifying many tokens fetches nothing more."""
    async with make_verifier(tmp_path, keys, jwks) as verifier:
        warm = jwks.hits
        for _ in range(20):
            await verifier.verify(f"Bearer {sign(keys, 'es')}")
            await verifier.verify(f"Bearer {sign(keys, 'ed')}")
    assert warm == 2
    assert jwks.hits == warm


async def test_random_kid_flood_fetches_at_most_once_per_cooldown(tmp_path: Path, keys: Keys, jwks: JWKSServer) -> None:
    """200 concurrent tokens with random kids cause at most one refetch (single flight + cooldown)."""
    async with make_verifier(tmp_path, keys, jwks, cooldown=0.0) as verifier:
        # Cooldown 0 would allow a fetch per miss; single flight still collapses concurrent misses.
        before = jwks.hits
        jwks.delay = 0.2
        tokens = [sign(keys, "es", headers={"kid": secrets.token_hex(8)}) for _ in range(200)]
        results = await asyncio.gather(*(verifier.verify(f"Bearer {t}") for t in tokens), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    assert jwks.hits - before <= 2  # one in-flight fetch, plus at most one started as it finished


async def test_cooldown_limits_refetches_over_time(tmp_path: Path, keys: Keys, jwks: JWKSServer) -> None:
    """Unknown kids arriving one after another refetch at most once per cooldown window."""
    async with make_verifier(tmp_path, keys, jwks, cooldown=30.0) as verifier:
        before = jwks.hits
        for _ in range(50):
            with pytest.raises(InvalidToken):
                await verifier.verify(f"Bearer {sign(keys, 'es', headers={'kid': secrets.token_hex(8)})}")
    assert jwks.hits == before  # the warm-up fetch just happened: still within the cooldown


@pytest.mark.parametrize("mode", ["down", "garbage", "huge", "slow"])
async def test_outage_keeps_serving_cached_keys(tmp_path: Path, keys: Keys, jwks: JWKSServer, mode: str) -> None:
    """JWKS down, garbage, oversized or slower than its timeout: known keys keep verifying."""
    async with make_verifier(tmp_path, keys, jwks, cooldown=0.0) as verifier:
        if mode == "slow":
            jwks.delay = 2.0  # beyond the 0.5 s jwks_timeout
        else:
            jwks.mode = mode
        started = time.monotonic()
        with pytest.raises(InvalidToken):  # forces a refetch attempt that fails
            await verifier.verify(f"Bearer {sign(keys, 'es', headers={'kid': 'rotated-away'})}")
        assert time.monotonic() - started < 1.5
        caller = await verifier.verify(f"Bearer {sign(keys, 'es')}")
        assert caller.subject == "alice"
        assert verifier.jwks_status() in ("ok", "stale")
        jwks.delay = 0.0


async def test_key_rotation_is_picked_up_without_restart(tmp_path: Path, keys: Keys, jwks: JWKSServer) -> None:
    """A newly published key (new kid) verifies as soon as the cooldown allows a refetch."""
    async with make_verifier(tmp_path, keys, jwks, cooldown=0.2) as verifier:
        jwks.jwks = {"keys": [public_jwk(keys.ec_rotated.public_key(), "EC", "es-2", "ES256")]}
        rotated = jwt.encode(claims("https://es.test/"), keys.ec_rotated, algorithm="ES256", headers={"kid": "es-2"})
        await asyncio.sleep(0.25)
        caller = await verifier.verify(f"Bearer {rotated}")
    assert caller.subject == "alice"


async def test_keys_stale_beyond_bound_are_refused(tmp_path: Path, keys: Keys, jwks: JWKSServer) -> None:
    """With the JWKS down for longer than jwks_max_stale, cached keys stop being trusted and /readyz knows."""
    async with make_verifier(
        tmp_path, keys, jwks, cooldown=0.0, jwks_cache_ttl=Duration(0.1), jwks_max_stale=Duration(0.5)
    ) as verifier:
        jwks.mode = "down"
        await asyncio.sleep(0.6)
        with pytest.raises(InvalidToken):
            await verifier.verify(f"Bearer {sign(keys, 'es')}")
        assert verifier.jwks_status() == "unavailable"


async def test_verification_does_not_block_the_event_loop(tmp_path: Path, keys: Keys, jwks: JWKSServer) -> None:
    """While a slow JWKS fetch is in flight, an unrelated HS256 token is verified at once."""
    async with make_verifier(tmp_path, keys, jwks, cooldown=0.0) as verifier:
        jwks.delay = 0.4
        slow = asyncio.create_task(verifier.verify(f"Bearer {sign(keys, 'es', headers={'kid': 'unknown'})}"))
        await asyncio.sleep(0.05)
        order: list[str] = []
        fast: Callable[[], Any] = lambda: verifier.verify(f"Bearer {sign(keys, 'hs')}")  # noqa: E731
        await fast()
        order.append("fast")
        with pytest.raises(InvalidToken):
            await slow
        order.append("slow")
        jwks.delay = 0.0
    assert order == ["fast", "slow"]


async def test_a_jwks_issuers_signature_refusal_is_not_remembered(
    tmp_path: Path, keys: Keys, jwks: JWKSServer, signature_checks: list[str]
) -> None:
    """A JWKS refresh can turn a key or signature refusal around (a key rotated under its kid), so an ES256
    token with a forged signature is checked afresh each time; a token refused for its own bytes (expired) is
    remembered, from a JWKS issuer too."""
    good = sign(keys, "es")
    forged = f"Bearer {good[:-6]}AAAAAA"
    expired = f"Bearer {sign(keys, 'es', exp=int(time.time()) - 3600)}"
    async with make_verifier(tmp_path, keys, jwks) as verifier:
        for header in (forged, forged, expired, expired):
            with pytest.raises(InvalidToken):
                await verifier.verify(header)
    assert signature_checks == [
        "ES256",
        "ES256",
        "ES256",
    ]  # the forged one twice; the expired one once, then remembered
